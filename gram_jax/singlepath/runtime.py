"""The differentiable runtime model of Single-Path NAS and its tables.

ALGORITHMS.md 3.3 [SP: superkernel.py, singlepath_supernet.py]. A table
holds, per searchable layer l, the latency of the layer as each MBConv
choice ``R[l] = [k3e3, k3e6, k5e3, k5e6]`` and a constant for everything
else (stem, fixed blocks, head, classifier). The model runtime is

  Rc_l = d_e3 * (R[l][k5e3] + d_e6 * (R[l][k5e6] - R[l][k5e3]))
  rho  = R[l][k3e6] / R[l][k5e6]
  R_l  = Rc_l * rho + Rc_l * (1 - rho) * d_k
  R    = constant + sum_l R_l

a polynomial in the indicators, so its gradient reaches the thresholds and
the kernel norms through the indicators' surrogate gradient. As in the
official code, ``R[l][k3e3]`` never enters (k3e3 is approximated by
``R[k5e3] * rho``) and a skipped layer costs 0.

Tables (`RuntimeTable`, JSON, validated on load, never executed):

  * ``pixel1_table()``: the published Pixel-1 table of the official code
    (package data ``pixel1_runtime_model.json``, provenance in
    ``pixel1_runtime_model.SOURCE.md``) with its constant 19.5999 ms; valid
    for the ImageNet backbone at 224x224 only.
  * ``macs_table(macro, ...)``: analytic MACs per choice (in millions), a
    hardware-free proxy for small backbones and tests.
  * ``gram_jax.singlepath.table.build_host_table``: measured with LiteRT on
    this host (`gram-jax single-path table`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Dict, Optional, Sequence

import jax.numpy as jnp
import numpy as np

from gram_jax.errors import GramJaxError
from gram_jax.shapes import same_out
from gram_jax.singlepath.space import CHOICE_NAMES, Macro

FORMAT = "gram_jax.SinglePathRuntimeTable"
VERSION = 1
PIXEL1_FILE = os.path.join(
    os.path.dirname(__file__), "pixel1_runtime_model.json"
)
# Stem, head, classifier and blocks 0 and 21, in ms on the Pixel 1: a
# constant of the official code [SP: singlepath_supernet.py `total_runtime`].
PIXEL1_CONSTANT_MS = 19.5999
PIXEL1_COMMIT = "21c1f3e9c790e591749c0fb861bff3737b6d5fc7"


class TableError(GramJaxError):
  """A runtime table is malformed or does not fit the backbone."""


@dataclasses.dataclass(frozen=True)
class RuntimeTable:
  """Per-layer latencies ``entries: f32[L, 4]`` and a constant.

  Attributes:
    constant: latency of the non-searchable parts.
    entries: per searchable layer, ``[k3e3, k3e6, k5e3, k5e6]``.
    unit: "ms" (measured) or "MMACs" (the analytic proxy).
    target: where the numbers come from ("pixel1", "host", "macs", ...).
    meta: free-form provenance (source, settings, backbone).
  """

  constant: float
  entries: np.ndarray
  unit: str = "ms"
  target: str = ""
  meta: Optional[Dict[str, Any]] = None

  def __post_init__(self):
    e = np.asarray(self.entries, np.float64)
    object.__setattr__(self, "entries", e)
    _check(self.constant, e, "table")

  @property
  def num_layers(self) -> int:
    return int(self.entries.shape[0])

  def uniform(self, choice: str) -> float:
    """``constant + sum_l R[l][choice]`` (the table's own sum)."""
    return float(
        self.constant + self.entries[:, CHOICE_NAMES.index(choice)].sum()
    )

  def check_fits(self, macro: Macro, where: str = "runtime.table") -> None:
    n = len(macro.layers())
    if self.num_layers != n:
      raise TableError(
          f"{where}: the table has {self.num_layers} layers, "
          f"the backbone has {n} searchable layers; build a "
          "table for this backbone (gram-jax single-path table) "
          "or use 'macs'"
      )

  def to_dict(self) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "unit": self.unit,
        "target": self.target,
        "constant": float(self.constant),
        "choices": list(CHOICE_NAMES),
        "layers": [[float(v) for v in row] for row in self.entries],
        "meta": self.meta or {},
    }

  def save(self, path: str) -> None:
    from gram_jax import io  # pylint: disable=import-outside-toplevel

    io.write_json_atomic(path, self.to_dict())

  @classmethod
  def from_dict(cls, d: Any, where: str = "table") -> "RuntimeTable":
    if not isinstance(d, dict) or d.get("format") != FORMAT:
      raise TableError(f"{where}.format: expected {FORMAT!r}")
    if d.get("version") != VERSION:
      raise TableError(
          f"{where}.version: {d.get('version')!r} is not "
          f"allowed; allowed: {VERSION}"
      )
    if d.get("choices") != list(CHOICE_NAMES):
      raise TableError(f"{where}.choices: expected {list(CHOICE_NAMES)}")
    if d.get("unit") not in ("ms", "MMACs"):
      raise TableError(
          f"{where}.unit: {d.get('unit')!r} is not allowed; allowed: ms, MMACs"
      )
    rows = d.get("layers")
    if (
        not isinstance(rows, list)
        or not rows
        or not all(
            isinstance(r, list)
            and len(r) == 4
            and all(
                isinstance(v, (int, float)) and not isinstance(v, bool)
                for v in r
            )
            for r in rows
        )
    ):
      raise TableError(
          f"{where}.layers: expected a non-empty list of "
          "[k3e3, k3e6, k5e3, k5e6] numbers"
      )
    c = d.get("constant")
    if isinstance(c, bool) or not isinstance(c, (int, float)):
      raise TableError(f"{where}.constant: expected a number")
    meta = d.get("meta", {})
    if not isinstance(meta, dict):
      raise TableError(f"{where}.meta: expected an object")
    return cls(
        float(c),
        np.asarray(rows, np.float64),
        unit=d["unit"],
        target=str(d.get("target", "")),
        meta=meta,
    )

  @classmethod
  def load(cls, path: str) -> "RuntimeTable":
    from gram_jax import io  # pylint: disable=import-outside-toplevel

    d = io.read_json(path, TableError)
    return cls.from_dict(d, where=path)


