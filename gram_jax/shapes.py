"""Shape arithmetic of SAME-padded convolutions, and the `Cost` pair.

A leaf module (it imports nothing of `gram_jax`): every analytic counter
(`gram_jax.cost.macs` for `ArchSpec` s, the mobile baselines in
`gram_jax.models`, Single-Path NAS's `gram_jax.singlepath.spec`) and the
latency-table walk (`gram_jax.cost.lut`) take output sizes and tap counts
from here, so models need not import the cost package.
"""

from __future__ import annotations

from typing import NamedTuple


class Cost(NamedTuple):
  """Analytic MACs and trainable parameters of a network."""

  macs: int
  params: int


def same_out(size: int, stride: int) -> int:
  """Output size of a SAME-padded conv or pool: ``ceil(size / stride)``."""
  return -(-size // stride)


def valid_taps(size: int, kernel: int, stride: int) -> int:
  """Sum over output positions of kernel taps that land inside the input."""
  out = same_out(size, stride)
  pad_before = max((out - 1) * stride + kernel - size, 0) // 2
  total = 0
  for o in range(out):
    start = o * stride - pad_before
    total += min(start + kernel, size) - max(start, 0)
  return total
