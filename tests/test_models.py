"""Supernet(masks) == ExactNet(spec), and one compilation for all masks."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gram_jax import arch
from gram_jax import metagraph as mg
from gram_jax import train
from gram_jax.models import ExactNet, Supernet, init_candidate, static_ops
from gram_jax.models import to_exact_variables
from gram_jax.space import SearchSpace


def _random_masks(graph, seed):
  # vary the edge density so sparse and dense candidates are both covered
  p = 0.2 + 0.15 * (seed % 5)
  w = jnp.where(graph.weights > 0, p, 0.0)
  return mg.sample(graph.replace(weights=w), jax.random.key(1000 + seed))


@pytest.mark.parametrize("train_mode", [False, True])
def test_supernet_equals_exact_net(tiny_space, train_mode):
  graph = mg.init(tiny_space, jax.random.key(0))
  net = Supernet(tiny_space, static_ops(graph.ops), num_classes=7)
  x = jax.random.normal(jax.random.key(1), (6, 12, 12, 3))
  init = jax.jit(lambda key, masks: init_candidate(net, key, x, masks))
  apply = jax.jit(net.apply, static_argnames=("train", "mutable"))
  for seed in range(6):
    masks = _random_masks(graph, seed)
    variables = init(jax.random.key(seed), masks)
    # non-trivial BN statistics so eval mode is checked meaningfully
    variables["batch_stats"] = jax.tree.map(
        lambda s: s + 0.1 * jax.random.uniform(jax.random.key(seed), s.shape),
        variables["batch_stats"],
    )
    spec = arch.from_masks(tiny_space, graph.ops, masks, num_classes=7)
    exact_vars = to_exact_variables(net, spec, variables, in_channels=3)
    exact = ExactNet(spec)
    # the exact variables have exactly ExactNet's own structure and shapes
    own = jax.eval_shape(exact.init, jax.random.key(0), x)
    chex.assert_trees_all_equal_shapes_and_dtypes(own, exact_vars)
    if train_mode:
      ys, ss = apply(variables, x, masks, train=True, mutable=("batch_stats",))
      ye, se = exact.apply(exact_vars, x, train=True, mutable=["batch_stats"])
      for name, stats in se["batch_stats"].items():
        chex.assert_trees_all_close(
            stats, ss["batch_stats"][name], atol=1e-5, rtol=1e-5
        )
    else:
      ys = apply(variables, x, masks, train=False)
      ye = exact.apply(exact_vars, x, train=False)
    np.testing.assert_allclose(ys, ye, atol=2e-5, rtol=1e-5)


def test_dead_nodes_do_not_leak(tiny_space):
  """ELU(BN(0)) != 0: without the live mask an empty node would add bias."""
  graph = mg.init(tiny_space, jax.random.key(0))
  net = Supernet(tiny_space, static_ops(graph.ops), num_classes=3)
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
  masks = jnp.zeros(graph.weights.shape, bool)  # node 0 only, everywhere
  variables = init_candidate(net, jax.random.key(0), x, masks)
  variables["params"] = jax.tree.map(lambda p: p + 0.5, variables["params"])
  spec = arch.from_masks(tiny_space, graph.ops, masks, num_classes=3)
  assert spec.num_nodes == tiny_space.num_dags
  ye = ExactNet(spec).apply(to_exact_variables(net, spec, variables, 3), x)
  np.testing.assert_allclose(
      net.apply(variables, x, masks), ye, atol=2e-5, rtol=1e-5
  )


def test_init_scale_follows_real_fan_in(tiny_space):
  graph = mg.init(tiny_space, jax.random.key(0))
  net = Supernet(tiny_space, static_ops(graph.ops), num_classes=3)
  x = jnp.zeros((2, 8, 8, 3))
  masks = _random_masks(graph, 3)
  spec = arch.from_masks(tiny_space, graph.ops, masks, num_classes=3)
  init_s = jax.jit(lambda k: init_candidate(net, k, x, masks))
  init_e = jax.jit(lambda k: ExactNet(spec).init(k, x))
  keys = jax.random.split(jax.random.key(0), 20)
  exacts = [init_e(k) for k in keys]
  mapped = [to_exact_variables(net, spec, init_s(k), 3) for k in keys]
  # compare the kernel std of every exact layer, pooled over 40 draws
  for name in exacts[0]["params"]:
    if name.startswith("stem"):
      continue
    get = (
        (lambda v: v["params"][name]["kernel"])
        if name == "head"
        else (lambda v: v["params"][name]["conv"]["kernel"])
    )
    s_ref = np.std(np.concatenate([np.ravel(get(v)) for v in exacts]))
    s_got = np.std(np.concatenate([np.ravel(get(v)) for v in mapped]))
    assert s_got == pytest.approx(s_ref, rel=0.15), name


def test_train_step_compiles_once_for_many_masks(tiny_space):
  graph = mg.init(tiny_space, jax.random.key(0))
  rng = np.random.default_rng(0)
  x = rng.normal(size=(40, 8, 8, 3)).astype(np.float32)
  y = rng.integers(0, 4, size=40).astype(np.int32)
  trainer = train.ProxyTrainer(
      tiny_space,
      graph.ops,
      4,
      x_train=x[:24],
      y_train=y[:24],
      x_val=x[24:],
      y_val=y[24:],
      epochs=2,
      batch_size=8,
      eval_batch_size=16,
  )
  sizes = set()
  for seed in range(6):
    result = trainer(_random_masks(graph, seed), jax.random.key(seed))
    assert 0.0 <= result.accuracy <= 1.0
    sizes.add(trainer.num_compilations())
  # compiled once on the first candidate, never again
  assert sizes == {3}, sizes


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("size", [(8, 8), (5, 7)])
def test_reshaped_pool_equals_window_pool(mode, size):
  """The supernet's pool (reshape + reduce) has `layers.pool`'s values."""
  from gram_jax.models import layers  # pylint: disable=import-outside-toplevel

  x = jax.random.normal(jax.random.key(0), (3,) + size + (4,))
  np.testing.assert_allclose(
      layers.pool_reshaped(x, mode), layers.pool(x, mode), rtol=1e-6, atol=1e-6
  )


def test_proxy_cosine_schedule_decays_to_zero():
  """Under ``schedule="cosine"`` the last steps barely move the weights."""
  tiny_space = SearchSpace(
      hierarchies=1, dags_per_hierarchy=2, nodes=4, width=0.25
  )
  graph = mg.init(tiny_space, jax.random.key(0))
  rng = np.random.default_rng(0)
  x = rng.normal(size=(40, 8, 8, 3)).astype(np.float32)
  y = rng.integers(0, 4, size=40).astype(np.int32)
  masks = _random_masks(graph, 0)
  moves = {}
  for schedule in train.PROXY_SCHEDULES:
    trainer = train.ProxyTrainer(
        tiny_space,
        graph.ops,
        4,
        x_train=x[:24],
        y_train=y[:24],
        x_val=x[24:],
        y_val=y[24:],
        epochs=2,
        batch_size=8,
        eval_batch_size=16,
        schedule=schedule,
    )
    variables, opt_state = trainer.jit_init(jax.random.key(1), masks)
    steps = 2 * trainer.steps_per_epoch
    for s in range(steps):
      idx = np.arange(8) + 8 * (s % 3)
      before = jax.tree.map(np.asarray, variables)  # the step donates
      variables, opt_state, _ = trainer.jit_step(
          variables, opt_state, trainer.x_train, trainer.y_train, idx, masks
      )
    leaves = zip(
        jax.tree.leaves(before["params"]), jax.tree.leaves(variables["params"])
    )
    moves[schedule] = max(
        float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in leaves
    )
  # the last cosine step runs at lr(5/6 of the way) = 4e-3 * 0.067
  assert moves["cosine"] < 0.2 * moves["constant"], moves
  with pytest.raises(ValueError, match="schedule"):
    train.ProxyTrainer(
        tiny_space,
        graph.ops,
        4,
        x_train=x[:24],
        y_train=y[:24],
        x_val=x[24:],
        y_val=y[24:],
        schedule="linear",
    )