def _check(constant, entries, where):
  if not (
      isinstance(constant, (int, float))
      and math.isfinite(constant)
      and constant >= 0
  ):
    raise TableError(
        f"{where}.constant: {constant!r} is not allowed; "
        "allowed: a finite number >= 0"
    )
  if entries.ndim != 2 or entries.shape[1] != 4 or entries.shape[0] < 1:
    raise TableError(
        f"{where}.layers: shape {entries.shape} is not allowed;"
        " allowed: [L, 4] with L >= 1"
    )
  bad = np.argwhere(~np.isfinite(entries) | (entries < 0))
  if len(bad):
    l, j = bad[0]
    raise TableError(
        f"{where}.layers[{l}][{j}]: {entries[l, j]!r} is not "
        "allowed; allowed: a finite number >= 0"
    )
  zero = np.argwhere(entries[:, 3] <= 0)
  if len(zero):
    raise TableError(
        f"{where}.layers[{zero[0][0]}][3]: the k5e6 entry must "
        "be > 0 (it divides the k3 ratio)"
    )


def pixel1_table() -> RuntimeTable:
  """The published Pixel-1 table (20 searchable layers, ms)."""
  where = "pixel1_runtime_model.json"
  with open(PIXEL1_FILE) as f:
    raw = json.load(f)
  if not isinstance(raw, dict) or sorted(raw, key=int) != [
      str(i) for i in range(22)
  ]:
    raise TableError(f"{where}: expected blocks '0'..'21'")
  rows = []
  for i in range(1, 21):
    r = raw[str(i)]
    if not isinstance(r, dict) or sorted(r) != ["0", "1", "2", "3"]:
      raise TableError(f"{where}['{i}']: expected entries '0'..'3'")
    rows.append([float(r[str(j)]) for j in range(4)])
  return RuntimeTable(
      PIXEL1_CONSTANT_MS,
      np.asarray(rows),
      unit="ms",
      target="pixel1",
      meta={
          "source": (
              "github.com/dstamoulis/single-path-nas "
              "nas-search/pixel1_runtime_model.json"
          ),
          "commit": PIXEL1_COMMIT,
          "license": "Apache-2.0",
          "constant": "singlepath_supernet.py total_runtime",
          "fixed_blocks_ms": {k: raw[k] for k in ("0", "21")},
      },
  )


