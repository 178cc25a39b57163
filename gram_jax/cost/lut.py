"""Per-op latency lookup tables: build, predict (also jitted), validate.

A `LatencyTable` holds the measured latency of every layer an architecture
of a search space can contain, on one target (this host with LiteRT, or an
Android phone with TFLite's ``benchmark_model``) at one thread count
(DESIGN.md decision 5). The latency of a network is predicted as

  ``constant_ms + scale * sum over its layers of entry(layer)``

Each entry is a *marginal* cost: the latency of a one-layer TFLite model
minus that of a model that does almost nothing (the fixed cost of one
``invoke()``). `build` then times a few random whole architectures in the
same session and fits ``constant_ms`` and ``scale`` to them
(`fit_calibration`): inside a whole network layers run a few percent slower
than alone. ``--calibrate 0`` keeps the plain sum (the measured invoke cost
and scale 1).

Layers (`items` walks an `ArchSpec` the way `ExactNet` builds it and the
TFLite converter emits it):

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

Each entry is a curve: latencies measured at a few values of its variable
(a width), read by piecewise-linear interpolation, and extrapolated linearly
from the two end points (never below zero). `requirements` enumerates the
widths an architecture of the space can produce. With ``"sum"`` aggregation
they are few (node inputs are one of the op widths; a hierarchy's width is a
sum of m of them), and every one is measured, so interpolation never
happens. With ``"concat"`` a node's input width is any sum of predecessor
widths; up to ``max_points`` of those (evenly spread, both ends included)
are measured and the rest interpolated: a conv's cost is close to linear in
``cin``, so the fitted model per (kernel, cout, resolution) is the
piecewise-linear one through the measured points.

Timing (`host_timer`) interleaves all models of a session over several
passes and keeps each model's fastest pass median, in a fresh process that
loads only LiteRT; see its docstring for why both matter on a shared CPU.

`LatencyTable.predict` sums the entries of an `ArchSpec`; `jax_predictor`
returns a jittable function of supernet masks ``bool[K, n, n]`` that gives
the same number (per node, its actual input width is computed from the
masks and the node's curve interpolated with jnp ops), so the latency term
can run inside the search program without retracing per candidate.

Tables are JSON (no pickle); `LatencyTable.load` validates every field and
raises one `LutError` line naming the bad one.

Measured on the project's 2-core CPU (quickstart space, 8x8x1 digits input,
1 thread; `benchmarks/lut_validate_host.py`), two build + validate runs on
50 new random architectures of 23-115 us: 100% within ±10% both times,
98-100% within ±5%, RMSE 0.6-1.3 us, Spearman 0.999. The same space with
"concat" aggregation (``--max-points 5``, 30 architectures): 100% within
±10%, 93% within ±5%.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import (Any, Callable, Dict, Iterable, List, NamedTuple,
                    Optional, Sequence, Tuple)

import jax
import jax.numpy as jnp
import numpy as np

from gram_jax import arch as arch_lib
from gram_jax import io
from gram_jax import metagraph as mg
from gram_jax.errors import GramJaxError
from gram_jax.space import POOLS, SearchSpace

FORMAT = "gram_jax.LatencyTable"
VERSION = 1
TARGETS = ("host", "android")

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

# Host defaults: timed invokes per pass, passes (interleaved over all
# models; the smallest pass median is kept) and untimed warm-up invokes.
DEFAULT_RUNS = 500
DEFAULT_ROUNDS = 7
DEFAULT_WARMUP = 20
DEFAULT_MAX_POINTS = 12
# Architectures timed by `build` to fit the table's scale, and the base seed
# they are drawn with (`validate` draws from seed 0 by default).
DEFAULT_CALIBRATE = 12
CALIBRATION_SEED = 1000


class LutError(GramJaxError):
  """A latency table is malformed, or lacks an entry a network needs."""


class Item(NamedTuple):
  """One layer of a network as the table sees it."""
  name: str
  kind: str
  key: Key
  x: int


@dataclasses.dataclass(frozen=True)
class Curve:
  """Latencies ``ms`` measured at increasing widths ``x``."""
  x: Tuple[int, ...]
  ms: Tuple[float, ...]

  def padded(self, size: int) -> Tuple[np.ndarray, np.ndarray, int]:
    """``(x, ms, points)`` padded to `size` for `interpolate` (>= 2 points)."""
    x = [float(v) for v in self.x]
    y = [float(v) for v in self.ms]
    if len(x) == 1:  # a flat curve through the single point
      x, y = [x[0], x[0] + 1.0], [y[0], y[0]]
    points = len(x)
    x += [np.inf] * (size - points)
    y += [0.0] * (size - points)
    return np.asarray(x), np.asarray(y), points


def interpolate(x, xs, ys, points, xp=np):
  """Piecewise-linear interpolation with linear extrapolation, >= 0.

  Works on batches: `x` is ``[...]``, `xs` and `ys` ``[..., P]`` (padded
  with ``inf`` / 0 after `points` >= 2 valid entries), `points` ``[...]``.
  `xp` is numpy or jax.numpy; both give the same formula.
  """
  x = xp.asarray(x, dtype=xs.dtype)
  below = xp.sum((xs <= x[..., None]).astype(xp.int32), axis=-1)
  i = xp.clip(below - 1, 0, points - 2)[..., None]
  x0 = xp.take_along_axis(xs, i, axis=-1)[..., 0]
  x1 = xp.take_along_axis(xs, i + 1, axis=-1)[..., 0]
  y0 = xp.take_along_axis(ys, i, axis=-1)[..., 0]
  y1 = xp.take_along_axis(ys, i + 1, axis=-1)[..., 0]
  y = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
  return xp.maximum(y, 0.0)


def _same_out(size: int, stride: int) -> int:
  return -(-size // stride)


# --- the layer walk -----------------------------------------------------------


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
      for s in shape):
    raise LutError(f"input_shape: {shape!r} is not allowed; allowed: "
                   "(H, W, C) positive integers")
  h, w, c = (int(s) for s in shape)
  out: List[Item] = []
  for i, conv in enumerate(spec.stem):
    out.append(Item(f"stem{i}", "conv",
                    (conv.kernel, conv.stride, conv.channels, h, w), c))
    h, w, c = _same_out(h, conv.stride), _same_out(w, conv.stride), \
        conv.channels
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
        prefix = ("add", top) + tuple(ids[:i + 1])
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
      h, w = _same_out(h, 2), _same_out(w, 2)
    outs, inputs = [], 0
    for j, dag in enumerate(spec.hierarchy(hi)):
      k = hi * m + j
      widths: Dict[int, int] = {}
      seen: set = set()
      for node in dag.nodes:
        name = f"dag{k}_node{node.id}"
        cin = c if node.id == 0 else aggregate(name, node.inputs, widths,
                                               seen)
        out.append(Item(name, "conv", (node.kernel, 1, node.channels, h, w),
                        cin))
        widths[node.id] = node.channels
      if fold:
        outs.append(sum(widths[s] for s in spec.outputs(dag)))
        inputs += len(spec.outputs(dag))
      else:
        outs.append(aggregate(f"dag{k}_out", spec.outputs(dag), widths, seen))
        inputs += 1
    if m > 1:
      out.append(Item(f"hierarchy{hi}_concat", "concat", (inputs, h, w),
                      sum(outs)))
    c = sum(outs)
  out.append(Item("head", "head", (spec.num_classes, h, w), c))
  return out


# --- what a space needs -------------------------------------------------------


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
  idx = np.unique(np.round(np.linspace(0, len(v) - 1, max_points)).astype(
      int))
  return tuple(v[i] for i in idx)


def requirements(space: SearchSpace, input_shape: Sequence[int],
                 num_classes: int, *,
                 max_points: int = DEFAULT_MAX_POINTS
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
    raise LutError(f"max_points: {max_points!r} is not allowed; allowed: an "
                   "integer >= 2")
  h, w, c = (int(s) for s in input_shape)
  need: Dict[Tuple[str, Key], set] = {}

  def add(kind, key, xs):
    need.setdefault((kind, tuple(key)), set()).update(int(x) for x in xs)

  for op in space.stem_layers():
    add("conv", (op.kernel, op.stride, op.channels, h, w), [c])
    h, w, c = _same_out(h, op.stride), _same_out(w, op.stride), op.channels
  ops = [space.op(i) for i in range(space.num_ops)]
  widths = sorted({op.channels for op in ops})
  n, m = space.nodes, space.dags_per_hierarchy
  # Most nodes a DAG output reads: all n, or the n - 1 sinks of a DAG.
  most = n if space.dag_output == "all" else n - 1
  if space.aggregate == "sum":
    node_in = set(widths)          # the widest live predecessor
    dag_out = set(widths)          # the widest output node
  else:
    node_in = _sums(widths, range(1, n))
    dag_out = _sums(widths, range(1, most + 1))
  hier_out = _sums(dag_out, [m])   # m DAG outputs, concatenated
  hier_in = {c}
  for hi in range(space.hierarchies):
    if hi > 0:
      add("pool", (space.pool, h, w), hier_in)
      h, w = _same_out(h, 2), _same_out(w, 2)
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
  return {k: _grid(need[k], max_points) for k in sorted(need, key=_sort_key)}


def _sort_key(kind_key):
  kind, key = kind_key
  return (list(KINDS).index(kind), tuple(str(k) if isinstance(k, str) else
                                         f"{k:09d}" for k in key))


# --- the table ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LatencyTable:
  """Measured per-layer latencies of one target.

  Attributes:
    target: ``"host"`` (LiteRT on this machine) or ``"android"``.
    threads: interpreter threads the entries were measured with.
    constant_ms: added once per network: the measured cost of one invoke,
      or the intercept fitted by `build`'s calibration (it may then be
      slightly negative).
    curves: ``{(kind, key): Curve}``; see `KINDS` for the keys.
    scale: calibration factor applied to the sum of the entries (1.0: none;
      `build` fits it on a few whole architectures, see `fit_calibration`).
    meta: everything else that is recorded: space, input shape, classes,
      measurement settings, machine and library versions, creation time.
  """
  target: str
  threads: int
  constant_ms: float
  curves: Dict[Tuple[str, Key], Curve]
  scale: float = 1.0
  meta: Dict[str, Any] = dataclasses.field(default_factory=dict)

  # --- prediction ---

  def curve(self, kind: str, key: Key) -> Curve:
    """The entry's curve.

    A concatenation of j inputs whose j was not measured is read from the
    two nearest measured counts at the same resolution, linearly in j (on
    the union of their widths, so the result is again piecewise linear).
    """
    found = self.curves.get((kind, tuple(key)))
    if found is None and kind == "concat":
      found = self._concat_between(*key)
    if found is None:
      fields = ", ".join(f"{f}={v}" for f, v in zip(KINDS[kind], key))
      raise LutError(f"the latency table has no {kind} entry with {fields}; "
                     "build a table for this search space and input shape "
                     "(gram-jax lut build)")
    return found

  def _concat_between(self, j: int, h: int, w: int) -> Optional[Curve]:
    measured = sorted(k[1][0] for k in self.curves
                      if k[0] == "concat" and k[1][1:] == (h, w))
    below = [i for i in measured if i < j]
    above = [i for i in measured if i > j]
    if not below or not above:
      return None
    lo = self.curves[("concat", (below[-1], h, w))]
    hi = self.curves[("concat", (above[0], h, w))]
    t = (j - below[-1]) / (above[0] - below[-1])
    xs = sorted(set(lo.x) | set(hi.x))

    def at(curve, x):
      px, py, pts = curve.padded(max(2, len(curve.x)))
      return float(interpolate(np.float64(x), px, py, np.int32(pts)))

    return Curve(tuple(xs), tuple((1 - t) * at(lo, x) + t * at(hi, x)
                                  for x in xs))

  def lookup(self, kind: str, key: Key, x: int) -> float:
    """The marginal latency (ms) of one layer."""
    curve = self.curve(kind, key)
    xs, ys, points = curve.padded(len(curve.x) if len(curve.x) > 1 else 2)
    return float(interpolate(np.float64(x), xs, ys, np.int32(points)))

  def breakdown(self, spec: arch_lib.ArchSpec,
                input_shape: Sequence[int]) -> List[Tuple[Item, float]]:
    """Every layer of `spec` with its predicted marginal latency (ms)."""
    return [(it, self.lookup(it.kind, it.key, it.x))
            for it in items(spec, input_shape)]

  def predict(self, spec: arch_lib.ArchSpec,
              input_shape: Sequence[int]) -> float:
    """Predicted latency (ms) of `ExactNet(spec)` at `input_shape`."""
    return self.constant_ms + self.scale * sum(
        ms for _, ms in self.breakdown(spec, input_shape))

  # --- JSON ---

  def to_dict(self) -> Dict[str, Any]:
    entries = []
    for (kind, key), curve in sorted(self.curves.items(),
                                     key=lambda kv: _sort_key(kv[0])):
      e = {"kind": kind}
      e.update(zip(KINDS[kind], key))
      e["x"] = list(curve.x)
      e["ms"] = [_short(v) for v in curve.ms]
      entries.append(e)
    return {"format": FORMAT, "version": VERSION, "target": self.target,
            "threads": self.threads,
            "constant_ms": _short(self.constant_ms),
            "scale": _short(self.scale),
            **{k: v for k, v in self.meta.items() if k not in _TOP_FIELDS},
            "entries": entries}

  def to_json(self) -> str:
    d = self.to_dict()
    entries = d.pop("entries")
    head = json.dumps(d, indent=1)[:-2]
    lines = ",\n  ".join(json.dumps(e) for e in entries)
    return f"{head},\n \"entries\": [\n  {lines}\n ]\n}}\n"

  @classmethod
  def from_dict(cls, d: Any, *, where: str = "lut") -> "LatencyTable":
    return _from_dict(d, where)

  @classmethod
  def from_json(cls, text: str, *, where: str = "lut.json"
                ) -> "LatencyTable":
    try:
      d = json.loads(text)
    except json.JSONDecodeError as e:
      raise LutError(f"{where}: not valid JSON ({e.msg} at line {e.lineno} "
                     f"column {e.colno})") from None
    return _from_dict(d, where)

  def save(self, path: str) -> None:
    """Writes the table as JSON, atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
      raise LutError(f"{path}: directory {directory} does not exist")
    io.write_bytes_atomic(path, self.to_json().encode())

  @classmethod
  def load(cls, path: str) -> "LatencyTable":
    return _from_dict(io.read_json(path, LutError), path)


