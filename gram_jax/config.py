"""The config layer: checked settings dataclasses from config files.

Experiment configs are Python files returning an `ml_collections.ConfigDict`
(DESIGN.md decision 11). They stop at this layer: `build` turns a plain
dict into frozen settings dataclasses, checking every field (its type, then
the class's ``_checks`` entry: `in_range`, `one_of`), and the library takes
those. Every problem is one `ConfigError` line naming the field and what is
allowed. The rest is the plumbing every command shares: `load_config_file`,
``--config.<field>=<value>`` overrides (`apply_overrides`), `merge_defaults`,
`plain`, `check_fields` and `diff` (the first field where two configs
differ, for resumed runs).

The settings of each method are where the method is
(`gram_jax.search.config`, `gram_jax.singlepath.config`, the AutoShrink
fields); this module knows only `SearchSpace`, the one settings type that is
not a plain dataclass.
"""

import ast
import dataclasses
import importlib.util
import math
import os
import typing
from typing import Any, Dict, List, Optional, Tuple

from gram_jax.errors import GramJaxError, parse_bool
from gram_jax.space import SearchSpace, SpaceError


class ConfigError(GramJaxError):
  """A config field is unknown, of the wrong type or out of range."""


def in_range(lo=None, hi=None, lo_open=False, hi_open=False):
  """A ``_checks`` entry: ``(ok, allowed)`` for ``lo <= v <= hi``.

  Args:
    lo: the lower bound (None: none).
    hi: the upper bound (None: none).
    lo_open: exclude `lo` itself.
    hi_open: exclude `hi` itself.

  Returns:
    ``(ok, allowed)``: a predicate on a value and the text of the allowed
    range that error messages show, e.g. ``">= 0 and < 1"``.
  """

  def ok(v):
    if lo is not None and (v <= lo if lo_open else v < lo):
      return False
    if hi is not None and (v >= hi if hi_open else v > hi):
      return False
    return True

  lo_s = "" if lo is None else f"{'>' if lo_open else '>='} {lo}"
  hi_s = "" if hi is None else f"{'<' if hi_open else '<='} {hi}"
  return ok, " and ".join(s for s in (lo_s, hi_s) if s)


def one_of(values):
  """A ``_checks`` entry: ``(ok, allowed)`` for a value in `values`."""
  return (lambda v: v in values), "one of " + ", ".join(map(str, values))


_SPACE_TYPES = {
    "hierarchies": int,
    "dags_per_hierarchy": int,
    "nodes": int,
    "ops": tuple,
    "width": float,
    "stem": tuple,
    "aggregate": str,
    "dag_output": str,
    "pool": str,
    "max_filters": int,
    "bn_momentum": float,
    "bn_epsilon": float,
}


def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
  return (
      isinstance(v, (int, float))
      and not isinstance(v, bool)
      and math.isfinite(v)
  )


def _type_ok(value, typ) -> bool:
  """Whether `value` has the field type `typ`: bool, int, float (finite),
  str, tuple (a list of strings), "ints" / "floats" (non-empty lists)."""
  if typ is bool:
    return isinstance(value, bool)
  if typ is int:
    return _is_int(value)
  if typ is float:
    return _is_number(value)
  if typ is str:
    return isinstance(value, str)
  if typ is tuple:
    return isinstance(value, (list, tuple)) and all(
        isinstance(v, str) for v in value
    )
  if typ == "ints":
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(_is_int(v) for v in value)
    )
  if typ == "floats":
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(_is_number(v) for v in value)
    )
  return False


def _type_name(typ) -> str:
  return {
      bool: "a boolean",
      int: "an integer",
      float: "a number",
      str: "a string",
      tuple: "a list of strings",
      "ints": "a non-empty list of integers",
      "floats": "a non-empty list of numbers",
  }[typ]


def build(cls, d, where):
  """A settings dataclass `cls` from a plain dict `d`, every field checked.

  Nested dataclass fields are built from nested dicts; each field's type is
  checked, then its ``cls._checks`` entry (see `in_range`, `one_of`).

  Args:
    cls: a frozen settings dataclass (or `SearchSpace`).
    d: its fields as a plain dict (any subset; the rest keep defaults).
    where: the dotted name of `d` that error messages start with.

  Returns:
    The ``cls`` instance.

  Raises:
    ConfigError: one line naming the first unknown or bad field.
  """
  if not isinstance(d, dict):
    raise ConfigError(
        f"{where}: expected a group of fields, got {type(d).__name__}"
    )
  if cls is SearchSpace:
    types = _SPACE_TYPES
  else:
    hints = typing.get_type_hints(cls)
    types = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
  unknown = sorted(set(d) - set(types))
  if unknown:
    raise ConfigError(
        f"{where}.{unknown[0]}: unknown field; allowed: "
        f"{', '.join(sorted(types))}"
    )
  kwargs = {}
  for name, value in d.items():
    typ, w = types[name], f"{where}.{name}"
    if dataclasses.is_dataclass(typ):
      kwargs[name] = build(typ, value, w)
      continue
    if not _type_ok(value, typ):
      raise ConfigError(
          f"{w}: {value!r} is not allowed; allowed: {_type_name(typ)}"
      )
    check = getattr(cls, "_checks", {}).get(name)
    if check and not check[0](value):
      raise ConfigError(f"{w}: {value!r} is not allowed; allowed: {check[1]}")
    kwargs[name] = tuple(value) if typ is tuple else value
  if cls is SearchSpace:
    if kwargs.get("max_filters") == 0:
      kwargs["max_filters"] = None
    try:
      return SearchSpace(**kwargs)
    except SpaceError as e:
      raise ConfigError(f"{where}.{e}") from None
  return cls(**kwargs)


