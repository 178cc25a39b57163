"""Analytic MACs and parameters against the networks themselves and XLA."""

import dataclasses
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gram_jax import arch
from gram_jax import cost
from gram_jax import metagraph as mg
from gram_jax.models import ExactNet
from gram_jax.space import SearchSpace
from helpers import free_linear


def _xla_flops(spec, shape, probe):
  net = ExactNet(spec)
  x = jnp.zeros((1,) + shape)
  variables = jax.eval_shape(net.init, jax.random.key(0), x)

  def f(v, x):
    if probe:
      with nn.intercept_methods(free_linear):
        return net.apply(v, x)
    return net.apply(v, x)

  # XLA's HloCostAnalysis of the network's module as handed to XLA. After
  # optimisation, fusion rewrites the BN/ELU arithmetic of the probe
  # differently from the real net, so the difference would no longer
  # isolate the conv and dense FLOPs.
  return jax.jit(f).lower(variables, x).cost_analysis()["flops"]


def _random_specs():
  specs = []
  for i, agg in enumerate(["sum", "concat"] * 3):
    space = SearchSpace(
        hierarchies=2 + i % 2,
        dags_per_hierarchy=2,
        nodes=6,
        width=0.25 + 0.25 * (i % 3),
        aggregate=agg,
        stem=("conv3x3_16/2",) if i % 2 else (),
    )
    g = mg.init(space, jax.random.key(i), init_weight=0.3 + 0.1 * i)
    masks = mg.sample(g, jax.random.key(100 + i))
    specs.append(arch.from_masks(space, g.ops, masks, num_classes=10))
  return specs


@pytest.mark.parametrize("index", range(6))
def test_macs_match_xla_cost_analysis(index):
  spec = _random_specs()[index]
  shape = (16, 16, 3)
  conv_dense_flops = _xla_flops(spec, shape, probe=False) - _xla_flops(
      spec, shape, probe=True
  )
  # XLA counts 2 FLOPs per MAC; the dense bias adds (num_classes) remain.
  xla_macs = (conv_dense_flops - spec.num_classes) / 2
  ours = cost.count(spec, shape, padding_aware=True).macs
  assert ours == pytest.approx(xla_macs, rel=0.01)


def test_params_match_the_module():
  for spec in _random_specs():
    variables = jax.eval_shape(
        ExactNet(spec).init, jax.random.key(0), jnp.zeros((1, 16, 16, 3))
    )
    n = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables["params"]))
    assert cost.count(spec, (16, 16, 3)).params == n


def test_hand_counted_example():
  # one DAG: 0 -> 1, 0 -> 2, 1 -> 2; sum aggregation
  dag = arch.Dag((
      arch.Node(0, 3, 8),
      arch.Node(1, 1, 16, (0,)),
      arch.Node(2, 3, 4, (0, 1)),
  ))
  spec = arch.ArchSpec(
      hierarchies=1,
      dags_per_hierarchy=1,
      dags=(dag,),
      num_classes=10,
      dag_output="sinks",
  )
  hw = 8 * 8
  want = hw * 9 * 3 * 8 + hw * 1 * 8 * 16 + hw * 9 * 16 * 4 + 4 * 10
  assert cost.count(spec, (8, 8, 3)).macs == want
  # dag_output="all": the head reads the zero-padded sum of all three
  # nodes (16 channels) instead of the sink's 4.
  every = dataclasses.replace(spec, dag_output="all")
  assert cost.count(every, (8, 8, 3)).macs == want - 4 * 10 + 16 * 10
  # padding-aware: 3x3 SAME on 8 rows touches 22 taps per axis, not 24
  aware = 22 * 22 * 3 * 8 + hw * 8 * 16 + 22 * 22 * 16 * 4 + 40
  assert cost.count(spec, (8, 8, 3), padding_aware=True).macs == aware
  assert cost.accuracy_density(90.0, 3_000_000) == pytest.approx(30.0)
  with pytest.raises(ValueError, match="input_shape"):
    cost.count(spec, (8, 8))
