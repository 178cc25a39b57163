"""`Supernet`: the complete DAGs with edge masks given at run time.

Every candidate of a search runs through one compiled program: the masks are
an array argument, not part of the module (DESIGN.md decision 3). The
supernet equals the exact sub-network (`ExactNet`) because

  * node v's input is ``aggregate_u(mask[u, v] * x_u)`` over all u < v, so an
    absent edge contributes zeros (sum: zero-padded to the widest possible
    predecessor; concat: a block of zero channels);
  * a node that is not live outputs zeros *after* its activation
    (ELU(BN(0)) is not 0), and only output nodes (live nodes, or sinks
    under ``dag_output="sinks"``) feed the DAG output;
  * zero input channels meet weights that the exact network does not have,
    so slicing those weights away (`to_exact_variables`) changes nothing.

`init_candidate` draws fresh weights per candidate with the init scale of
the candidate's real fan-in (ALGORITHMS.md 1.7), so proxy training in the
supernet starts from the distribution the exact network would.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gram_jax import metagraph as mg
from gram_jax.arch import ArchSpec
from gram_jax.models import layers
from gram_jax.space import SearchSpace

Ops = Tuple[Tuple[int, ...], ...]


def static_ops(ops: Any) -> Ops:
  """``MetaGraph.ops`` as nested tuples: a static (hashable) module field."""
  return tuple(tuple(int(o) for o in row) for row in np.asarray(ops))


class Layout:
  """Channel widths of the supernet for a space and frozen node ops."""

  def __init__(self, space: SearchSpace, ops: Ops):
    self.space = space
    self.ops = ops
    self.widths = [[space.op(o).channels for o in row] for row in ops]
    self.kernels = [[space.op(o).kernel for o in row] for row in ops]

  def node_in_width(self, k: int, v: int) -> int:
    """Supernet input channels of node v > 0 of DAG k."""
    w = self.widths[k][:v]
    return max(w) if self.space.aggregate == "sum" else sum(w)

  def dag_out_width(self, k: int) -> int:
    w = self.widths[k]
    return max(w) if self.space.aggregate == "sum" else sum(w)

  def hierarchy_out_width(self, h: int) -> int:
    m = self.space.dags_per_hierarchy
    return sum(self.dag_out_width(h * m + j) for j in range(m))


class Supernet(nn.Module):
  """The meta-graph's complete DAGs with runtime edge masks.

  Attributes:
    space: the search space.
    ops: frozen node ops, ``static_ops(graph.ops)``.
    num_classes: classifier width.

  Call with ``x: f32[B, H, W, C]``, ``masks: bool[K, n, n]`` and ``train``.
  """

  space: SearchSpace
  ops: Ops
  num_classes: int

  @nn.compact
  def __call__(
      self, x: jax.Array, masks: jax.Array, *, train: bool = False
  ) -> jax.Array:
    space, lay = self.space, Layout(self.space, self.ops)
    masks = mg.effective(masks)
    live = mg.live_nodes(masks).astype(x.dtype)
    sink = mg.output_nodes(masks, space.dag_output).astype(x.dtype)
    edge = masks.astype(x.dtype)
    for i, c in enumerate(space.stem_layers()):
      x = layers.ConvBNAct(
          c.channels,
          c.kernel,
          c.stride,
          bn_momentum=space.bn_momentum,
          bn_epsilon=space.bn_epsilon,
          name=f"stem{i}",
      )(x, train=train)
    m, n = space.dags_per_hierarchy, space.nodes
    for h in range(space.hierarchies):
      if h > 0:
        x = layers.pool_reshaped(x, space.pool)
      outs = []
      for j in range(m):
        k = h * m + j
        feats: List[jax.Array] = []
        for v in range(n):
          if v == 0:
            inp = x
          elif space.aggregate == "sum":
            cin = lay.node_in_width(k, v)
            inp = sum(
                edge[k, u, v] * layers.pad_channels(feats[u], cin)
                for u in range(v)
            )
          else:
            inp = jnp.concatenate(
                [edge[k, u, v] * feats[u] for u in range(v)], axis=-1
            )
          y = layers.ConvBNAct(
              lay.widths[k][v],
              lay.kernels[k][v],
              1,
              bn_momentum=space.bn_momentum,
              bn_epsilon=space.bn_epsilon,
              name=f"dag{k}_node{v}",
          )(inp, train=train)
          feats.append(live[k, v] * y)
        if space.aggregate == "sum":
          wout = lay.dag_out_width(k)
          out = sum(
              sink[k, v] * layers.pad_channels(feats[v], wout) for v in range(n)
          )
        else:
          out = jnp.concatenate(
              [sink[k, v] * feats[v] for v in range(n)], axis=-1
          )
        outs.append(out)
      x = jnp.concatenate(outs, axis=-1) if len(outs) > 1 else outs[0]
    return layers.head(x, self.num_classes)


# --- fresh weights per candidate --------------------------------------------------


def _actual_widths(lay: Layout, masks: jax.Array):
  """Per-node actual input widths, per-DAG output widths (traced)."""
  space = lay.space
  widths = jnp.asarray(lay.widths, jnp.float32)  # [K, n]
  masks = mg.effective(masks)
  sink = mg.output_nodes(masks, space.dag_output)  # [K, n]
  m_f = masks.astype(jnp.float32)
  if space.aggregate == "sum":
    node_in = jnp.max(m_f * widths[:, :, None], axis=1)  # [K, n]
    dag_out = jnp.max(sink * widths, axis=-1)  # [K]
  else:
    node_in = jnp.sum(m_f * widths[:, :, None], axis=1)
    dag_out = jnp.sum(sink * widths, axis=-1)
  return node_in, dag_out


def rescale_for_fan_in(
    lay: Layout, params: Dict, masks: jax.Array, in_channels: int
) -> Dict:
  """Scales glorot-normal kernels from the supernet's fan-in to the real one.

  Glorot's std is ``sqrt(2 / (fan_in + fan_out))``; a supernet kernel was
  drawn with the padded input width, the candidate's exact network would
  draw it with the live inputs' width.
  """
  space = lay.space
  node_in, dag_out = _actual_widths(lay, masks)
  m, n = space.dags_per_hierarchy, space.nodes
  stem = space.stem_layers()
  hier_in_actual = [jnp.float32(stem[-1].channels if stem else in_channels)]
  hier_in_super = [stem[-1].channels if stem else in_channels]
  for h in range(space.hierarchies):
    hier_in_actual.append(jnp.sum(dag_out[h * m : (h + 1) * m]))
    hier_in_super.append(lay.hierarchy_out_width(h))
  params = dict(params)

  def ratio(c_super, c_actual, c_out):
    return jnp.sqrt((c_super + c_out) / (jnp.maximum(c_actual, 1.0) + c_out))

  for k in range(space.num_dags):
    h = k // m
    for v in range(n):
      name = f"dag{k}_node{v}"
      cout = lay.widths[k][v]
      if v == 0:
        r = ratio(hier_in_super[h], hier_in_actual[h], cout)
      else:
        r = ratio(lay.node_in_width(k, v), node_in[k, v], cout)
      node = dict(params[name])
      node["conv"] = {"kernel": node["conv"]["kernel"] * r}
      params[name] = node
  head = dict(params["head"])
  head["kernel"] = head["kernel"] * ratio(
      hier_in_super[-1], hier_in_actual[-1], head["kernel"].shape[-1]
  )
  params["head"] = head
  return params


def init_candidate(
    net: Supernet, key: jax.Array, x: jax.Array, masks: jax.Array
) -> Dict:
  """Fresh variables for one candidate (jittable; masks may be traced).

  Kernels are glorot-normal (`layers.fresh_variables`: one random draw),
  then rescaled to the candidate's real fan-in; BN scale 1, biases 0, BN
  statistics 0 and 1.
  """
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), x, masks))
  variables = layers.fresh_variables(
      shapes, key, x.dtype, lambda path, s: layers.glorot_std(s.shape)
  )
  lay = Layout(net.space, net.ops)
  params = rescale_for_fan_in(lay, variables["params"], masks, x.shape[-1])
  return {"params": params, "batch_stats": variables["batch_stats"]}


# --- supernet variables -> exact variables ------------------------------------------


def _channel_maps(lay: Layout, spec: ArchSpec, in_channels: int):
  """For each consumer in `spec`, the supernet channel index of each exact
  input channel."""
  space = lay.space
  m = space.dags_per_hierarchy
  stem = space.stem_layers()
  hier_in = np.arange(stem[-1].channels if stem else in_channels)
  node_maps: Dict[str, np.ndarray] = {}
  for h in range(space.hierarchies):
    out_maps, offset = [], 0
    for j in range(m):
      k = h * m + j
      dag = spec.dags[k]
      widths = lay.widths[k]
      for node in dag.nodes:
        if node.id == 0:
          idx = hier_in
        elif space.aggregate == "sum":
          idx = np.arange(max(widths[u] for u in node.inputs))
        else:
          starts = np.cumsum([0] + widths[: node.id])
          idx = np.concatenate(
              [starts[u] + np.arange(widths[u]) for u in node.inputs]
          )
        node_maps[f"dag{k}_node{node.id}"] = idx
      if space.aggregate == "sum":
        out = np.arange(max(widths[s] for s in spec.outputs(dag)))
      else:
        starts = np.cumsum([0] + widths)
        out = np.concatenate(
            [starts[s] + np.arange(widths[s]) for s in spec.outputs(dag)]
        )
      out_maps.append(offset + out)
      offset += lay.dag_out_width(k)
    hier_in = np.concatenate(out_maps)
  node_maps["head"] = hier_in
  return node_maps


def to_exact_variables(
    net: Supernet, spec: ArchSpec, variables: Dict, in_channels: int
) -> Dict:
  """The `ExactNet(spec)` variables carried by supernet `variables`.

  `spec` must come from the same space and ops (`arch.from_masks`). Only
  input channels are sliced; every other tensor is copied.
  """
  lay = Layout(net.space, net.ops)
  maps = _channel_maps(lay, spec, in_channels)
  sp, sb = variables["params"], variables.get("batch_stats", {})
  params, stats = {}, {}
  for name in sp:
    if name.startswith("stem"):
      params[name], stats[name] = sp[name], sb[name]
  for k, dag in enumerate(spec.dags):
    for node in dag.nodes:
      name = f"dag{k}_node{node.id}"
      kern = sp[name]["conv"]["kernel"]
      params[name] = {
          "conv": {"kernel": jnp.take(kern, maps[name], axis=2)},
          "bn": sp[name]["bn"],
      }
      stats[name] = sb[name]
  params["head"] = {
      "kernel": jnp.take(sp["head"]["kernel"], maps["head"], axis=0),
      "bias": sp["head"]["bias"],
  }
  return {"params": params, "batch_stats": stats}
