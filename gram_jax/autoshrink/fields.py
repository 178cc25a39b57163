"""AutoShrink's config schemas are checked by the one config layer.

A schema maps a field name to ``(default, type, check)``;
`gram_jax.config.check_group` fills defaults, rejects unknown fields and
returns a new dict; every problem is one error line naming the field and
what is allowed, so the CLI exits 2 before anything is written. This module
keeps the short names the AutoShrink schemas are written with.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

from gram_jax import config
from gram_jax.config import check_group, in_range

Check = Optional[Tuple[Callable[[Any], bool], str]]

__all__ = ["Check", "between", "check_group", "one_of"]


def between(lo=None, hi=None, *, lo_open=False, hi_open=False) -> Check:
  """`gram_jax.config.in_range`, keyword-only bounds."""
  return in_range(lo, hi, lo_open=lo_open, hi_open=hi_open)


def one_of(*values) -> Check:
  """`gram_jax.config.one_of` over the arguments."""
  return config.one_of(values)
