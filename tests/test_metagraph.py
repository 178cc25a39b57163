import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gram_jax import metagraph as mg
from gram_jax.space import SearchSpace

SPACE = SearchSpace(hierarchies=2, dags_per_hierarchy=2, nodes=6, width=0.25)


def test_init_uniform_upper_triangular_balanced_ops():
  g = mg.init(SPACE, jax.random.key(0), init_weight=0.5)
  chex.assert_shape(g.weights, (4, 6, 6))
  chex.assert_shape(g.ops, (4, 6))
  w = np.asarray(g.weights)
  assert np.all(w[:, np.triu_indices(6, 1)[0], np.triu_indices(6, 1)[1]] == 0.5)
  assert np.all(np.tril(w[0]) == 0)
  for row in np.asarray(g.ops):  # 6 nodes, 5 ops: every op at least once
    assert set(row.tolist()) == set(range(5))
  g2 = mg.init(SPACE, jax.random.key(0), init_weight=0.5)
  np.testing.assert_array_equal(g.ops, g2.ops)
  assert not np.array_equal(g.ops, mg.init(SPACE, jax.random.key(1)).ops)


def test_live_nodes_and_sinks_on_a_hand_made_dag():
  m = np.zeros((1, 5, 5), bool)
  m[0, 0, 1] = m[0, 1, 3] = m[0, 2, 4] = True  # node 2 has no input
  live = np.asarray(mg.live_nodes(jnp.asarray(m)))[0]
  assert live.tolist() == [True, True, False, True, False]
  eff = np.asarray(mg.effective(jnp.asarray(m)))[0]
  assert not eff[2, 4] and eff[0, 1] and eff[1, 3]
  assert np.asarray(mg.sinks(jnp.asarray(m)))[0].tolist() == [
      False,
      False,
      False,
      True,
      False,
  ]
  # node 0 alone is live and is the sink when it has no out-edge
  none = jnp.zeros((1, 5, 5), bool)
  assert np.asarray(mg.sinks(none))[0].tolist() == [True] + [False] * 4


def test_sample_is_bernoulli_and_effective():
  g = mg.init(SPACE, jax.random.key(0), init_weight=0.3)
  keys = jax.random.split(jax.random.key(1), 400)
  raw = jax.vmap(lambda k: jax.random.uniform(k, g.weights.shape) < g.weights)(
      keys
  )
  masks = jax.vmap(lambda k: mg.sample(g, k))(keys)
  # same draw, then only edges out of live nodes are kept
  np.testing.assert_array_equal(masks, jax.vmap(mg.effective)(raw))
  frac = float(jnp.sum(raw) / (400 * 4 * 15))
  assert abs(frac - 0.3) < 0.02
  live = jax.vmap(mg.live_nodes)(masks)
  assert bool(jnp.all(~masks | live[..., :, None]))
  assert bool(jnp.all(~jnp.tril(jnp.ones((6, 6), bool)) | ~masks))


def test_update_rule_and_normalisations():
  g = mg.init(SPACE, jax.random.key(0), init_weight=0.5)
  masks = mg.sample(
      g.replace(weights=jnp.where(g.weights > 0, 0.5, 0.0)), jax.random.key(3)
  )
  up = mg.update(g, masks, 0.2, alpha=0.9, normalization="max")
  w, m = np.asarray(up.weights), np.asarray(masks)
  tri = np.triu(np.ones((6, 6), bool), 1)
  for k in range(4):
    raw = np.where(m[k], 0.5 * np.exp(0.9 * 0.2), 0.5)
    raw = raw / raw[tri].max()
    np.testing.assert_allclose(w[k][tri], raw[tri], rtol=1e-6)
    assert w[k].max() == pytest.approx(1.0)
  # negative advantage shrinks sampled edges; clip leaves the others alone
  down = mg.update(g, masks, -0.3, normalization="clip")
  d = np.asarray(down.weights)
  np.testing.assert_allclose(d[m], 0.5 * np.exp(0.9 * -0.3), rtol=1e-6)
  np.testing.assert_allclose(d[~m & tri[None]], 0.5)
  with pytest.raises(ValueError, match="normalization"):
    mg.update(g, masks, 0.1, normalization="sum")


