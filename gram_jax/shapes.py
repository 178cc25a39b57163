"""Shape arithmetic of SAME-padded convolutions, and the `Cost` pair.

A leaf module (it imports nothing of `gram_jax`): every analytic counter
(`gram_jax.cost.macs` for `ArchSpec` s, the mobile baselines in
`gram_jax.models`, Single-Path NAS's `gram_jax.singlepath.spec`) and the
latency-table walk (`gram_jax.cost.lut`) take output sizes and tap counts
from here, so models need not import the cost package.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple


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


class Layer(NamedTuple):
  """One conv or dense layer of an analytic count, with its cost.

  `kind` is ``"conv"``, ``"depthwise"`` (``groups == cin == cout > 1``) or
  ``"dense"``; `in_hw` the input's spatial size; `macs` and `params` follow
  `conv_layer` and `dense_layer`.
  """

  name: str
  kind: str
  kernel: int
  stride: int
  in_hw: Tuple[int, int]
  cin: int
  cout: int
  macs: int
  params: int
  groups: int = 1


def conv_layer(
    name: str,
    hw: Tuple[int, int],
    cin: int,
    cout: int,
    kernel: int,
    stride: int,
    *,
    groups: int = 1,
    padding_aware: bool = False,
) -> Layer:
  """A SAME-padded conv (no bias) followed by BatchNorm.

  MACs: ``taps * cin * cout / groups``, where taps are ``H_out * W_out *
  k^2`` (padding taps included) or, with `padding_aware`, only the taps
  that land inside the input (`valid_taps`, XLA's convention). Parameters:
  the kernel plus BN's scale and bias (``2 * cout``).
  """
  h, w = hw
  if padding_aware:
    taps = valid_taps(h, kernel, stride) * valid_taps(w, kernel, stride)
  else:
    taps = same_out(h, stride) * same_out(w, stride) * kernel * kernel
  per_tap = cin * cout // groups
  kind = "depthwise" if groups > 1 and groups == cin == cout else "conv"
  return Layer(
      name,
      kind,
      kernel,
      stride,
      (h, w),
      cin,
      cout,
      macs=taps * per_tap,
      params=kernel * kernel * per_tap + 2 * cout,
      groups=groups,
  )


def dense_layer(name: str, cin: int, cout: int) -> Layer:
  """A dense layer with bias on a pooled ``cin``-vector."""
  return Layer(
      name,
      "dense",
      1,
      1,
      (1, 1),
      cin,
      cout,
      macs=cin * cout,
      params=cin * cout + cout,
  )
