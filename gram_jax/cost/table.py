"""The `LatencyTable`: measured entry curves, prediction, JSON.

A table holds the measured latency of every layer an architecture of a
search space can contain, on one target (this host with LiteRT, or an
Android phone with TFLite's ``benchmark_model``) at one thread count
(DESIGN.md decision 5). The latency of a network is predicted as

  ``constant_ms + scale * sum over its layers of entry(layer)``

over the layers `gram_jax.cost.walk.items` finds. Each entry is a curve:
latencies measured at a few values of its variable (a width), read by
piecewise-linear interpolation, and extrapolated linearly from the two end
points (never below zero).

Tables are JSON (no pickle); `LatencyTable.load` validates every field and
raises one `LutError` line naming the bad one. `check_table` says whether a
table was built for a given space and input shape.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from gram_jax import arch as arch_lib
from gram_jax import io
from gram_jax.cost.walk import KINDS, Item, Key, LutError, items, sort_key
from gram_jax.space import POOLS, SearchSpace

FORMAT = "gram_jax.LatencyTable"
VERSION = 1
TARGETS = ("host", "android")


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
      raise LutError(
          f"the latency table has no {kind} entry with {fields}; "
          "build a table for this search space and input shape "
          "(gram-jax lut build)"
      )
    return found

  def _concat_between(self, j: int, h: int, w: int) -> Optional[Curve]:
    measured = sorted(
        k[1][0] for k in self.curves if k[0] == "concat" and k[1][1:] == (h, w)
    )
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

    return Curve(
        tuple(xs), tuple((1 - t) * at(lo, x) + t * at(hi, x) for x in xs)
    )

  def lookup(self, kind: str, key: Key, x: int) -> float:
    """The marginal latency (ms) of one layer."""
    curve = self.curve(kind, key)
    xs, ys, points = curve.padded(len(curve.x) if len(curve.x) > 1 else 2)
    return float(interpolate(np.float64(x), xs, ys, np.int32(points)))

  def breakdown(
      self, spec: arch_lib.ArchSpec, input_shape: Sequence[int]
  ) -> List[Tuple[Item, float]]:
    """Every layer of `spec` with its predicted marginal latency (ms)."""
    return [
        (it, self.lookup(it.kind, it.key, it.x))
        for it in items(spec, input_shape)
    ]

  def predict(
      self, spec: arch_lib.ArchSpec, input_shape: Sequence[int]
  ) -> float:
    """Predicted latency (ms) of `ExactNet(spec)` at `input_shape`."""
    return self.constant_ms + self.scale * sum(
        ms for _, ms in self.breakdown(spec, input_shape)
    )

  # --- JSON ---

  def to_dict(self) -> Dict[str, Any]:
    entries = []
    for (kind, key), curve in sorted(
        self.curves.items(), key=lambda kv: sort_key(kv[0])
    ):
      e = {"kind": kind}
      e.update(zip(KINDS[kind], key))
      e["x"] = list(curve.x)
      e["ms"] = [_short(v) for v in curve.ms]
      entries.append(e)
    return {
        "format": FORMAT,
        "version": VERSION,
        "target": self.target,
        "threads": self.threads,
        "constant_ms": _short(self.constant_ms),
        "scale": _short(self.scale),
        **{k: v for k, v in self.meta.items() if k not in _TOP_FIELDS},
        "entries": entries,
    }

  def to_json(self) -> str:
    d = self.to_dict()
    entries = d.pop("entries")
    head = json.dumps(d, indent=1)[:-2]
    lines = ",\n  ".join(json.dumps(e) for e in entries)
    return f'{head},\n "entries": [\n  {lines}\n ]\n}}\n'

  @classmethod
  def from_dict(cls, d: Any, *, where: str = "lut") -> "LatencyTable":
    return _from_dict(d, where)

  @classmethod
  def from_json(cls, text: str, *, where: str = "lut.json") -> "LatencyTable":
    try:
      d = json.loads(text)
    except json.JSONDecodeError as e:
      raise LutError(
          f"{where}: not valid JSON ({e.msg} at line {e.lineno} "
          f"column {e.colno})"
      ) from None
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


_TOP_FIELDS = (
    "format",
    "version",
    "target",
    "threads",
    "constant_ms",
    "scale",
    "entries",
)
# Recorded fields that must be JSON objects (or null) when present.
_META_OBJECTS = (
    "space",
    "machine",
    "versions",
    "settings",
    "device",
    "calibration",
)


def _from_dict(d: Any, where: str) -> LatencyTable:
  def fail(field, msg):
    raise LutError(f"{where}{'.' + field if field else ''}: {msg}"[:400])

  def is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

  def is_num(v):
    return (
        isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
    )

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
    fail(
        "target",
        f"{d['target']!r} is not allowed; allowed: {', '.join(TARGETS)}",
    )
  if not is_int(d["threads"]) or d["threads"] < 1:
    fail(
        "threads", f"{d['threads']!r} is not allowed; allowed: an integer >= 1"
    )
  if not is_num(d["constant_ms"]):
    fail(
        "constant_ms",
        f"{d['constant_ms']!r} is not allowed; allowed: a finite number (ms)",
    )
  if not is_num(d["scale"]) or d["scale"] <= 0:
    fail(
        "scale", f"{d['scale']!r} is not allowed; allowed: a finite number > 0"
    )
  for field in _META_OBJECTS:
    if d.get(field) is not None and not isinstance(d[field], dict):
      fail(field, f"expected an object, got {type(d[field]).__name__}")
  if (
      "input_shape" in d
      and d["input_shape"] is not None
      and not (
          isinstance(d["input_shape"], list)
          and len(d["input_shape"]) == 3
          and all(is_int(v) and v >= 1 for v in d["input_shape"])
      )
  ):
    fail(
        "input_shape",
        f"{d['input_shape']!r} is not allowed; allowed: "
        "[H, W, C] positive integers",
    )
  if not isinstance(d["entries"], list):
    fail("entries", f"expected a list, got {type(d['entries']).__name__}")
  curves: Dict[Tuple[str, Key], Curve] = {}
  for i, e in enumerate(d["entries"]):
    w = f"entries[{i}]"
    if not isinstance(e, dict):
      fail(w, f"expected an object, got {type(e).__name__}")
    kind = e.get("kind")
    if kind not in KINDS:
      fail(f"{w}.kind", f"{kind!r} is not allowed; allowed: {', '.join(KINDS)}")
    fields = KINDS[kind]
    allowed = ("kind",) + fields + ("x", "ms")
    for f in allowed:
      if f not in e:
        fail(
            w, f"missing field {f!r} (a {kind} entry has {', '.join(allowed)})"
        )
    extra = sorted(set(e) - set(allowed))
    if extra:
      fail(
          f"{w}.{extra[0]}",
          f"unknown field; a {kind} entry has {', '.join(allowed)}",
      )
    key = []
    for f in fields:
      v = e[f]
      if f == "mode":
        if v not in POOLS:
          fail(f"{w}.{f}", f"{v!r} is not allowed; allowed: {', '.join(POOLS)}")
      elif not is_int(v) or v < 1:
        fail(f"{w}.{f}", f"{v!r} is not allowed; allowed: an integer >= 1")
      key.append(v if f == "mode" else int(v))
    xs, ms = e["x"], e["ms"]
    if (
        not isinstance(xs, list)
        or not xs
        or not all(is_int(v) and v >= 1 for v in xs)
    ):
      fail(f"{w}.x", f"expected a non-empty list of integers >= 1, got {xs!r}")
    if any(b <= a for a, b in zip(xs, xs[1:])):
      fail(f"{w}.x", f"must be strictly increasing, got {xs!r}")
    if (
        not isinstance(ms, list)
        or len(ms) != len(xs)
        or not all(is_num(v) and v >= 0 for v in ms)
    ):
      fail(
          f"{w}.ms",
          f"expected {len(xs)} finite numbers >= 0 (one per x), got {ms!r}",
      )
    k = (kind, tuple(key))
    if k in curves:
      fail(
          w,
          f"duplicate {kind} entry with "
          f"{', '.join(f'{f}={v}' for f, v in zip(fields, key))}",
      )
    curves[k] = Curve(tuple(int(v) for v in xs), tuple(float(v) for v in ms))
  meta = {k: v for k, v in d.items() if k not in _TOP_FIELDS}
  return LatencyTable(
      target=d["target"],
      threads=int(d["threads"]),
      constant_ms=float(d["constant_ms"]),
      curves=curves,
      scale=float(d["scale"]),
      meta=meta,
  )


def check_table(
    table: LatencyTable,
    space: SearchSpace,
    input_shape: Sequence[int],
    *,
    where: str,
    space_flag: str = "space",
    shape_flag: str = "input_shape",
) -> None:
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
            f"{recorded.get(field)!r}; build a table for this space"
        )
  built = table.meta.get("input_shape")
  if built is not None and tuple(built) != tuple(input_shape):
    raise LutError(
        f"{shape_flag}: {','.join(map(str, input_shape))} but "
        f"{where} was built for {','.join(map(str, built))}"
    )
