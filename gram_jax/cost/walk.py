"""What a latency table is keyed by: entry kinds and the layer walk.

`KINDS` names the entries a table can hold; `items` walks an `ArchSpec` the
way `ExactNet` builds it and the TFLite converter emits it:

  * ``conv``: a k x k conv -> BN -> ELU (BN folds into the conv in TFLite),
    keyed by kernel, stride, output channels and input resolution; its
    variable is the input width ``cin``. Stem convs and DAG nodes.
  * ``pad`` and ``add``: the "sum" aggregation (inputs zero-padded to the
    widest, then added in id order). The converter merges identical
    expressions, so a node output padded to a width is one PAD per DAG
    however many nodes read it, and a partial sum over the same leading
    inputs is one ADD: `items` counts them that way (checked against the
    op lists of exported models), which matters: a dense DAG has about half
    the PADs and three quarters of the ADDs a per-node count gives.
  * ``concat``: the "concat" aggregation (keyed by the number of inputs;
    identical concatenations counted once) and the channel concatenation
    of a hierarchy's m DAG outputs.
  * ``pool``: the 2x2 pool between hierarchies; ``head``: global average
    pooling and the dense classifier.

`requirements` enumerates the entries, and the widths of each, that an
architecture of a search space can produce. With ``"sum"`` aggregation they
are few (node inputs are one of the op widths; a hierarchy's width is a sum
of m of them), and every one is measured, so interpolation never happens.
With ``"concat"`` a node's input width is any sum of predecessor widths; up
to ``max_points`` of those (evenly spread, both ends included) are measured
and the rest interpolated: a conv's cost is close to linear in ``cin``, so
the fitted model per (kernel, cout, resolution) is the piecewise-linear one
through the measured points.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, NamedTuple, Sequence, Tuple

import numpy as np

from gram_jax import arch as arch_lib
from gram_jax.errors import GramJaxError
from gram_jax.shapes import same_out
from gram_jax.space import SearchSpace

# Key fields of each entry kind, in key order. `height` and `width` are the
# input resolution of the layer. The curve's variable (x) is the input
# channels (conv, pad) or the channels of the tensor(s) involved (add:
# each input's, concat: the output's, pool and head: the input's).
KINDS: Dict[str, Tuple[str, ...]] = {
    "conv": ("kernel", "stride", "cout", "height", "width"),
    "pad": ("cout", "height", "width"),
    "add": ("height", "width"),
    "concat": ("inputs", "height", "width"),
    "pool": ("mode", "height", "width"),
    "head": ("classes", "height", "width"),
}

Key = Tuple[Any, ...]

# Most widths measured per entry; feasible widths beyond them are
# interpolated (only "concat" spaces have that many).
DEFAULT_MAX_POINTS = 12


class LutError(GramJaxError):
  """A latency table is malformed, or lacks an entry a network needs."""


class Item(NamedTuple):
  """One layer of a network as the table sees it."""

  name: str
  kind: str
  key: Key
  x: int


def items(spec: arch_lib.ArchSpec, input_shape: Sequence[int]) -> List[Item]:
  """The layers of `ExactNet(spec)` at `input_shape` ``(H, W, C)``.

  Mirrors `ExactNet` (and `gram_jax.cost.macs.layers`): stem convs, per
  hierarchy a pool (h > 0), per DAG node its input aggregation and conv, per
  DAG its output aggregation, the concatenation of the m DAG outputs, then
  the head.
  """
  shape = tuple(input_shape)
  if len(shape) != 3 or not all(
      isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
      for s in shape
  ):
    raise LutError(
        f"input_shape: {shape!r} is not allowed; allowed: "
        "(H, W, C) positive integers"
    )
  h, w, c = (int(s) for s in shape)
  out: List[Item] = []
  for i, conv in enumerate(spec.stem):
    out.append(
        Item(
            f"stem{i}",
            "conv",
            (conv.kernel, conv.stride, conv.channels, h, w),
            c,
        )
    )
    h, w, c = same_out(h, conv.stride), same_out(w, conv.stride), conv.channels
  m = spec.dags_per_hierarchy

  def aggregate(name, ids, widths, seen):
    """Items of aggregating nodes `ids`; returns the aggregate's width.

    The TFLite converter merges identical expressions (CSE), so a node's
    output padded to a width is computed once per DAG, however many
    consumers need it, and so is each partial sum ``pad(x_a) + pad(x_b) +
    ...`` over the same leading inputs (inputs are summed in id order), and
    each concatenation of the same inputs: `seen` holds what a DAG already
    computes.
    """
    if len(ids) == 1:
      return widths[ids[0]]
    if spec.aggregate == "sum":
      top = max(widths[u] for u in ids)
      for i, u in enumerate(ids):
        if widths[u] < top and ("pad", u, top) not in seen:
          seen.add(("pad", u, top))
          out.append(Item(f"{name}_pad{i}", "pad", (top, h, w), widths[u]))
        prefix = ("add", top) + tuple(ids[: i + 1])
        if i > 0 and prefix not in seen:
          seen.add(prefix)
          out.append(Item(f"{name}_add{i}", "add", (h, w), top))
      return top
    total = sum(widths[u] for u in ids)
    if ("concat",) + tuple(ids) not in seen:
      seen.add(("concat",) + tuple(ids))
      out.append(Item(f"{name}_concat", "concat", (len(ids), h, w), total))
    return total

  # With "concat" aggregation and m > 1 the converter folds each DAG's
  # output concatenation into the hierarchy's: one concatenation of all
  # the sinks of the m DAGs.
  fold = spec.aggregate == "concat" and m > 1
  for hi in range(spec.hierarchies):
    if hi > 0:
      out.append(Item(f"pool{hi}", "pool", (spec.pool, h, w), c))
      h, w = same_out(h, 2), same_out(w, 2)
    outs, inputs = [], 0
    for j, dag in enumerate(spec.hierarchy(hi)):
      k = hi * m + j
      widths: Dict[int, int] = {}
      seen: set = set()
      for node in dag.nodes:
        name = f"dag{k}_node{node.id}"
        cin = c if node.id == 0 else aggregate(name, node.inputs, widths, seen)
        out.append(
            Item(name, "conv", (node.kernel, 1, node.channels, h, w), cin)
        )
        widths[node.id] = node.channels
      if fold:
        outs.append(sum(widths[s] for s in spec.outputs(dag)))
        inputs += len(spec.outputs(dag))
      else:
        outs.append(aggregate(f"dag{k}_out", spec.outputs(dag), widths, seen))
        inputs += 1
    if m > 1:
      out.append(
          Item(f"hierarchy{hi}_concat", "concat", (inputs, h, w), sum(outs))
      )
    c = sum(outs)
  out.append(Item("head", "head", (spec.num_classes, h, w), c))
  return out


def _sums(values: Iterable[int], counts: Iterable[int]) -> set:
  """Sums of exactly c values (with repetition) of `values`, c in `counts`."""
  values = sorted(set(values))
  counts = sorted(set(counts))
  if not counts:
    return set()
  reach = [{0}]
  for _ in range(counts[-1]):
    reach.append({s + v for s in reach[-1] for v in values})
  return set().union(*(reach[c] for c in counts))


def _grid(values: Iterable[int], max_points: int) -> Tuple[int, ...]:
  """All of `values` (sorted), or `max_points` of them spread evenly."""
  v = sorted(set(int(x) for x in values))
  if len(v) <= max_points:
    return tuple(v)
  idx = np.unique(np.round(np.linspace(0, len(v) - 1, max_points)).astype(int))
  return tuple(v[i] for i in idx)


def requirements(
    space: SearchSpace,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    max_points: int = DEFAULT_MAX_POINTS,
) -> Dict[Tuple[str, Key], Tuple[int, ...]]:
  """The entries (and widths to measure) any architecture of `space` needs.

  Args:
    space: the search space.
    input_shape: ``(H, W, C)`` of one input image.
    num_classes: classifier width.
    max_points: most widths measured per entry; feasible widths beyond that
      are interpolated (only "concat" spaces have that many).

  Returns:
    ``{(kind, key): widths}``, sorted by kind then key.
  """
  if not isinstance(max_points, int) or max_points < 2:
    raise LutError(
        f"max_points: {max_points!r} is not allowed; allowed: an integer >= 2"
    )
  h, w, c = (int(s) for s in input_shape)
  need: Dict[Tuple[str, Key], set] = {}

  def add(kind, key, xs):
    need.setdefault((kind, tuple(key)), set()).update(int(x) for x in xs)

  for op in space.stem_layers():
    add("conv", (op.kernel, op.stride, op.channels, h, w), [c])
    h, w, c = same_out(h, op.stride), same_out(w, op.stride), op.channels
  ops = [space.op(i) for i in range(space.num_ops)]
  widths = sorted({op.channels for op in ops})
  n, m = space.nodes, space.dags_per_hierarchy
  # Most nodes a DAG output reads: all n, or the n - 1 sinks of a DAG.
  most = n if space.dag_output == "all" else n - 1
  if space.aggregate == "sum":
    node_in = set(widths)  # the widest live predecessor
    dag_out = set(widths)  # the widest output node
  else:
    node_in = _sums(widths, range(1, n))
    dag_out = _sums(widths, range(1, most + 1))
  hier_out = _sums(dag_out, [m])  # m DAG outputs, concatenated
  hier_in = {c}
  for hi in range(space.hierarchies):
    if hi > 0:
      add("pool", (space.pool, h, w), hier_in)
      h, w = same_out(h, 2), same_out(w, 2)
    for op in ops:
      add("conv", (op.kernel, 1, op.channels, h, w), hier_in)
      add("conv", (op.kernel, 1, op.channels, h, w), node_in)
    if space.aggregate == "sum":
      for top in widths:
        narrower = [x for x in widths if x < top]
        if narrower:
          add("pad", (top, h, w), narrower)
      add("add", (h, w), widths)
      if m > 1:
        add("concat", (m, h, w), hier_out)
    else:
      # Node (and, for m = 1, DAG output) concatenations of j inputs, and
      # for m > 1 the hierarchy's of all output nodes; counts of inputs between
      # the measured ones are interpolated (`LatencyTable.curve`).
      for j in _grid(range(2, most + 1), max_points):
        add("concat", (j, h, w), _sums(widths, [j]))
      if m > 1:
        for j in _grid(range(m, m * most + 1), max_points):
          add("concat", (j, h, w), hier_out)
    hier_in = hier_out
  add("head", (num_classes, h, w), hier_in)
  return {k: _grid(need[k], max_points) for k in sorted(need, key=sort_key)}


def sort_key(kind_key):
  """Order of ``(kind, key)`` entries: by kind as in `KINDS`, then key."""
  kind, key = kind_key
  return (
      list(KINDS).index(kind),
      tuple(str(k) if isinstance(k, str) else f"{k:09d}" for k in key),
  )
