"""Validation of plain config dicts against small schemas (AutoShrink).

A schema maps a field name to ``(default, type, check)``; ``type`` is one of
``int, float, bool, str, "ints", "floats"`` or a nested schema (a dict).
`check_group` fills defaults, rejects unknown fields and returns a new dict;
every problem is one `GramJaxError` line naming the field and what is
allowed, so the CLI exits 2 before anything is written.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Tuple

from gram_jax.errors import GramJaxError

Check = Optional[Tuple[Callable[[Any], bool], str]]


def between(lo=None, hi=None, *, lo_open=False, hi_open=False) -> Check:
  def ok(v):
    if lo is not None and (v <= lo if lo_open else v < lo):
      return False
    return not (hi is not None and (v >= hi if hi_open else v > hi))
  parts = ([] if lo is None else [f"{'>' if lo_open else '>='} {lo}"]) + (
      [] if hi is None else [f"{'<' if hi_open else '<='} {hi}"])
  return ok, " and ".join(parts)


def one_of(*values) -> Check:
  return (lambda v: v in values), "one of " + ", ".join(map(str, values))


def _type_ok(value, typ) -> bool:
  def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)

  def is_num(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v))
  if typ is bool:
    return isinstance(value, bool)
  if typ is int:
    return is_int(value)
  if typ is float:
    return is_num(value)
  if typ is str:
    return isinstance(value, str)
  if typ == "ints":
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(
        is_int(v) for v in value)
  if typ == "floats":
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(
        is_num(v) for v in value)
  raise TypeError(typ)


_NAMES = {bool: "a boolean", int: "an integer", float: "a number",
          str: "a string", "ints": "a non-empty list of integers",
          "floats": "a non-empty list of numbers"}


def check_group(d: Any, schema: Dict[str, tuple], where: str) -> Dict:
  """Validated copy of `d` with defaults filled in (see module docstring)."""
  if d is None:
    d = {}
  if not isinstance(d, dict):
    raise GramJaxError(f"{where}: expected a group of fields, got "
                       f"{type(d).__name__}")
  unknown = sorted(set(d) - set(schema))
  if unknown:
    raise GramJaxError(f"{where}.{unknown[0]}: unknown field; allowed: "
                       f"{', '.join(sorted(schema))}")
  out = {}
  for name, (default, typ, check) in schema.items():
    w = f"{where}.{name}"
    if isinstance(typ, dict):
      out[name] = check_group(d.get(name), typ, w)
      continue
    value = d.get(name, default)
    if not _type_ok(value, typ):
      raise GramJaxError(f"{w}: {value!r} is not allowed; allowed: "
                         f"{_NAMES[typ]}")
    values = list(value) if typ in ("ints", "floats") else [value]
    if check is not None and not all(check[0](v) for v in values):
      raise GramJaxError(f"{w}: {value!r} is not allowed; allowed: "
                         f"{check[1]}")
    if typ == "floats":
      value = [float(v) for v in value]
    elif typ == "ints":
      value = [int(v) for v in value]
    elif typ is float:
      value = float(value)
    out[name] = value
  return out