def test_bernoulli_update_reweights_each_edge_on_and_off():
  g = mg.init(SPACE, jax.random.key(0), init_weight=0.5)
  g = g.replace(
      weights=jnp.where(
          g.weights > 0,
          jax.random.uniform(
              jax.random.key(4), g.weights.shape, minval=0.05, maxval=0.95
          ),
          0.0,
      )
  )
  masks = mg.sample(g, jax.random.key(3))
  w0, m = np.asarray(g.weights, np.float64), np.asarray(masks)
  tri = np.triu(np.ones((6, 6), bool), 1)
  live = np.asarray(mg.live_nodes(masks))
  observed = live[:, :, None] & tri[None]
  assert (observed & ~m).any() and m.any() and (~observed & tri).any()
  for adv in (0.2, -0.3):
    f = np.exp(0.9 * adv)
    w = np.asarray(mg.update(g, masks, adv, alpha=0.9).weights)
    on = w0 * f / (w0 * f + 1 - w0)
    off = w0 / (w0 + (1 - w0) * f)
    np.testing.assert_allclose(w[m], on[m], rtol=1e-5)
    np.testing.assert_allclose(w[observed & ~m], off[observed & ~m], rtol=1e-5)
    # an edge out of a dead node had no effect: unchanged
    np.testing.assert_array_equal(
        w[~observed & tri[None]], np.asarray(g.weights)[~observed & tri[None]]
    )
    # a weight and its complement move by at most the factor
    ratio = np.maximum(
        w[tri[None].repeat(4, 0)] / w0[tri[None].repeat(4, 0)],
        (1 - w[tri[None].repeat(4, 0)]) / (1 - w0[tri[None].repeat(4, 0)]),
    )
    assert ratio.max() <= max(f, 1 / f) * (1 + 1e-5)
    assert np.all(np.tril(w[0]) == 0)
  # bounded away from 0 and 1, so every edge can still be drawn or dropped
  far, push = g, jax.jit(lambda g: mg.update(g, masks, 1.0, alpha=5.0))
  for _ in range(200):
    far = push(far)
  fw = np.asarray(far.weights)[tri[None].repeat(4, 0)]
  assert fw.min() >= mg.MIN_WEIGHT - 1e-7
  assert fw.max() <= 1 - mg.MIN_WEIGHT + 1e-7


def test_prune_levels():
  g = mg.init(SPACE, jax.random.key(0))
  w = jax.random.uniform(jax.random.key(5), g.weights.shape)
  g = g.replace(weights=jnp.where(g.weights > 0, w, 0.0))
  counts = [
      int(mg.num_edges(mg.prune(g, lv))) for lv in np.linspace(0, 1.01, 12)
  ]
  assert counts[0] == 4 * 15
  assert counts[-1] == 0
  assert all(a >= b for a, b in zip(counts, counts[1:]))
  q = mg.prune(g, 0.5, mode="quantile")
  assert int(mg.num_edges(q)) <= 4 * 8
  with pytest.raises(ValueError, match="mode"):
    mg.prune(g, 0.5, mode="top")


def test_vmap_over_seeds_equals_separate_calls():
  seeds = jnp.arange(4)
  keys = jax.vmap(jax.random.key)(seeds)

  def run(key):
    g = mg.init(SPACE, key, init_weight=0.5)
    for t in range(3):
      masks = mg.sample(g, jax.random.fold_in(key, t))
      g = mg.update(g, masks, 0.1 * (t - 1))
    return g, mg.prune(g, 0.6)

  batched_g, batched_p = jax.jit(jax.vmap(run))(keys)
  for i in range(4):
    g, p = run(jax.random.key(i))
    np.testing.assert_array_equal(batched_g.weights[i], g.weights)
    np.testing.assert_array_equal(batched_g.ops[i], g.ops)
    np.testing.assert_array_equal(batched_p[i], p)


def test_functions_do_not_retrace():
  g = mg.init(SPACE, jax.random.key(0))

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(g, key, adv):
    masks = mg.sample(g, key)
    return mg.update(g, masks, adv)

  for t in range(5):
    g = step(g, jax.random.key(t), jnp.float32(0.1 * t))