def macs_table(
    macro: Macro, input_shape: Sequence[int], num_classes: int
) -> RuntimeTable:
  """Analytic MACs (millions) per layer and choice, and of the rest."""
  # pylint: disable=import-outside-toplevel
  from gram_jax.singlepath import spec as spec_lib

  full = spec_lib.decode(
      spec_lib.uniform_decisions(macro, "k5e6"), macro, num_classes
  )
  total = spec_lib.layers(full, input_shape)
  searchable = {f"layer{ly.index + 1}" for ly in macro.layers()}
  constant = sum(
      l.macs for l in total if l.name.split("/")[0] not in searchable
  )
  h, w = same_out(input_shape[0], macro.stem_stride), same_out(
      input_shape[1], macro.stem_stride
  )
  rows = []
  for ly in macro.layers():
    row = []
    for k, e in ((3, 3), (3, 6), (5, 3), (5, 6)):
      b = spec_lib.Block("x", ly.cin, ly.cout, k, e, ly.stride, ly.residual)
      row.append(sum(c.macs for c in spec_lib.block_layers(b, (h, w))) / 1e6)
    rows.append(row)
    h, w = same_out(h, ly.stride), same_out(w, ly.stride)
  return RuntimeTable(
      constant / 1e6,
      np.asarray(rows),
      unit="MMACs",
      target="macs",
      meta={
          "macro": macro.to_dict(),
          "input_shape": list(input_shape),
          "num_classes": num_classes,
      },
  )


def load_table(
    name: str,
    macro: Macro,
    input_shape: Sequence[int],
    num_classes: int,
    where: str = "runtime.table",
) -> RuntimeTable:
  """``"pixel1"``, ``"macs"`` or the path of a table JSON, checked to fit."""
  if name == "pixel1":
    table = pixel1_table()
  elif name == "macs":
    table = macs_table(macro, input_shape, num_classes)
  elif name.endswith(".json"):
    table = RuntimeTable.load(name)
  else:
    raise TableError(
        f"{where}: {name!r} is not allowed; allowed: pixel1, "
        "macs, or the path of a table .json"
    )
  table.check_fits(macro, where)
  return table


def model_runtime(
    decisions: jnp.ndarray, entries: jnp.ndarray, constant
) -> jnp.ndarray:
  """The differentiable runtime ``R`` of decisions ``[L, 3]`` (jittable).

  Args:
    decisions: per layer ``[d_k, d_e3, d_e6]`` (indicator values, possibly
      dropped out).
    entries: the table's ``[L, 4]`` entries.
    constant: the table's constant.

  Returns:
    A scalar: ``constant + sum_l R_l`` in the table's unit.
  """
  entries = jnp.asarray(entries, decisions.dtype)
  d_k, d_e3, d_e6 = decisions[:, 0], decisions[:, 1], decisions[:, 2]
  r_k3e6, r_k5e3, r_k5e6 = entries[:, 1], entries[:, 2], entries[:, 3]
  rc = d_e3 * (r_k5e3 + d_e6 * (r_k5e6 - r_k5e3))
  rho = r_k3e6 / r_k5e6
  return constant + jnp.sum(rc * rho + rc * (1.0 - rho) * d_k)
