import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gram_jax import metagraph as mg
from gram_jax import train
from gram_jax.space import SearchSpace

SPACE = SearchSpace(hierarchies=1, dags_per_hierarchy=2, nodes=4, width=0.25)


def _data(n=64, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, size=n).astype(np.int32)
  x = (
      rng.normal(size=(n, 6, 6, 1)).astype(np.float32)
      + 2.0 * y[:, None, None, None]
  )
  return x, y


def test_proxy_training_learns_and_is_deterministic():
  x, y = _data()
  g = mg.init(SPACE, jax.random.key(0))
  t = train.ProxyTrainer(
      SPACE,
      g.ops,
      2,
      x_train=x[:48],
      y_train=y[:48],
      x_val=x[48:],
      y_val=y[48:],
      epochs=4,
      batch_size=16,
      learning_rate=1e-2,
      select="best",
  )
  masks = mg.sample(g, jax.random.key(1))
  r1 = t(masks, jax.random.key(2))
  r2 = t(masks, jax.random.key(2))
  assert not r1.diverged
  assert r1.accuracy >= 0.8  # separable by the mean intensity
  assert r1 == r2


def test_diverged_candidate_reports_zero_accuracy():
  x, y = _data()
  x[3] = np.nan
  g = mg.init(SPACE, jax.random.key(0))
  t = train.ProxyTrainer(
      SPACE,
      g.ops,
      2,
      x_train=x[:48],
      y_train=y[:48],
      x_val=x[48:],
      y_val=y[48:],
      epochs=1,
      batch_size=16,
  )
  r = t(mg.sample(g, jax.random.key(1)), jax.random.key(2))
  assert r.diverged and r.accuracy == 0.0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(select="mean"), "select"),
        (dict(epochs=0), "epochs"),
        (dict(batch_size=100), "batch_size"),
        (dict(optimizer="lion", batch_size=16), "optimizer"),
    ],
)
def test_bad_settings(kwargs, field):
  x, y = _data()
  g = mg.init(SPACE, jax.random.key(0))
  with pytest.raises(ValueError, match=field):
    train.ProxyTrainer(
        SPACE,
        g.ops,
        2,
        x_train=x[:48],
        y_train=y[:48],
        x_val=x[48:],
        y_val=y[48:],
        **kwargs
    )


class _DenseBN(nn.Module):
  momentum: float

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = nn.Dense(3)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum)(x)
    x = nn.relu(x)
    return nn.BatchNorm(use_running_average=not train, momentum=0.5)(x)


@pytest.mark.parametrize("momentum", [0.9, 0.99])
def test_precise_bn_is_the_population_statistics_of_the_batches(momentum):
  net = _DenseBN(momentum)
  rng = np.random.default_rng(0)
  batches = [
      jnp.asarray(rng.normal(2.0, 3.0, (16, 4)), jnp.float32) for _ in range(3)
  ]
  v = net.init(jax.random.key(0), batches[0], train=False)
  moments = jax.jit(train.make_bn_moments(net.apply))
  out = train.recompute_batch_stats(moments, v, batches)
  # first BN: its input is the Dense output over all 48 rows
  h = np.concatenate([
      np.asarray(nn.Dense(3).apply({"params": v["params"]["Dense_0"]}, b))
      for b in batches
  ])
  got = out["batch_stats"]["BatchNorm_0"]
  np.testing.assert_allclose(got["mean"], h.mean(0), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(got["var"], h.var(0), rtol=1e-3, atol=1e-4)
  # the params are untouched; the second BN got statistics too
  assert jax.tree.all(jax.tree.map(np.array_equal, out["params"], v["params"]))
  assert not np.allclose(out["batch_stats"]["BatchNorm_1"]["var"], 1.0)
  assert train.recompute_batch_stats(moments, v, []) is v