def _short(value: float) -> float:
  """`value` to 6 significant digits: readable JSON, 1e-6 relative."""
  return float(f"{float(value):.6g}")


_TOP_FIELDS = ("format", "version", "target", "threads", "constant_ms",
               "scale", "entries")
# Recorded fields that must be JSON objects (or null) when present.
_META_OBJECTS = ("space", "machine", "versions", "settings", "device",
                 "calibration")


def _from_dict(d: Any, where: str) -> LatencyTable:
  def fail(field, msg):
    raise LutError(f"{where}{'.' + field if field else ''}: {msg}"[:400])

  def is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

  def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) \
        and math.isfinite(v)

  if not isinstance(d, dict):
    fail("", f"expected a JSON object, got {type(d).__name__}")
  if d.get("format") != FORMAT:
    fail("format", f"expected {FORMAT!r}, got {d.get('format')!r}")
  if d.get("version") != VERSION:
    fail("version", f"expected {VERSION}, got {d.get('version')!r}")
  for field in ("target", "threads", "constant_ms", "scale", "entries"):
    if field not in d:
      fail("", f"missing field {field!r}")
  if d["target"] not in TARGETS:
    fail("target", f"{d['target']!r} is not allowed; allowed: "
         f"{', '.join(TARGETS)}")
  if not is_int(d["threads"]) or d["threads"] < 1:
    fail("threads", f"{d['threads']!r} is not allowed; allowed: an integer "
         ">= 1")
  if not is_num(d["constant_ms"]):
    fail("constant_ms", f"{d['constant_ms']!r} is not allowed; allowed: a "
         "finite number (ms)")
  if not is_num(d["scale"]) or d["scale"] <= 0:
    fail("scale", f"{d['scale']!r} is not allowed; allowed: a finite number "
         "> 0")
  for field in _META_OBJECTS:
    if d.get(field) is not None and not isinstance(d[field], dict):
      fail(field, f"expected an object, got {type(d[field]).__name__}")
  if "input_shape" in d and d["input_shape"] is not None and not (
      isinstance(d["input_shape"], list) and len(d["input_shape"]) == 3
      and all(is_int(v) and v >= 1 for v in d["input_shape"])):
    fail("input_shape", f"{d['input_shape']!r} is not allowed; allowed: "
         "[H, W, C] positive integers")
  if not isinstance(d["entries"], list):
    fail("entries", f"expected a list, got {type(d['entries']).__name__}")
  curves: Dict[Tuple[str, Key], Curve] = {}
  for i, e in enumerate(d["entries"]):
    w = f"entries[{i}]"
    if not isinstance(e, dict):
      fail(w, f"expected an object, got {type(e).__name__}")
    kind = e.get("kind")
    if kind not in KINDS:
      fail(f"{w}.kind", f"{kind!r} is not allowed; allowed: "
           f"{', '.join(KINDS)}")
    fields = KINDS[kind]
    allowed = ("kind",) + fields + ("x", "ms")
    for f in allowed:
      if f not in e:
        fail(w, f"missing field {f!r} (a {kind} entry has "
             f"{', '.join(allowed)})")
    extra = sorted(set(e) - set(allowed))
    if extra:
      fail(f"{w}.{extra[0]}", f"unknown field; a {kind} entry has "
           f"{', '.join(allowed)}")
    key = []
    for f in fields:
      v = e[f]
      if f == "mode":
        if v not in POOLS:
          fail(f"{w}.{f}", f"{v!r} is not allowed; allowed: "
               f"{', '.join(POOLS)}")
      elif not is_int(v) or v < 1:
        fail(f"{w}.{f}", f"{v!r} is not allowed; allowed: an integer >= 1")
      key.append(v if f == "mode" else int(v))
    xs, ms = e["x"], e["ms"]
    if not isinstance(xs, list) or not xs or not all(
        is_int(v) and v >= 1 for v in xs):
      fail(f"{w}.x", f"expected a non-empty list of integers >= 1, got "
           f"{xs!r}")
    if any(b <= a for a, b in zip(xs, xs[1:])):
      fail(f"{w}.x", f"must be strictly increasing, got {xs!r}")
    if not isinstance(ms, list) or len(ms) != len(xs) or not all(
        is_num(v) and v >= 0 for v in ms):
      fail(f"{w}.ms", f"expected {len(xs)} finite numbers >= 0 (one per "
           f"x), got {ms!r}")
    k = (kind, tuple(key))
    if k in curves:
      fail(w, f"duplicate {kind} entry with "
           f"{', '.join(f'{f}={v}' for f, v in zip(fields, key))}")
    curves[k] = Curve(tuple(int(v) for v in xs), tuple(float(v) for v in ms))
  meta = {k: v for k, v in d.items() if k not in _TOP_FIELDS}
  return LatencyTable(target=d["target"], threads=int(d["threads"]),
                      constant_ms=float(d["constant_ms"]), curves=curves,
                      scale=float(d["scale"]), meta=meta)


