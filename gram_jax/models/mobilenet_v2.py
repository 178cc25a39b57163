"""MobileNetV2, the hand-designed mobile baseline [Sandler et al. 2018].

The network of "MobileNetV2: Inverted Residuals and Linear Bottlenecks"
(arXiv:1801.04381), laid out as the TF-slim and Keras reference models that
published the ImageNet checkpoints:

  * stem: 3x3 conv, stride 2, ``32 * width`` channels -> BN -> ReLU6;
  * 17 inverted residual blocks, settings ``(t, c, n, s)`` per stage in
    `STAGES`: a 1x1 expansion to ``t * C_in`` channels -> BN -> ReLU6
    (absent when ``t == 1``), a 3x3 depthwise conv (stride ``s`` on the
    first block of a stage, 1 after) -> BN -> ReLU6, and a linear 1x1
    projection to ``c * width`` channels -> BN; the input is added back when
    the stride is 1 and the channel count does not change;
  * a 1x1 conv to 1280 channels -> BN -> ReLU6 (``1280 * width`` only when
    ``width > 1``: narrower models keep the wide last layer, as the
    published 0.35-0.75 checkpoints do);
  * global average pooling, optional dropout, the dense classifier.

Every conv has TF ``'SAME'`` padding and no bias. Channel counts ``c *
width`` are rounded by `make_divisible`. Input is NHWC; the published
checkpoints use 96 to 224 pixels. Any size works: the total stride is 32,
so a 32 x 32 input ends in a 1 x 1 feature map.

`mobilenet_v2_layers` and `mobilenet_v2_cost` give the analytic MACs and
parameters with the conventions of `gram_jax.cost.macs`: MACs of the convs
and the classifier (``H_out * W_out * k^2 * C_in * C_out / groups``, padding
taps included; BN, ReLU6, additions and pooling not counted); trainable
parameters (conv kernels, BN scale and bias, dense kernel and bias).
"""

from __future__ import annotations

import math
from typing import List, NamedTuple, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from gram_jax.cost.macs import Cost, same_out, valid_taps
from gram_jax.errors import GramJaxError

# (t, c, n, s): expansion factor, output channels at width 1, blocks, stride
# of the first block [Sandler et al. 2018, Table 2].
STAGES: Tuple[Tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280

# He-normal for the ReLU6 convs (fan-in is 9 for a depthwise kernel, as it
# should be); the classifier starts small.
_conv_init = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")
_dense_init = nn.initializers.normal(0.01)


def make_divisible(value: float, divisor: int = 8) -> int:
  """Rounds a channel count to a multiple of `divisor` (the TF-slim rule).

  The nearest multiple, at least `divisor`, and bumped up one multiple if
  rounding down lost more than 10% of `value`.

  Args:
    value: the unrounded channel count, e.g. ``24 * width``.
    divisor: the multiple.

  Returns:
    The rounded channel count.
  """
  rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
  if rounded < 0.9 * value:
    rounded += divisor
  return rounded


class Block(NamedTuple):
  """One inverted residual block, resolved for a width multiplier."""
  cin: int
  expanded: int      # channels after the expansion (== cin when t == 1)
  cout: int
  stride: int

  @property
  def expands(self) -> bool:
    return self.expanded != self.cin

  @property
  def residual(self) -> bool:
    return self.stride == 1 and self.cin == self.cout


def _check_width(width) -> float:
  if isinstance(width, bool) or not isinstance(width, (int, float)) \
      or not math.isfinite(width) or width <= 0:
    raise GramJaxError(f"width: {width!r} is not allowed; allowed: a number "
                       "> 0 (published: 0.35, 0.5, 0.75, 1.0, 1.4)")
  return float(width)


def _check_positive_int(value, field: str) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise GramJaxError(f"{field}: {value!r} is not allowed; allowed: an "
                       "integer >= 1")
  return value


def blocks(width: float) -> Tuple[int, List[Block], int]:
  """The channel plan of `MobileNetV2` at `width`.

  Args:
    width: the width multiplier (> 0).

  Returns:
    ``(stem_channels, blocks, last_channels)``.

  Raises:
    GramJaxError: `width` is not a positive number.
  """
  width = _check_width(width)
  stem = make_divisible(STEM_CHANNELS * width)
  plan = []
  cin = stem
  for t, c, n, s in STAGES:
    cout = make_divisible(c * width)
    for i in range(n):
      plan.append(Block(cin, cin * t, cout, s if i == 0 else 1))
      cin = cout
  last = make_divisible(LAST_CHANNELS * max(1.0, width))
  return stem, plan, last


class ConvBN(nn.Module):
  """k x k conv (SAME, no bias) -> BatchNorm -> optional ReLU6."""
  channels: int
  kernel: int = 1
  stride: int = 1
  groups: int = 1
  relu6: bool = True
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = nn.Conv(self.channels, (self.kernel, self.kernel),
                strides=(self.stride, self.stride), padding="SAME",
                feature_group_count=self.groups, use_bias=False,
                kernel_init=_conv_init, name="conv")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                     epsilon=self.bn_epsilon, name="bn")(x)
    return jax.nn.relu6(x) if self.relu6 else x


