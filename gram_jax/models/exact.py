"""`ExactNet`: the network of an `ArchSpec`, holding only its live nodes.

Used for final training, MACs and parameter counts, export and latency
(DESIGN.md decision 3). Channel widths are exact, so XLA's cost analysis of
it matches `gram_jax.cost.macs`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gram_jax.arch import ArchSpec
from gram_jax.models import layers


class ExactNet(nn.Module):
  """Stem -> h hierarchies of m parallel DAGs (2x2 pools between) -> head.

  Attributes:
    spec: the architecture.

  Call with ``x: f32[B, H, W, C]`` (NHWC) and ``train``; returns logits.
  """

  spec: ArchSpec

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    spec = self.spec
    for i, c in enumerate(spec.stem):
      x = layers.ConvBNAct(
          c.channels,
          c.kernel,
          c.stride,
          bn_momentum=spec.bn_momentum,
          bn_epsilon=spec.bn_epsilon,
          name=f"stem{i}",
      )(x, train=train)
    m = spec.dags_per_hierarchy
    for h in range(spec.hierarchies):
      if h > 0:
        x = layers.pool(x, spec.pool)
      outs = []
      for j, dag in enumerate(spec.hierarchy(h)):
        k = h * m + j
        feats = {}
        for node in dag.nodes:
          if node.id == 0:
            inp = x
          else:
            inp = layers.aggregate(
                [feats[u] for u in node.inputs], spec.aggregate
            )
          feats[node.id] = layers.ConvBNAct(
              node.channels,
              node.kernel,
              1,
              bn_momentum=spec.bn_momentum,
              bn_epsilon=spec.bn_epsilon,
              name=f"dag{k}_node{node.id}",
          )(inp, train=train)
        outs.append(
            layers.aggregate(
                [feats[s] for s in spec.outputs(dag)], spec.aggregate
            )
        )
      x = jnp.concatenate(outs, axis=-1) if len(outs) > 1 else outs[0]
    return layers.head(x, spec.num_classes)
