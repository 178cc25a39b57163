"""Depthwise convolution, lowered the way the backend runs it fastest.

XLA:CPU runs a depthwise convolution (``feature_group_count`` equal to the
channels) as a grouped convolution, one tiny matrix product per channel,
and its gradient worse still: measured at batch 128 on a 2-core CPU, the
forward-and-backward of a 3x3 depthwise layer of MobileNetV2's sizes takes
5-9x as long as the same sum written as k x k shifted, scaled copies of the
input (``python benchmarks/depthwise.py``). So on the CPU `depthwise_conv`
builds that sum (``"shift"``); on other backends, where the grouped
convolution has a real kernel, it emits the convolution (``"conv"``). The
two give the same values up to float rounding.

An exported model must keep the convolution (one DEPTHWISE_CONV_2D op in
TFLite, which is what a phone runs), so `gram_jax.export` traces under
``depthwise_impl("conv")``. The choice is made when a function is traced:
a jitted function keeps the lowering it was first traced with.

This module imports only JAX (``import gram_jax.export`` loads no Flax).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Iterator

import jax
import jax.numpy as jnp

from gram_jax.errors import GramJaxError

IMPLS = ("auto", "conv", "shift")
ENV = "GRAM_JAX_DEPTHWISE"

_impl = contextvars.ContextVar("gram_jax_depthwise_impl", default="auto")


@contextlib.contextmanager
def depthwise_impl(impl: str) -> Iterator[None]:
  """Within the block, `depthwise_conv` traces as `impl`.

  ``"auto"`` (the default): ``"shift"`` on the CPU backend, ``"conv"``
  elsewhere; ``"conv"``: ``lax.conv_general_dilated`` with one group per
  channel; ``"shift"``: the sum of shifted copies.
  """
  if impl not in IMPLS:
    raise GramJaxError(
        f"depthwise impl: {impl!r} is not allowed; allowed: {', '.join(IMPLS)}"
    )
  token = _impl.set(impl)
  try:
    yield
  finally:
    _impl.reset(token)


def current_impl() -> str:
  """The lowering `depthwise_conv` would trace now: ``"conv"`` or
  ``"shift"``. ``"auto"`` (outside any `depthwise_impl` block) reads the
  environment variable ``GRAM_JAX_DEPTHWISE`` (one of `IMPLS`) and, if it is
  unset or ``auto``, resolves against the default backend."""
  impl = _impl.get()
  if impl == "auto":
    impl = os.environ.get(ENV, "auto") or "auto"
    if impl not in IMPLS:
      raise GramJaxError(
          f"{ENV}: {impl!r} is not allowed; allowed: {', '.join(IMPLS)}"
      )
  if impl == "auto":
    return "shift" if jax.default_backend() == "cpu" else "conv"
  return impl


def _same_padding(size: int, kernel: int, stride: int):
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return out, (total // 2, total - total // 2)


def depthwise_conv(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
  """Depthwise convolution of NHWC `x`, SAME padding (TF's), no bias.

  Args:
    x: ``f[B, H, W, C]``.
    kernel: ``f[k, k, 1, C]`` (Flax's layout for ``nn.Conv`` with
      ``feature_group_count=C``).
    stride: the spatial stride, both axes.

  Returns:
    ``f[B, ceil(H / stride), ceil(W / stride), C]``.
  """
  k, k2, one, c = kernel.shape
  if k != k2 or one != 1 or c != x.shape[-1]:
    raise GramJaxError(
        f"depthwise kernel: shape {tuple(kernel.shape)} does not fit input "
        f"channels {x.shape[-1]}; expected [k, k, 1, {x.shape[-1]}]"
    )
  dtype = jnp.result_type(x, kernel)
  x, kernel = x.astype(dtype), kernel.astype(dtype)
  if current_impl() == "conv":
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        (stride, stride),
        "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=c,
    )
  b, h, w, _ = x.shape
  oh, pad_h = _same_padding(h, k, stride)
  ow, pad_w = _same_padding(w, k, stride)
  xp = jnp.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))
  taps = kernel[:, :, 0, :]
  out = None
  for i in range(k):
    for j in range(k):
      window = jax.lax.slice(
          xp,
          (0, i, j, 0),
          (b, i + (oh - 1) * stride + 1, j + (ow - 1) * stride + 1, c),
          (1, stride, stride, 1),
      )
      term = window * taps[i, j]
      out = term if out is None else out + term
  return out