class InvertedResidual(nn.Module):
  """Expand (1x1) -> depthwise 3x3 -> linear project (1x1), + input."""
  block: Block
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    b = self.block
    bn = dict(bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon)
    y = x
    if b.expands:
      y = ConvBN(b.expanded, name="expand", **bn)(y, train=train)
    y = ConvBN(b.expanded, 3, b.stride, groups=b.expanded, name="depthwise",
               **bn)(y, train=train)
    y = ConvBN(b.cout, relu6=False, name="project", **bn)(y, train=train)
    return x + y if b.residual else y


class MobileNetV2(nn.Module):
  """MobileNetV2 [Sandler et al. 2018] as the TF-slim / Keras reference.

  Attributes:
    width: width multiplier (> 0; published: 0.35, 0.5, 0.75, 1.0, 1.4).
    num_classes: classifier outputs.
    dropout: dropout rate before the classifier (0 disables it; when > 0,
      ``train=True`` needs a ``"dropout"`` rng).
    bn_momentum: BatchNorm running-average momentum (TF convention).
    bn_epsilon: BatchNorm epsilon.

  Call with ``x: f32[B, H, W, C]`` (NHWC) and ``train``; returns logits
  ``f32[B, num_classes]``. Variables: ``params`` and ``batch_stats``.

  Examples:
    >>> net = MobileNetV2(width=0.35, num_classes=10)
    >>> x = jnp.zeros((1, 96, 96, 3))
    >>> variables = net.init(jax.random.key(0), x)
    >>> net.apply(variables, x).shape
    (1, 10)
  """
  width: float = 1.0
  num_classes: int = 1000
  dropout: float = 0.0
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    _check_positive_int(self.num_classes, "num_classes")
    if not 0.0 <= self.dropout < 1.0:
      raise GramJaxError(f"dropout: {self.dropout!r} is not allowed; "
                         "allowed: 0 <= dropout < 1")
    if x.ndim != 4:
      raise GramJaxError(f"x: shape {x.shape} is not allowed; allowed: "
                         "[B, H, W, C] (NHWC)")
    stem, plan, last = blocks(self.width)
    bn = dict(bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon)
    x = ConvBN(stem, 3, 2, name="stem", **bn)(x, train=train)
    for i, block in enumerate(plan):
      x = InvertedResidual(block, name=f"block{i}", **bn)(x, train=train)
    x = ConvBN(last, name="last", **bn)(x, train=train)
    x = jnp.mean(x, axis=(1, 2))
    if self.dropout > 0:
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, kernel_init=_dense_init,
                    name="head")(x)


# --- analytic cost ------------------------------------------------------------


class Layer(NamedTuple):
  """One conv or dense layer of `MobileNetV2` with its cost."""
  name: str
  kind: str          # "conv" | "depthwise" | "dense"
  kernel: int
  stride: int
  in_hw: Tuple[int, int]
  cin: int
  cout: int
  groups: int
  macs: int
  params: int





