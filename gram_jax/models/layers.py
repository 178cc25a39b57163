"""Layers shared by the supernet and the exact network.

Both compilers build nodes from the same `ConvBNAct` module with the same
names, so a supernet's variables map onto an exact network's by slicing input
channels only (see `supernet.to_exact_variables`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gram_jax.depthwise import depthwise_conv
from gram_jax.errors import GramJaxError

# AutoShrink initialises convs and the classifier glorot-normal
# (ALGORITHMS.md 1.3 #9).
kernel_init = nn.initializers.glorot_normal()


# The activations a `ConvBN` may end with ("none": linear).
ACTIVATIONS = {
    "elu": nn.elu,
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "none": lambda x: x,
}


class ConvBN(nn.Module):
  """k x k conv (SAME, no bias) -> BatchNorm -> `activation`.

  The one conv block of every network here: GRAM's nodes (`ConvBNAct`),
  MobileNetV2 / FBNet blocks (`gram_jax.models.mobile.ConvBN`) and the
  Single-Path backbone (`gram_jax.singlepath.superkernel.ConvBN`) are this
  module with their own defaults. The variables are always ``conv/kernel``
  and ``bn/{scale,bias,mean,var}``. With ``groups == channels ==`` the input
  channels the conv is depthwise and runs as `DepthwiseConv` (the same
  parameter).
  """

  channels: int
  kernel: int = 1
  stride: int = 1
  groups: int = 1
  activation: str = "none"  # a key of ACTIVATIONS
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  kernel_init: Callable = kernel_init

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if self.activation not in ACTIVATIONS:
      raise GramJaxError(
          f"activation: {self.activation!r} is not allowed; allowed: "
          f"{', '.join(ACTIVATIONS)}"
      )
    if self.groups > 1 and self.groups == self.channels == x.shape[-1]:
      x = DepthwiseConv(
          self.kernel, self.stride, kernel_init=self.kernel_init, name="conv"
      )(x)
    else:
      x = nn.Conv(
          self.channels,
          (self.kernel, self.kernel),
          strides=(self.stride, self.stride),
          padding="SAME",
          feature_group_count=self.groups,
          use_bias=False,
          kernel_init=self.kernel_init,
          name="conv",
      )(x)
    x = nn.BatchNorm(
        use_running_average=not train,
        momentum=self.bn_momentum,
        epsilon=self.bn_epsilon,
        name="bn",
    )(x)
    return ACTIVATIONS[self.activation](x)


class ConvBNAct(ConvBN):
  """A GRAM node: k x k conv (SAME, no bias) -> BatchNorm -> ELU [SN §4.1],
  glorot-normal kernel, BN momentum 0.9 and epsilon 1e-5."""

  kernel: int = 3
  activation: str = "elu"
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5


class DepthwiseConv(nn.Module):
  """``nn.Conv(C, (k, k), feature_group_count=C, use_bias=False,
  padding="SAME")`` with the same parameter (``kernel: f32[k, k, 1, C]``,
  drawn by `kernel_init` with the same shape), computed by
  `gram_jax.depthwise.depthwise_conv`: several times faster to train on
  XLA:CPU, the convolution itself on other backends and in exports."""

  kernel_size: int
  stride: int = 1
  kernel_init: Callable = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param(
        "kernel", self.kernel_init, (k, k, 1, x.shape[-1]), jnp.float32
    )
    return depthwise_conv(x, kernel, self.stride)


def pad_channels(x: jax.Array, width: int) -> jax.Array:
  """Zero-pads the channel axis of an NHWC tensor up to `width`."""
  extra = width - x.shape[-1]
  if extra == 0:
    return x
  return jnp.pad(x, ((0, 0),) * (x.ndim - 1) + ((0, extra),))


def aggregate(xs: Sequence[jax.Array], mode: str) -> jax.Array:
  """``"sum"``: zero-pad to the widest and add; ``"concat"``: concatenate."""
  if len(xs) == 1:
    return xs[0]
  if mode == "sum":
    width = max(x.shape[-1] for x in xs)
    out = pad_channels(xs[0], width)
    for x in xs[1:]:
      out = out + pad_channels(x, width)
    return out
  return jnp.concatenate(list(xs), axis=-1)


def pool(x: jax.Array, mode: str) -> jax.Array:
  """2x2 pooling with stride 2 and SAME padding between hierarchies.

  The form exported networks keep (one MAX_POOL_2D / AVERAGE_POOL_2D op in
  TFLite); the supernet trains with `pool_reshaped`, which has the same
  forward values.
  """
  if mode == "max":
    return nn.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
  return nn.avg_pool(
      x, (2, 2), strides=(2, 2), padding="SAME", count_include_pad=False
  )


def pool_reshaped(x: jax.Array, mode: str) -> jax.Array:
  """`pool` as a reshape and a reduction: faster to train on XLA:CPU.

  A reshape to ``[B, H/2, 2, W/2, 2, C]`` and a reduction over the two
  window axes rather than `reduce_window`: on XLA:CPU the gradient
  of a max `reduce_window` is a variadic reduce-window that tracks argmax
  indices (four iota tensors), which cost about a fifth of a quickstart
  supernet train step (docs/profile.md); the reshape form's gradient is one
  compare-and-select. Same forward values as ``nn.max_pool`` /
  ``nn.avg_pool(count_include_pad=False)`` with SAME padding (odd sizes
  gain one padded row/column at the end, as TF's SAME does for a 2x2/2
  window). The max gradient at exact ties is split evenly among the tied
  inputs (`jnp.max`'s rule) instead of going to the first one.
  """
  b, h, w, c = x.shape
  ph, pw = h % 2, w % 2
  if mode == "max":
    if ph or pw:
      x = jnp.pad(
          x, ((0, 0), (0, ph), (0, pw), (0, 0)), constant_values=-jnp.inf
      )
    return jnp.max(
        x.reshape(b, (h + ph) // 2, 2, (w + pw) // 2, 2, c), axis=(2, 4)
    )
  if ph or pw:
    x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)))
  total = jnp.sum(
      x.reshape(b, (h + ph) // 2, 2, (w + pw) // 2, 2, c), axis=(2, 4)
  )
  if not (ph or pw):
    return total * 0.25
  # count_include_pad=False: border windows average their real inputs only.
  ones = jnp.pad(
      jnp.ones((1, h, w, 1), x.dtype), ((0, 0), (0, ph), (0, pw), (0, 0))
  )
  count = jnp.sum(
      ones.reshape(1, (h + ph) // 2, 2, (w + pw) // 2, 2, 1), axis=(2, 4)
  )
  return total / count


def head(x: jax.Array, num_classes: int) -> jax.Array:
  """Global average pooling and the dense classifier (logits)."""
  x = jnp.mean(x, axis=(1, 2))
  return nn.Dense(num_classes, kernel_init=kernel_init, name="head")(x)


# flax's glorot_normal draws a standard normal truncated to [-2, 2]; this is
# that distribution's standard deviation, divided out to get unit variance.
_TRUNCATED_STD = np.float32(0.87962566103423978)


def glorot_std(shape) -> np.float32:
  """Glorot's ``sqrt(2 / (fan_in + fan_out))`` of a kernel of `shape`
  (``[..., in, out]``; the leading axes are the receptive field)."""
  receptive = int(np.prod(shape[:-2]))
  fan_in, fan_out = receptive * shape[-2], receptive * shape[-1]
  return np.float32(np.sqrt(2.0 / (fan_in + fan_out)))


def fresh_variables(
    shapes: Any, key: jax.Array, dtype, std: Callable[[tuple, Any], Any]
) -> Dict:
  """Variables of one candidate, built without tracing its network.

  Every ``kernel`` leaf of `shapes` (a `jax.eval_shape` tree of ``init``)
  is glorot-normal (flax's truncated normal) times ``std(path, shape)``,
  which may be traced (the candidate's real fan-in, not the supernet's
  padded width); BN ``scale`` and ``var`` are 1, everything else 0. All
  kernels come from one random draw: one RNG op instead of one per layer
  cuts the XLA compile time of an ``init`` several-fold on the CPU. The
  GRAM supernet and AutoShrink's masked network both initialise this way.
  """
  flat, treedef = jax.tree_util.tree_flatten_with_path(shapes)
  kernels = [(p, s) for p, s in flat if p[-1].key == "kernel"]
  total = sum(int(np.prod(s.shape)) for _, s in kernels)
  noise = jax.random.truncated_normal(key, -2.0, 2.0, (total,), dtype)
  noise = noise / _TRUNCATED_STD
  values, offset = {}, 0
  for path, s in kernels:
    size = int(np.prod(s.shape))
    values[path] = noise[offset : offset + size].reshape(s.shape) * std(path, s)
    offset += size

  def leaf(path, s):
    if path in values:
      return values[path]
    fill = 1.0 if path[-1].key in ("scale", "var") else 0.0
    return jnp.full(s.shape, fill, s.dtype)

  return jax.tree_util.tree_unflatten(treedef, [leaf(p, s) for p, s in flat])
