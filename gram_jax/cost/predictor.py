"""The jittable latency predictor of a search (supernet masks -> ms).

`LatencyTable.predict` sums the entries of an `ArchSpec`; `jax_predictor`
returns a jittable function of supernet masks ``bool[K, n, n]`` that gives
the same number (per node, its actual input width is computed from the
masks and the node's curve interpolated with jnp ops), so the latency term
can run inside the search program without retracing per candidate.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gram_jax import metagraph as mg
from gram_jax.cost.table import Curve, LatencyTable, interpolate
from gram_jax.cost.walk import LutError
from gram_jax.models.supernet import Layout, static_ops
from gram_jax.shapes import same_out
from gram_jax.space import SearchSpace


def jax_predictor(
    table: LatencyTable,
    space: SearchSpace,
    ops: Any,
    input_shape: Sequence[int],
    num_classes: Optional[int] = None,
) -> Callable[[jax.Array], jax.Array]:
  """A jittable ``fn(masks: bool[K, n, n]) -> f32[]`` latency (ms).

  ``fn(masks)`` equals ``table.predict(arch.from_masks(space, ops, masks,
  num_classes=...), input_shape)`` (to float32 rounding). Everything that
  depends on the frozen node ops is precomputed here as arrays; the masks
  decide which nodes are live, each node's actual input width (the widest
  or the sum of its live inputs), the DAG output widths and which pads,
  partial sums and concatenations exist (counted once per DAG, as `items`
  does), and every layer's curve is interpolated with jnp ops. Masks are an
  array argument, so jitting ``fn`` compiles once for every candidate, and
  it vmaps over a batch of masks.

  Args:
    table: the latency table (built for `space` and `input_shape`).
    space: the search space.
    ops: ``int[K, n]`` frozen node ops (``MetaGraph.ops``).
    input_shape: ``(H, W, C)`` of one input image.
    num_classes: classifier width; default: the table's ``num_classes``.

  Returns:
    The predictor.

  Raises:
    LutError: the table lacks an entry an architecture of this space needs.
  """
  if num_classes is None:
    num_classes = table.meta.get("num_classes")
    if not isinstance(num_classes, int):
      raise LutError(
          "num_classes: the table does not record it; pass num_classes"
      )
  k_all, n, m = space.num_dags, space.nodes, space.dags_per_hierarchy
  if np.shape(ops) != (k_all, n):
    raise LutError(
        f"ops: expected shape {(k_all, n)} for this space, got {np.shape(ops)}"
    )
  lay = Layout(space, static_ops(ops))
  h, w, c = (int(s) for s in input_shape)
  stem = 0.0
  for op in space.stem_layers():
    stem += table.lookup("conv", (op.kernel, op.stride, op.channels, h, w), c)
    h, w, c = same_out(h, op.stride), same_out(w, op.stride), op.channels
  widths = np.asarray(lay.widths, np.float32)  # [K, n]
  wset = np.asarray(sorted({int(x) for x in widths.ravel()}), np.float32)

  def stack(curves, shape):
    size = max(2, max(len(cv.x) for cv in curves))
    xs, ys, pts = zip(*(cv.padded(size) for cv in curves))
    return (
        np.asarray(xs, np.float32).reshape(shape + (size,)),
        np.asarray(ys, np.float32).reshape(shape + (size,)),
        np.asarray(pts, np.int32).reshape(shape),
    )

  fold = space.aggregate == "concat" and m > 1  # as in `items`
  most = n if space.dag_output == "all" else n - 1  # as in `requirements`
  blocks = []  # per hierarchy: its arrays
  for hi in range(space.hierarchies):
    d: Dict[str, Any] = {"pool": None}
    if hi > 0:
      d["pool"] = stack([table.curve("pool", (space.pool, h, w))], ())
      h, w = same_out(h, 2), same_out(w, 2)
    ks = range(hi * m, (hi + 1) * m)
    d["conv"] = stack(
        [
            table.curve("conv", (lay.kernels[k][v], 1, lay.widths[k][v], h, w))
            for k in ks
            for v in range(n)
        ],
        (m, n),
    )
    if space.aggregate == "sum":
      # pad[a, u, t]: node u's output zero-padded to width wset[t].
      pad = np.zeros((m, n, len(wset)), np.float32)
      for a, k in enumerate(ks):
        for u in range(n):
          for t, top in enumerate(wset):
            if widths[k, u] < top:
              pad[a, u, t] = table.lookup(
                  "pad", (int(top), h, w), int(widths[k, u])
              )
      d["pad"] = pad
      d["add"] = stack([table.curve("add", (h, w))], ())
      if m > 1:
        d["hier_concat"] = stack([table.curve("concat", (m, h, w))], ())
    else:
      # Row j: a concatenation of j inputs (nodes and DAG outputs: j <=
      # most; with m > 1 the hierarchy's folded one: m <= j <= m * most).
      top = m * most if fold else most
      d["concat"] = stack(
          [
              table.curve("concat", (j, h, w))
              if 2 <= j <= most or (fold and m <= j <= top)
              else Curve((1,), (0.0,))
              for j in range(top + 1)
          ],
          (top + 1,),
      )
    d["widths"] = widths[hi * m : (hi + 1) * m]
    blocks.append(d)
  head = stack([table.curve("head", (num_classes, h, w))], ())
  aggregate, scale = space.aggregate, float(table.scale)
  const, c0 = float(table.constant_ms), float(c)
  # earlier[v', v]: consumer v' (nodes 0..n-1, then the DAG output n)
  # comes before consumer v.
  earlier = np.tril(np.ones((n + 1, n + 1), bool), k=-1).T

  def interp(x, arrays):
    xs, ys, pts = (jnp.asarray(a) for a in arrays)
    shape = jnp.shape(x)
    return interpolate(
        x,
        jnp.broadcast_to(xs, shape + xs.shape[-1:]),
        jnp.broadcast_to(ys, shape + ys.shape[-1:]),
        jnp.broadcast_to(pts, shape),
        xp=jnp,
    )

  def block_cost(d, eff, live, sink, cin0):
    """Latency of one hierarchy's DAGs, their output width and the number
    of nodes the DAG outputs read."""
    # Consumers: the n nodes, then the DAG output (which reads `sink`: the
    # output nodes of `dag_output`).
    e = jnp.concatenate([eff, sink[:, :, None]], axis=2)  # [m, n, n+1]
    ef = e.astype(jnp.float32)
    wd = jnp.asarray(d["widths"])[:, :, None]  # [m, n, 1]
    count = jnp.sum(e, axis=1)  # [m, n+1]
    # same[a, v', v, u]: consumers v' and v read the same inputs <= u.
    diff = (e[:, :, :, None] != e[:, :, None, :]).astype(jnp.int32)
    same = jnp.cumsum(jnp.moveaxis(diff, 1, -1), axis=-1) == 0
    if aggregate == "sum":
      width = jnp.max(ef * wd, axis=1)  # [m, n+1]
      onehot = width[..., None] == wset  # [m, n+1, T]
      need = jnp.any(e[..., None] & onehot[:, None], axis=2)  # [m, n, T]
      agg = jnp.sum(jnp.where(need, jnp.asarray(d["pad"]), 0.0))
      # A partial sum ending at input u is new unless an earlier consumer
      # of the same width sums the same leading inputs.
      dup = jnp.any(
          earlier[None, :, :, None]
          & same
          & (width[:, :, None] == width[:, None, :])[..., None],
          axis=1,
      )  # [m, n+1, n]
      leading = jnp.cumsum(e, axis=1) >= 2  # [m, n, n+1]
      adds = jnp.sum(e & leading & ~jnp.moveaxis(dup, -1, 1), axis=1)
      agg += jnp.sum(adds * interp(width, d["add"]))
    else:
      width = jnp.sum(ef * wd, axis=1)
      dup = jnp.any(earlier[None] & same[..., -1], axis=1)  # [m, n+1]
      xs, ys, pts = (jnp.asarray(a) for a in d["concat"])
      j = jnp.clip(count, 0, xs.shape[0] - 1)
      cost = interpolate(width, xs[j], ys[j], pts[j], xp=jnp)
      if fold:  # the DAG outputs are part of the hierarchy's concat
        cost = cost.at[:, n].set(0.0)
      agg = jnp.sum(jnp.where((count >= 2) & ~dup, cost, 0.0))
    cin = width[:, :n].at[:, 0].set(cin0)
    conv = jnp.sum(jnp.where(live, interp(cin, d["conv"]), 0.0))
    return conv + agg, jnp.sum(width[:, n]), jnp.sum(count[:, n])

  def predict(masks: jax.Array) -> jax.Array:
    masks = jnp.asarray(masks, bool)
    eff = mg.effective(masks)
    live = mg.live_nodes(masks)
    sink = mg.output_nodes(eff, space.dag_output)
    total = jnp.float32(stem)
    cin = jnp.float32(c0)
    for hi, d in enumerate(blocks):
      sl = slice(hi * m, (hi + 1) * m)
      if d["pool"] is not None:
        total += interp(cin, d["pool"])
      cost, cin, sinks = block_cost(d, eff[sl], live[sl], sink[sl], cin)
      total += cost
      if "hier_concat" in d:
        total += interp(cin, d["hier_concat"])
      elif fold:
        xs, ys, pts = (jnp.asarray(a) for a in d["concat"])
        total += interpolate(cin, xs[sinks], ys[sinks], pts[sinks], xp=jnp)
    return const + scale * (total + interp(cin, head))

  return predict