def _conv(name, hw, cin, cout, kernel, stride, groups, padding_aware):
  h, w = hw
  if padding_aware:
    taps = valid_taps(h, kernel, stride) * valid_taps(w, kernel, stride)
  else:
    taps = same_out(h, stride) * same_out(w, stride) * kernel * kernel
  per_tap = cin * cout // groups
  return Layer(name, "depthwise" if groups > 1 else "conv", kernel, stride,
               (h, w), cin, cout, groups, macs=taps * per_tap,
               params=kernel * kernel * per_tap + 2 * cout)


def _check_size(input_size) -> Tuple[int, int]:
  if isinstance(input_size, int) and not isinstance(input_size, bool):
    input_size = (input_size, input_size)
  try:
    h, w = input_size
  except (TypeError, ValueError):
    h = w = None
  if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1
             for s in (h, w)):
    raise GramJaxError(f"input_size: {input_size!r} is not allowed; "
                       "allowed: a positive integer (square) or (H, W)")
  return h, w


def mobilenet_v2_layers(width: float, input_size: Union[int, Sequence[int]],
                        num_classes: int = 1000, *, in_channels: int = 3,
                        padding_aware: bool = False) -> List[Layer]:
  """Every conv and dense layer of `MobileNetV2` with its MACs and params.

  Args:
    width: the width multiplier (> 0).
    input_size: the input resolution, ``S`` (square) or ``(H, W)``.
    num_classes: classifier outputs.
    in_channels: image channels.
    padding_aware: count only taps that touch real input (XLA's
      convention) instead of ``k^2`` per output position.

  Returns:
    The layers in execution order: stem, per block ``expand`` (when
    present), ``depthwise`` and ``project``, the last 1x1 conv, ``head``.

  Raises:
    GramJaxError: a bad argument (one line naming it).
  """
  h, w = _check_size(input_size)
  _check_positive_int(num_classes, "num_classes")
  _check_positive_int(in_channels, "in_channels")
  stem, plan, last = blocks(width)
  aware = padding_aware
  out = [_conv("stem", (h, w), in_channels, stem, 3, 2, 1, aware)]
  h, w = same_out(h, 2), same_out(w, 2)
  for i, b in enumerate(plan):
    if b.expands:
      out.append(_conv(f"block{i}/expand", (h, w), b.cin, b.expanded, 1, 1, 1,
                       aware))
    out.append(_conv(f"block{i}/depthwise", (h, w), b.expanded, b.expanded, 3,
                     b.stride, b.expanded, aware))
    h, w = same_out(h, b.stride), same_out(w, b.stride)
    out.append(_conv(f"block{i}/project", (h, w), b.expanded, b.cout, 1, 1, 1,
                     aware))
  out.append(_conv("last", (h, w), plan[-1].cout, last, 1, 1, 1, aware))
  out.append(Layer("head", "dense", 1, 1, (1, 1), last, num_classes, 1,
                   macs=last * num_classes,
                   params=last * num_classes + num_classes))
  return out


def mobilenet_v2_cost(width: float, input_size: Union[int, Sequence[int]],
                      num_classes: int = 1000, *, in_channels: int = 3,
                      padding_aware: bool = False) -> Cost:
  """Total MACs and trainable parameters of `MobileNetV2`.

  See `mobilenet_v2_layers` for the arguments. With the defaults it
  reproduces the published table (TF-slim README): e.g. 1.0 at 224 is
  300.8M MACs (published 300M) and 3.50M parameters (published 3.47M, a
  count without the 34K BatchNorm scales and biases).

  Examples:
    >>> mobilenet_v2_cost(1.0, 224)
    Cost(macs=300774272, params=3504872)
  """
  layers = mobilenet_v2_layers(width, input_size, num_classes,
                               in_channels=in_channels,
                               padding_aware=padding_aware)
  return Cost(macs=sum(l.macs for l in layers),
              params=sum(l.params for l in layers))
