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

The layers come from the shared block-list builder `gram_jax.models.mobile`
(also used by FBNet). `mobilenet_v2_layers` and `mobilenet_v2_cost` give
the analytic MACs and parameters with the conventions of
`gram_jax.cost.macs`: MACs of the convs and the classifier (``H_out * W_out
* k^2 * C_in * C_out / groups``, padding taps included; BN, ReLU6,
additions and pooling not counted); trainable parameters (conv kernels, BN
scale and bias, dense kernel and bias).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import flax.linen as nn
import jax

from gram_jax.models import mobile

# Re-exported: the pieces moved to the shared builder in `mobile`.
from gram_jax.models.mobile import (
    Block,
    ConvBN,
    InvertedResidual,
    Layer,
    make_divisible,
)
from gram_jax.shapes import Cost

__all__ = [
    "STAGES",
    "Block",
    "ConvBN",
    "InvertedResidual",
    "Layer",
    "MobileNetV2",
    "blocks",
    "make_divisible",
    "mobilenet_v2_cost",
    "mobilenet_v2_layers",
    "mobilenet_v2_spec",
]

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


def block_defs() -> List[mobile.BlockDef]:
  """`STAGES` as the shared builder's block list (3x3 depthwise)."""
  return [
      mobile.BlockDef("ir", 3, t, c, s if i == 0 else 1)
      for t, c, n, s in STAGES
      for i in range(n)
  ]


def mobilenet_v2_spec(
    width: float, *, bn_momentum: float = 0.99, bn_epsilon: float = 1e-3
) -> mobile.MobileSpec:
  """The resolved network at `width` (for `mobile.MobileNet`)."""
  return mobile.resolve(
      STEM_CHANNELS,
      block_defs(),
      LAST_CHANNELS,
      width,
      last_min_width=1.0,
      activation="relu6",
      bn_momentum=bn_momentum,
      bn_epsilon=bn_epsilon,
  )


def blocks(width: float) -> Tuple[int, List[Block], int]:
  """The channel plan of `MobileNetV2` at `width`.

  Args:
    width: the width multiplier (> 0).

  Returns:
    ``(stem_channels, blocks, last_channels)``.

  Raises:
    GramJaxError: `width` is not a positive number.
  """
  spec = mobilenet_v2_spec(width)
  return spec.stem, list(spec.blocks), spec.last


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
  ``f32[B, num_classes]``. Variables: ``params`` and ``batch_stats``, named
  as those of ``mobile.MobileNet(mobilenet_v2_spec(width))``.

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
    spec = mobilenet_v2_spec(
        self.width, bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon
    )
    return mobile.body(
        x, spec, self.num_classes, train=train, dropout=self.dropout
    )


# --- analytic cost ------------------------------------------------------------


def mobilenet_v2_layers(
    width: float,
    input_size: Union[int, Sequence[int]],
    num_classes: int = 1000,
    *,
    in_channels: int = 3,
    padding_aware: bool = False,
) -> List[Layer]:
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
  mobile.check_size(input_size)
  return mobile.layers(
      mobilenet_v2_spec(width),
      input_size,
      num_classes,
      in_channels=in_channels,
      padding_aware=padding_aware,
  )


def mobilenet_v2_cost(
    width: float,
    input_size: Union[int, Sequence[int]],
    num_classes: int = 1000,
    *,
    in_channels: int = 3,
    padding_aware: bool = False,
) -> Cost:
  """Total MACs and trainable parameters of `MobileNetV2`.

  See `mobilenet_v2_layers` for the arguments. With the defaults it
  reproduces the published table (TF-slim README): e.g. 1.0 at 224 is
  300.8M MACs (published 300M) and 3.50M parameters (published 3.47M, a
  count without the 34K BatchNorm scales and biases).

  Examples:
    >>> mobilenet_v2_cost(1.0, 224)
    Cost(macs=300774272, params=3504872)
  """
  layers = mobilenet_v2_layers(
      width,
      input_size,
      num_classes,
      in_channels=in_channels,
      padding_aware=padding_aware,
  )
  return Cost(
      macs=sum(l.macs for l in layers), params=sum(l.params for l in layers)
  )