def _field_type(hint):
  """`build`'s type of a field annotation: ``Tuple[str, ...]`` is `tuple`."""
  return tuple if typing.get_origin(hint) is tuple else hint


def check_settings(obj, where: str) -> None:
  """Checks the fields of an already constructed settings dataclass.

  The same type and ``_checks`` rules as `build`, for settings that code
  also constructs directly (a `Recipe(...)` in a config file, a
  `dataclasses.replace`): call it from ``__post_init__``. Nested dataclass
  fields are left to their own ``__post_init__``.

  Raises:
    ConfigError: one line naming the first bad field.
  """
  hints = typing.get_type_hints(type(obj))
  checks = getattr(type(obj), "_checks", {})
  for f in dataclasses.fields(obj):
    typ, value = _field_type(hints[f.name]), getattr(obj, f.name)
    if dataclasses.is_dataclass(typ):
      continue
    w = f"{where}.{f.name}"
    if not _type_ok(value, typ):
      raise ConfigError(
          f"{w}: {value!r} is not allowed; allowed: {_type_name(typ)}"
      )
    check = checks.get(f.name)
    if check and not check[0](value):
      raise ConfigError(f"{w}: {value!r} is not allowed; allowed: {check[1]}")


def check_group(d: Any, schema: Dict[str, tuple], where: str) -> Dict:
  """A validated copy of the plain dict `d`, with defaults filled in.

  The schema form of `build`, for configs kept as plain dicts (AutoShrink):
  `schema` maps a field name to ``(default, type, check)``; ``type`` is one
  of ``int, float, bool, str, "ints", "floats"`` or a nested schema (a
  dict), ``check`` an `in_range` / `one_of` entry or None (for a list type,
  every element is checked).

  Raises:
    ConfigError: one line naming the first unknown or bad field.
  """
  if d is None:
    d = {}
  if not isinstance(d, dict):
    raise ConfigError(
        f"{where}: expected a group of fields, got {type(d).__name__}"
    )
  unknown = sorted(set(d) - set(schema))
  if unknown:
    raise ConfigError(
        f"{where}.{unknown[0]}: unknown field; allowed: "
        f"{', '.join(sorted(schema))}"
    )
  out = {}
  for name, (default, typ, check) in schema.items():
    w = f"{where}.{name}"
    if isinstance(typ, dict):
      out[name] = check_group(d.get(name), typ, w)
      continue
    value = d.get(name, default)
    if not _type_ok(value, typ):
      raise ConfigError(
          f"{w}: {value!r} is not allowed; allowed: {_type_name(typ)}"
      )
    values = list(value) if typ in ("ints", "floats") else [value]
    if check is not None and not all(check[0](v) for v in values):
      raise ConfigError(f"{w}: {value!r} is not allowed; allowed: {check[1]}")
    if typ == "floats":
      value = [float(v) for v in value]
    elif typ == "ints":
      value = [int(v) for v in value]
    elif typ is float:
      value = float(value)
    out[name] = value
  return out


def to_dict(obj) -> Dict[str, Any]:
  """A settings dataclass as a JSON-ready dict (what `build` reads back)."""
  out = {}
  for f in dataclasses.fields(obj):
    v = getattr(obj, f.name)
    if isinstance(v, SearchSpace):
      v = v.to_dict()
      v["max_filters"] = v["max_filters"] or 0
    elif dataclasses.is_dataclass(v):
      v = to_dict(v)
    elif isinstance(v, tuple):
      v = list(v)
    out[f.name] = v
  return out


# --- config files and --config.x=y overrides ---------------------------------