# --- the jittable predictor ---------------------------------------------------


def check_table(table: LatencyTable, space: SearchSpace,
                input_shape: Sequence[int], *, where: str,
                space_flag: str = "space",
                shape_flag: str = "input_shape") -> None:
  """Raises a one-line `LutError` unless `table` was built for `space` and
  `input_shape` (as recorded in its metadata by `build`).

  Args:
    table: the latency table.
    space: the search space it is used for.
    input_shape: ``(H, W, C)`` it is used at.
    where: the table's file, for the message.
    space_flag, shape_flag: how the caller names the space and the shape.
  """
  recorded = table.meta.get("space")
  if isinstance(recorded, dict):
    mine = space.to_dict()
    for field in sorted(set(recorded) | set(mine)):
      if recorded.get(field) != mine.get(field):
        raise LutError(
            f"{space_flag}: the config's space.{field} is "
            f"{mine.get(field)!r} but {where} was built for "
            f"{recorded.get(field)!r}; build a table for this space")
  built = table.meta.get("input_shape")
  if built is not None and tuple(built) != tuple(input_shape):
    raise LutError(f"{shape_flag}: {','.join(map(str, input_shape))} but "
                   f"{where} was built for {','.join(map(str, built))}")


def jax_predictor(table: LatencyTable, space: SearchSpace, ops: Any,
                  input_shape: Sequence[int],
                  num_classes: Optional[int] = None
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
  from gram_jax.models.supernet import Layout, static_ops
  if num_classes is None:
    num_classes = table.meta.get("num_classes")
    if not isinstance(num_classes, int):
      raise LutError("num_classes: the table does not record it; pass "
                     "num_classes")
  k_all, n, m = space.num_dags, space.nodes, space.dags_per_hierarchy
  if np.shape(ops) != (k_all, n):
    raise LutError(f"ops: expected shape {(k_all, n)} for this space, got "
                   f"{np.shape(ops)}")
  lay = Layout(space, static_ops(ops))
  h, w, c = (int(s) for s in input_shape)
  stem = 0.0
  for op in space.stem_layers():
    stem += table.lookup("conv", (op.kernel, op.stride, op.channels, h, w),
                         c)
    h, w, c = _same_out(h, op.stride), _same_out(w, op.stride), op.channels
  widths = np.asarray(lay.widths, np.float32)               # [K, n]
  wset = np.asarray(sorted({int(x) for x in widths.ravel()}), np.float32)

  def stack(curves, shape):
    size = max(2, max(len(cv.x) for cv in curves))
    xs, ys, pts = zip(*(cv.padded(size) for cv in curves))
    return (np.asarray(xs, np.float32).reshape(shape + (size,)),
            np.asarray(ys, np.float32).reshape(shape + (size,)),
            np.asarray(pts, np.int32).reshape(shape))

  fold = space.aggregate == "concat" and m > 1    # as in `items`
  most = n if space.dag_output == "all" else n - 1  # as in `requirements`
  blocks = []                    # per hierarchy: its arrays
  for hi in range(space.hierarchies):
    d: Dict[str, Any] = {"pool": None}
    if hi > 0:
      d["pool"] = stack([table.curve("pool", (space.pool, h, w))], ())
      h, w = _same_out(h, 2), _same_out(w, 2)
    ks = range(hi * m, (hi + 1) * m)
    d["conv"] = stack([table.curve("conv", (lay.kernels[k][v], 1,
                                            lay.widths[k][v], h, w))
                       for k in ks for v in range(n)], (m, n))
    if space.aggregate == "sum":
      # pad[a, u, t]: node u's output zero-padded to width wset[t].
      pad = np.zeros((m, n, len(wset)), np.float32)
      for a, k in enumerate(ks):
        for u in range(n):
          for t, top in enumerate(wset):
            if widths[k, u] < top:
              pad[a, u, t] = table.lookup("pad", (int(top), h, w),
                                          int(widths[k, u]))
      d["pad"] = pad
      d["add"] = stack([table.curve("add", (h, w))], ())
      if m > 1:
        d["hier_concat"] = stack([table.curve("concat", (m, h, w))], ())
    else:
      # Row j: a concatenation of j inputs (nodes and DAG outputs: j <=
      # most; with m > 1 the hierarchy's folded one: m <= j <= m * most).
      top = m * most if fold else most
      d["concat"] = stack(
          [table.curve("concat", (j, h, w))
           if 2 <= j <= most or (fold and m <= j <= top)
           else Curve((1,), (0.0,))
           for j in range(top + 1)], (top + 1,))
    d["widths"] = widths[hi * m:(hi + 1) * m]
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
    return interpolate(x, jnp.broadcast_to(xs, shape + xs.shape[-1:]),
                       jnp.broadcast_to(ys, shape + ys.shape[-1:]),
                       jnp.broadcast_to(pts, shape), xp=jnp)

  def block_cost(d, eff, live, sink, cin0):
    """Latency of one hierarchy's DAGs, their output width and the number
    of nodes the DAG outputs read."""
    # Consumers: the n nodes, then the DAG output (which reads `sink`: the
    # output nodes of `dag_output`).
    e = jnp.concatenate([eff, sink[:, :, None]], axis=2)   # [m, n, n+1]
    ef = e.astype(jnp.float32)
    wd = jnp.asarray(d["widths"])[:, :, None]                # [m, n, 1]
    count = jnp.sum(e, axis=1)                               # [m, n+1]
    # same[a, v', v, u]: consumers v' and v read the same inputs <= u.
    diff = (e[:, :, :, None] != e[:, :, None, :]).astype(jnp.int32)
    same = jnp.cumsum(jnp.moveaxis(diff, 1, -1), axis=-1) == 0
    if aggregate == "sum":
      width = jnp.max(ef * wd, axis=1)                       # [m, n+1]
      onehot = width[..., None] == wset                      # [m, n+1, T]
      need = jnp.any(e[..., None] & onehot[:, None], axis=2)  # [m, n, T]
      agg = jnp.sum(jnp.where(need, jnp.asarray(d["pad"]), 0.0))
      # A partial sum ending at input u is new unless an earlier consumer
      # of the same width sums the same leading inputs.
      dup = jnp.any(earlier[None, :, :, None] & same
                    & (width[:, :, None] == width[:, None, :])[..., None],
                    axis=1)                                  # [m, n+1, n]
      leading = jnp.cumsum(e, axis=1) >= 2                   # [m, n, n+1]
      adds = jnp.sum(e & leading & ~jnp.moveaxis(dup, -1, 1), axis=1)
      agg += jnp.sum(adds * interp(width, d["add"]))
    else:
      width = jnp.sum(ef * wd, axis=1)
      dup = jnp.any(earlier[None] & same[..., -1], axis=1)    # [m, n+1]
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


# --- one-layer models ---------------------------------------------------------


def layer_function(kind: str, key: Key, x: int, *, seed: int = 0):
  """A one-layer JAX function and its input shape ``(1, H, W, C)``.

  The layer is built from the same modules `ExactNet` uses, with random
  weights, so its TFLite form is the one a whole network contains.

  Returns:
    ``(fn, input_shape, width)``: `width` is the x actually realised (a
    concat of j equal inputs rounds x to a multiple of j).
  """
  import flax.linen as nn
  from gram_jax.models import layers
  p = dict(zip(KINDS[kind], key))
  hw = (1, p["height"], p["width"])
  rng = jax.random.key(seed)
  if kind == "conv":
    mod = layers.ConvBNAct(p["cout"], p["kernel"], p["stride"])
    v = mod.init(rng, jnp.zeros(hw + (x,)), train=False)
    return (lambda a: mod.apply(v, a, train=False)), hw + (x,), x
  if kind == "pad":
    return (lambda a: layers.pad_channels(a, p["cout"])), hw + (x,), x
  if kind == "add":
    return (lambda a: a + a), hw + (x,), x
  if kind == "concat":
    j = p["inputs"]
    part = max(1, int(round(x / j)))
    return (lambda a: jnp.concatenate([a] * j, axis=-1)), hw + (part,), \
        part * j
  if kind == "pool":
    return (lambda a: layers.pool(a, p["mode"])), hw + (x,), x
  if kind == "head":

    class Head(nn.Module):

      @nn.compact
      def __call__(self, a):
        return layers.head(a, p["classes"])

    mod = Head()
    v = mod.init(rng, jnp.zeros(hw + (x,)))
    return (lambda a: mod.apply(v, a)), hw + (x,), x
  raise LutError(f"kind: {kind!r} is not allowed; allowed: "
                 f"{', '.join(KINDS)}")


def constant_function():
  """The near-empty model whose latency is the per-invoke constant."""
  return (lambda a: a * 2.0), (1, 1, 1, 1)


# --- timers -------------------------------------------------------------------

Timer = Callable[[Sequence[bytes]], List[float]]


def host_timer(*, threads: int = 1, runs: int = DEFAULT_RUNS,
               rounds: int = DEFAULT_ROUNDS, warmup: int = DEFAULT_WARMUP,
               isolate: bool = True,
               log: Optional[Callable[[str], None]] = None) -> Timer:
  """Times models with LiteRT here: `rounds` interleaved passes.

  Each pass times every model once (`latency.measure_tflite`: a fresh
  interpreter, `warmup` untimed then `runs` timed invokes, their median),
  in a new random order per pass. A model's latency is the *smallest* of
  its pass medians: on a shared machine other processes slow whole passes
  down (by up to 1.6x on the project's 2-core box, for seconds at a time),
  and the fastest pass is the reproducible, uncontended figure.

  With `isolate` (the default) the timing runs in a fresh Python process
  that loads only LiteRT: after a process has converted models with
  TensorFlow and JAX, LiteRT runs the same model about 8% slower in it (so
  a table timed there would not match ``gram-jax latency``).
  """

  def timer(models: Sequence[bytes]) -> List[float]:
    if not isolate:
      return _time_models(list(models), threads, runs, rounds, warmup, log)
    with tempfile.TemporaryDirectory(prefix="gram_jax_lut_") as tmp:
      paths = []
      for i, model in enumerate(models):
        paths.append(os.path.join(tmp, f"model{i:05d}.tflite"))
        with open(paths[-1], "wb") as f:
          f.write(model)
      job = os.path.join(tmp, "job.json")
      result = os.path.join(tmp, "result.json")
      with open(job, "w") as f:
        json.dump({"paths": paths, "threads": threads, "runs": runs,
                   "rounds": rounds, "warmup": warmup, "out": result}, f)
      code = ("import sys; from gram_jax.cost.lut import _timing_child; "
              "_timing_child(sys.argv[1])")
      proc = subprocess.Popen([sys.executable, "-c", code, job],
                              stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
      for line in proc.stdout:
        if log and line.strip():
          log(line.rstrip())
      err = proc.stderr.read()
      if proc.wait() != 0 or not os.path.exists(result):
        lines = [x for x in err.splitlines() if x.strip()]
        raise LutError("timing process failed: "
                       f"{lines[-1][:300] if lines else 'no message'}")
      with open(result) as f:
        return [float(v) for v in json.load(f)]

  return timer


def _time_models(models, threads, runs, rounds, warmup, log) -> List[float]:
  from gram_jax.export import latency
  per: List[List[float]] = [[] for _ in models]
  order = np.arange(len(models))
  rng = np.random.default_rng(0)
  for r in range(rounds):
    rng.shuffle(order)
    for i in order:
      s = latency.measure_tflite(models[i], threads=threads, runs=runs,
                                 warmup=warmup)
      per[i].append(s["median_ms"])
    if log:
      log(f"  pass {r + 1}/{rounds} done")
  return [float(min(p)) for p in per]


def _timing_child(job_path: str) -> None:
  """Entry point of `host_timer`'s timing process."""
  with open(job_path) as f:
    job = json.load(f)
  times = _time_models(job["paths"], job["threads"], job["runs"],
                       job["rounds"], job["warmup"],
                       lambda m: print(m, flush=True))
  with open(job["out"], "w") as f:
    json.dump(times, f)


def android_timer(*, threads: int = 1, runs: int = 50, rounds: int = 1,
                  warmup: int = 10, log: Optional[Callable[[str], None]] = None,
                  **device: Any) -> Timer:
  """Times models on an Android phone with `android.benchmark_on_device`.

  `device` passes on serial, benchmark_binary, cpu_mask, use_xnnpack, adb
  and runner (a fake in tests). Each model is written to a temporary file
  and benchmarked `rounds` times; its latency is the median of the tool's
  medians (its averages where it prints no median).
  """
  from gram_jax.export import android

  def timer(models: Sequence[bytes]) -> List[float]:
    per = [[] for _ in models]
    with tempfile.TemporaryDirectory(prefix="gram_jax_lut_") as tmp:
      paths = []
      for i, model in enumerate(models):
        path = os.path.join(tmp, f"layer{i:05d}.tflite")
        with open(path, "wb") as f:
          f.write(model)
        paths.append(path)
      for r in range(rounds):
        for i, path in enumerate(paths):
          s = android.benchmark_on_device(path, threads=threads, runs=runs,
                                          warmup=warmup, **device)
          value = s["median_ms"] if s["median_ms"] is not None \
              else s["avg_ms"]
          if value is None:
            raise LutError(f"benchmark_model printed no latency for layer "
                           f"model {i}")
          per[i].append(float(value))
          if r == 0 and i == 0:
            timer.device = s.get("device")
        if log:
          log(f"  pass {r + 1}/{rounds} done")
    return [float(np.median(p)) for p in per]

  timer.device = None
  return timer


# --- building -----------------------------------------------------------------


def _settings(target, runs, rounds, warmup):
  """Timing settings with the target's defaults filled in, checked."""
  for name, value in (("runs", runs), ("rounds", rounds)):
    if value is not None and (not isinstance(value, int) or isinstance(
        value, bool) or value < 1):
      raise LutError(f"{name}: {value!r} is not allowed; allowed: an "
                     "integer >= 1")
  if warmup is not None and (not isinstance(warmup, int) or isinstance(
      warmup, bool) or warmup < 0):
    raise LutError(f"warmup: {warmup!r} is not allowed; allowed: an integer "
                   ">= 0")
  host = target == "host"
  return (runs or (DEFAULT_RUNS if host else 50),
          rounds or (DEFAULT_ROUNDS if host else 1),
          (DEFAULT_WARMUP if host else 10) if warmup is None else warmup)


def _timer(target, threads, runs, rounds, warmup, log, device) -> Timer:
  if target == "host":
    if device:
      raise LutError(f"{sorted(device)[0]}: only used with target android")
    return host_timer(threads=threads, runs=runs, rounds=rounds,
                      warmup=warmup, log=log)
  return android_timer(threads=threads, runs=runs, rounds=rounds,
                       warmup=warmup, log=log, **device)


def export_archs(specs: Sequence[arch_lib.ArchSpec],
                 input_shape: Sequence[int], *, seed: int = 0
                 ) -> List[bytes]:
  """Float32 TFLite models of `ExactNet(spec)`s with random weights."""
  from gram_jax.export import tflite
  from gram_jax.models import ExactNet
  x = jnp.zeros((1,) + tuple(input_shape), jnp.float32)
  models = []
  for i, spec in enumerate(specs):
    variables = ExactNet(spec).init(jax.random.key(seed + i), x)
    models.append(tflite.to_tflite(spec, variables, input_shape))
  return models


def fit_calibration(sums: Sequence[float], measured: Sequence[float],
                    constant: float) -> Tuple[float, float]:
  """``(constant, scale)`` minimising the relative error of ``c + s * sum``.

  Least squares on ``(c + s * S_i) / y_i - 1`` over calibration
  architectures with entry sums ``S_i`` and measured latencies ``y_i``:
  the calibration of `build`. With fewer than 3 architectures only the
  scale is fitted (``c`` stays the measured `constant`); a fit that is
  undefined or has a scale <= 0 falls back to ``(constant, 1.0)``.
  """
  y = np.asarray(measured, np.float64)
  q = np.asarray(sums, np.float64) / y
  if len(y) >= 3 and np.ptp(q) > 0:
    design = np.stack([1.0 / y, q], axis=1)
    (c, s), *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
  else:
    den = float(np.sum(q * q))
    c, s = constant, (float(np.sum(q * (1.0 - constant / y))) / den
                      if den > 0 else 1.0)
  if not (math.isfinite(c) and math.isfinite(s) and s > 0):
    return float(constant), 1.0
  return float(c), float(s)


def build(space: SearchSpace, input_shape: Sequence[int], num_classes: int,
          *, target: str = "host", threads: int = 1,
          runs: Optional[int] = None, rounds: Optional[int] = None,
          warmup: Optional[int] = None,
          max_points: int = DEFAULT_MAX_POINTS,
          calibrate: int = DEFAULT_CALIBRATE, seed: int = 0,
          timer: Optional[Timer] = None,
          log: Optional[Callable[[str], None]] = None,
          **device: Any) -> LatencyTable:
  """Measures the latency table of `space` on `target`.

  Every entry of `requirements` becomes one-layer TFLite models (float32,
  `export.tflite.function_to_tflite`), timed together with the near-empty
  model that gives the per-invoke constant; entries are the latencies minus
  it, clipped at zero. With `calibrate` > 0, that many random architectures
  (`sample_specs` with seed ``CALIBRATION_SEED + seed``, so not those
  `validate` draws by default) are exported and timed in the same
  interleaved session, and `fit_calibration` gives the table's
  ``constant_ms`` and ``scale``: layers run a little slower inside a whole
  network than alone (up to about 5% on the project's CPU, more for bigger
  networks), which the sum of one-layer latencies cannot see.

  Args:
    space: the search space.
    input_shape: ``(H, W, C)`` of one input image.
    num_classes: classifier width.
    target: ``"host"`` (LiteRT here) or ``"android"`` (benchmark_model on
      the phone over adb; `device` holds `android_timer`'s options).
    threads: interpreter threads.
    runs, rounds, warmup: timing settings (defaults: host 500 timed
      invokes per pass, 7 interleaved passes, 20 warm-up invokes; android
      50 runs, 1 pass, 10 warm-up runs).
    max_points: most widths measured per entry.
    calibrate: architectures timed to fit ``constant_ms`` and ``scale``
      (0: the measured invoke constant and scale 1).
    seed: seed of the layers' random weights and the calibration sample.
    timer: replaces the target's timer (``models -> ms``), e.g. in tests.
    log: progress messages (e.g. ``print``).

  Returns:
    The `LatencyTable`.
  """
  from gram_jax.export import latency
  from gram_jax.export import tflite
  if target not in TARGETS:
    raise LutError(f"target: {target!r} is not allowed; allowed: "
                   f"{', '.join(TARGETS)}")
  for name, value, low in (("threads", threads, 1),
                           ("num_classes", num_classes, 1),
                           ("calibrate", calibrate, 0), ("seed", seed, 0)):
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
      raise LutError(f"{name}: {value!r} is not allowed; allowed: an "
                     f"integer >= {low}")
  runs, rounds, warmup = _settings(target, runs, rounds, warmup)
  log = log or (lambda _: None)
  if timer is None:
    timer = _timer(target, threads, runs, rounds, warmup, log, device)
  elif device:
    raise LutError(f"{sorted(device)[0]}: not used with a given timer")
  need = requirements(space, input_shape, num_classes, max_points=max_points)
  log(f"converting {sum(len(x) for x in need.values()) + 1} one-layer "
      f"models ({len(need)} entries)"
      + (f" and {calibrate} calibration architectures" if calibrate else ""))
  start = time.time()
  fn, shape = constant_function()
  models = [tflite.function_to_tflite(fn, shape)]
  where: List[Tuple[Tuple[str, Key], int]] = []
  for i, ((kind, key), xs) in enumerate(need.items()):
    for x in xs:
      fn, shape, real = layer_function(kind, key, x, seed=seed + i)
      models.append(tflite.function_to_tflite(fn, shape))
      where.append(((kind, key), real))
  specs = sample_specs(space, num_classes, calibrate,
                       seed=CALIBRATION_SEED + seed) if calibrate else []
  archs = export_archs(specs, input_shape, seed=CALIBRATION_SEED + seed)
  log(f"converted in {time.time() - start:.0f} s; timing on {target} "
      f"({threads} thread{'s' if threads > 1 else ''})")
  start = time.time()
  times = timer(models + archs)
  log(f"timed in {time.time() - start:.0f} s")
  constant = float(times[0])
  points: Dict[Tuple[str, Key], Dict[int, float]] = {}
  for (kk, real), t in zip(where, times[1:len(models)]):
    points.setdefault(kk, {})[real] = max(0.0, float(t) - constant)
  curves = {kk: Curve(tuple(sorted(p)), tuple(p[x] for x in sorted(p)))
            for kk, p in points.items()}
  table = LatencyTable(target=target, threads=threads, constant_ms=constant,
                       curves=curves)
  calibration = None
  scale = 1.0
  if specs:
    measured = [float(t) for t in times[len(models):]]
    sums = [table.predict(s, input_shape) - constant for s in specs]
    fitted, scale = fit_calibration(sums, measured, constant)
    before = summarize([constant + v for v in sums], measured)
    after = summarize([fitted + scale * v for v in sums], measured)
    calibration = {"archs": len(specs), "seed": CALIBRATION_SEED + seed,
                   "invoke_ms": constant, "constant_ms": fitted,
                   "scale": scale, "rmspe_before": before["rmspe"],
                   "rmspe_after": after["rmspe"], "measured_ms": measured}
    log(f"calibration on {len(specs)} architectures: constant "
        f"{1000 * constant:.2f} -> {1000 * fitted:.2f} us, scale "
        f"{scale:.4f}; RMS relative error {100 * before['rmspe']:.1f}% -> "
        f"{100 * after['rmspe']:.1f}%")
    constant = fitted
  env = latency.environment() if target == "host" else {}
  meta = {
      "space": space.to_dict(),
      "input_shape": [int(s) for s in input_shape],
      "num_classes": int(num_classes),
      "settings": {"runs": runs, "rounds": rounds, "warmup": warmup,
                   "max_points": max_points, "seed": seed,
                   "models": len(models)},
      "calibration": calibration,
      "machine": env.get("machine"),
      "versions": env.get("versions") or {"jax": jax.__version__},
      "device": getattr(timer, "device", None),
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
  }
  return dataclasses.replace(table, constant_ms=constant, scale=scale,
                             meta=meta)


# --- validation ---------------------------------------------------------------


def sample_specs(space: SearchSpace, num_classes: int, num_archs: int, *,
                 seed: int = 0, low: float = 0.2, high: float = 0.9
                 ) -> List[arch_lib.ArchSpec]:
  """`num_archs` random architectures of `space`, of varied sizes.

  Each is drawn from its own meta-graph (its own node ops) whose uniform
  initial edge weight is drawn from ``U(low, high)``, so the sample spans
  sparse to dense networks.
  """
  specs = []
  base = jax.random.key(seed)
  for i in range(num_archs):
    k_ops, k_w, k_mask = jax.random.split(jax.random.fold_in(base, i), 3)
    weight = float(jax.random.uniform(k_w, (), minval=low, maxval=high))
    graph = mg.init(space, k_ops, init_weight=weight)
    masks = mg.sample(graph, k_mask)
    specs.append(arch_lib.from_masks(space, graph.ops, masks,
                                     num_classes=num_classes))
  return specs


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
  """Spearman's rank correlation (ties get their average rank)."""

  def ranks(v):
    v = np.asarray(v, np.float64)
    order = np.argsort(v, kind="mergesort")
    r = np.empty(len(v))
    r[order] = np.arange(len(v), dtype=np.float64)
    for value in np.unique(v):
      tie = v == value
      r[tie] = r[tie].mean()
    return r

  ra, rb = ranks(a), ranks(b)
  if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
    return float("nan")
  return float(np.corrcoef(ra, rb)[0, 1])


def summarize(predicted: Sequence[float], measured: Sequence[float]
              ) -> Dict[str, float]:
  """Accuracy figures of predicted vs measured latencies (ms)."""
  p = np.asarray(predicted, np.float64)
  y = np.asarray(measured, np.float64)
  rel = (p - y) / y
  return {
      "num_archs": int(len(y)),
      "within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
      "within_5pct": float(np.mean(np.abs(rel) <= 0.05)),
      "rmse_ms": float(np.sqrt(np.mean((p - y) ** 2))),
      "rmspe": float(np.sqrt(np.mean(rel ** 2))),
      "mean_error_pct": float(100 * rel.mean()),
      "max_abs_error_pct": float(100 * np.abs(rel).max()),
      "spearman": spearman(p, y),
      "measured_ms_range": [float(y.min()), float(y.max())],
  }


def validate(table: LatencyTable, space: SearchSpace,
             input_shape: Sequence[int], num_classes: int, num_archs: int,
             *, seed: int = 0, runs: Optional[int] = None,
             rounds: Optional[int] = None, warmup: Optional[int] = None,
             timer: Optional[Timer] = None,
             log: Optional[Callable[[str], None]] = None,
             **device: Any) -> Dict[str, Any]:
  """Predicted vs measured latency of `num_archs` random architectures.

  Each architecture (`sample_specs` with `seed`) is built as an `ExactNet`
  with random weights, exported to float32 TFLite (`export.tflite.
  to_tflite`) and timed on the table's target at its thread count,
  interleaved as in `build`.

  Returns:
    A JSON-ready report: `summarize`'s figures, the table's target and
    threads, and ``archs``: per architecture its predicted and measured ms,
    nodes, edges and MACs.
  """
  from gram_jax.cost import macs as macs_lib
  if not isinstance(num_archs, int) or isinstance(num_archs, bool) \
      or num_archs < 2:
    raise LutError(f"num_archs: {num_archs!r} is not allowed; allowed: an "
                   "integer >= 2")
  if not isinstance(seed, int) or seed < 0:
    raise LutError(f"seed: {seed!r} is not allowed; allowed: an integer "
                   ">= 0")
  runs, rounds, warmup = _settings(table.target, runs, rounds, warmup)
  log = log or (lambda _: None)
  if timer is None:
    timer = _timer(table.target, table.threads, runs, rounds, warmup, log,
                   device)
  elif device:
    raise LutError(f"{sorted(device)[0]}: not used with a given timer")
  specs = sample_specs(space, num_classes, num_archs, seed=seed)
  predicted = [table.predict(s, input_shape) for s in specs]
  log(f"exporting {num_archs} architectures")
  start = time.time()
  models = export_archs(specs, input_shape, seed=seed)
  log(f"exported in {time.time() - start:.0f} s; timing on {table.target}")
  measured = [float(t) for t in timer(models)]
  report = {"target": table.target, "threads": table.threads,
            "input_shape": [int(s) for s in input_shape], "seed": seed,
            "settings": {"runs": runs, "rounds": rounds, "warmup": warmup},
            **summarize(predicted, measured)}
  calibration = table.meta.get("calibration")
  if isinstance(calibration, dict) and isinstance(
      calibration.get("invoke_ms"), (int, float)):
    # The same table without its calibration: invoke constant + entries.
    raw = [calibration["invoke_ms"] + (p - table.constant_ms) / table.scale
           for p in predicted]
    report["uncalibrated"] = {
        k: v for k, v in summarize(raw, measured).items()
        if k not in ("num_archs", "measured_ms_range")}
  report["archs"] = [
      {"predicted_ms": p, "measured_ms": y,
       "error_pct": 100 * (p - y) / y, "nodes": s.num_nodes,
       "edges": s.num_edges,
       "macs": macs_lib.count(s, input_shape).macs}
      for s, p, y in zip(specs, predicted, measured)]
  return report


def plot_validation(report: Dict[str, Any], path: str) -> None:
  """Scatter of predicted vs measured latency with the ±10% band (PNG)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  y = np.asarray([a["measured_ms"] for a in report["archs"]])
  p = np.asarray([a["predicted_ms"] for a in report["archs"]])
  fig, ax = plt.subplots(figsize=(5.5, 5.0), constrained_layout=True)
  lo, hi = min(y.min(), p.min()) * 0.9, max(y.max(), p.max()) * 1.1
  line = np.linspace(lo, hi, 2)
  ax.fill_between(line, line * 0.9, line * 1.1, color="tab:green",
                  alpha=0.15, label="±10%")
  ax.plot(line, line, color="tab:green", lw=1)
  inside = np.abs(p - y) <= 0.1 * y
  ax.scatter(y[inside], p[inside], s=16, color="tab:blue",
             label="within ±10%")
  ax.scatter(y[~inside], p[~inside], s=16, color="tab:red",
             label="outside")
  ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="measured latency (ms)",
         ylabel="predicted latency (ms)",
         title=(f"{report['target']}, {report['threads']} thread(s): "
                f"{100 * report['within_10pct']:.0f}% within ±10%, "
                f"ρ={report['spearman']:.3f}"))
  ax.legend(loc="upper left")
  fig.savefig(path, dpi=110)
  plt.close(fig)