def load_config_file(path: str):
  """Runs `get_config(arg)` of a Python config file; ``path:arg`` passes arg."""
  arg = None
  if ":" in os.path.basename(path):
    path, arg = path.rsplit(":", 1)
  if not os.path.isfile(path):
    raise ConfigError(f"--config: {path}: no such file")
  spec = importlib.util.spec_from_file_location("gram_jax_user_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"--config: {path} defines no get_config()")
  return module.get_config(arg) if arg is not None else module.get_config()


def parse_value(text: str, current: Any, where: str) -> Any:
  """The value of override text `text` for a field whose value is now
  `current` (its type decides: bool, int, float, a list, else a string)."""
  if isinstance(current, bool):
    return parse_bool(text, where, ConfigError)
  if isinstance(current, int):
    try:
      return int(text)
    except ValueError:
      raise ConfigError(
          f"{where}: {text!r} is not allowed; allowed: an integer"
      ) from None
  if isinstance(current, float):
    try:
      return float(text)
    except ValueError:
      raise ConfigError(
          f"{where}: {text!r} is not allowed; allowed: a number"
      ) from None
  if isinstance(current, (tuple, list)):
    if text.strip().startswith(("[", "(")):
      try:
        value = ast.literal_eval(text)
      except (ValueError, SyntaxError):
        raise ConfigError(f"{where}: {text!r} is not a list") from None
      return tuple(value)
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    if current and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in current
    ):
      # A list of numbers stays one: "0.3,0.5" -> (0.3, 0.5).
      kind = int if all(isinstance(x, int) for x in current) else float
      return tuple(parse_value(x, kind(0), where) for x in items)
    return items
  return text


def apply_overrides(cfg_dict: Dict[str, Any], overrides: List[str]) -> Dict:
  """Applies ``--config.a.b=value`` strings to a plain nested dict."""
  for item in overrides:
    if not item.startswith("--config."):
      raise ConfigError(
          f"{item.split('=')[0]}: unknown argument; allowed: "
          "--config.<field>=<value> overrides"
      )
    if "=" not in item:
      raise ConfigError(f"{item}: expected --config.<field>=<value>")
    key, text = item[len("--config.") :].split("=", 1)
    node, parts = cfg_dict, key.split(".")
    for i, part in enumerate(parts):
      where = "config." + ".".join(parts[: i + 1])
      if not isinstance(node, dict) or part not in node:
        allowed = ", ".join(sorted(node)) if isinstance(node, dict) else "-"
        raise ConfigError(f"{where}: unknown field; allowed: {allowed}")
      if i < len(parts) - 1:
        node = node[part]
    if isinstance(node[parts[-1]], dict):
      raise ConfigError(
          f"config.{key}: is a group of fields; set one of "
          f"{', '.join(sorted(node[parts[-1]]))}"
      )
    node[parts[-1]] = parse_value(text, node[parts[-1]], f"config.{key}")
  return cfg_dict


def load_overridden(path: str, overrides: List[str]) -> Dict[str, Any]:
  """A command's config file as a plain dict with ``--config.*`` applied
  (each command then validates it)."""
  raw = load_config_file(path)
  d = plain(raw.to_dict() if hasattr(raw, "to_dict") else dict(raw))
  return apply_overrides(d, list(overrides))


def check_fields(d: Any, fields, error: type, where: str = "config") -> None:
  """`d` is a dict with exactly `fields`; else one `error` line naming the
  first unknown or missing field."""
  if not isinstance(d, dict):
    raise error(f"{where}: expected a group of fields")
  unknown = sorted(set(d) - set(fields))
  if unknown:
    raise error(
        f"{where}.{unknown[0]}: unknown field; allowed: {', '.join(fields)}"
    )
  missing = [k for k in fields if k not in d]
  if missing:
    raise error(f"{where}.{missing[0]}: missing field")


def merge_defaults(defaults: Dict[str, Any], d: Dict[str, Any]) -> Dict:
  """`d` with the groups and fields it lacks filled in from `defaults`."""
  out = dict(defaults)
  for key, value in d.items():
    if isinstance(value, dict) and isinstance(out.get(key), dict):
      out[key] = merge_defaults(out[key], value)
    else:
      out[key] = value
  return out


def plain(x):
  """`x` with its dicts copied and tuples made lists, the plain nested form
  that `apply_overrides` edits."""
  if isinstance(x, dict):
    return {k: plain(v) for k, v in x.items()}
  if isinstance(x, tuple):
    return list(x)
  return x


def diff(
    a: Dict[str, Any], b: Dict[str, Any], prefix: str = ""
) -> Optional[Tuple[str, Any, Any]]:
  """The first field (dotted path) where two config dicts differ."""
  for key in sorted(set(a) | set(b)):
    va, vb = a.get(key), b.get(key)
    if isinstance(va, dict) and isinstance(vb, dict):
      d = diff(va, vb, f"{prefix}{key}.")
      if d:
        return d
    elif va != vb:
      return f"{prefix}{key}", va, vb
  return None
