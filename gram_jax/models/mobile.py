"""A block-list builder for mobile networks (MobileNetV2, FBNet).

A mobile network here is a stem conv, a list of blocks, an optional 1x1
"last" conv, global average pooling and a dense classifier. Blocks are

  * ``"ir"``: the inverted residual (MBConv / FBNet's IRF) block: a 1x1
    expansion to ``expanded`` channels -> BN -> act (absent when
    ``expanded == cin``, the MobileNetV2 and mobile-vision rule), a ``k x k``
    depthwise conv (stride on it) -> BN -> act, a linear 1x1 projection
    -> BN, plus the input when the stride is 1 and the width is unchanged.
    ``groups > 1`` makes both 1x1 convs group convs and shuffles the
    channels after the expansion (FBNet's ``_g2`` blocks);
  * ``"conv"``: a 1x1 conv -> BN -> act: FBNet's ``skip`` op where it
    changes the width or the resolution (an identity ``skip`` is no block).

`BlockDef` lists a network at width multiplier 1; `resolve` turns the
list into concrete `Block` s for a width; `MobileNet` is the Flax module
and `layers` / `cost` the analytic MACs and parameters with the
conventions of `gram_jax.cost.macs` (MACs of convs and the classifier,
padding taps included unless ``padding_aware``; parameters: kernels, BN
scale and bias, dense kernel and bias).
"""

from __future__ import annotations

import functools
import math
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from gram_jax.errors import GramJaxError
from gram_jax.models import layers as layer_lib
from gram_jax.shapes import Cost, Layer, conv_layer, dense_layer, same_out

ACTIVATIONS = {"relu6": jax.nn.relu6, "relu": jax.nn.relu}
BLOCK_KINDS = ("ir", "conv")

# He-normal for the ReLU convs (fan-in is k^2 for a depthwise kernel, as it
# should be); the classifier starts small.
_conv_init = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")
_dense_init = nn.initializers.normal(0.01)


def make_divisible(value: float, divisor: int = 8) -> int:
  """Rounds a channel count to a multiple of `divisor` (the TF-slim rule).

  The nearest multiple, at least `divisor`, and bumped up one multiple if
  rounding down lost more than 10% of `value` (mobile-vision's
  ``get_divisible_by`` is the same rule).

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
  """One block, resolved for a width multiplier (see the module doc)."""

  cin: int
  expanded: int  # channels after the expansion (== cin: no expansion)
  cout: int
  stride: int
  kernel: int = 3  # depthwise kernel ("ir"); 1 for "conv"
  groups: int = 1  # groups of the 1x1 convs ("ir"), shuffle when > 1
  kind: str = "ir"

  @property
  def expands(self) -> bool:
    return self.kind == "ir" and self.expanded != self.cin

  @property
  def residual(self) -> bool:
    return self.kind == "ir" and self.stride == 1 and self.cin == self.cout


class BlockDef(NamedTuple):
  """One block of a network definition at width multiplier 1.

  Attributes:
    op: ``"ir"`` (inverted residual) or ``"skip"`` (identity when width
      and resolution are unchanged, else a 1x1 conv-BN-act).
    kernel: depthwise kernel size of ``"ir"``.
    expansion: expansion factor of ``"ir"``.
    channels: output channels at width 1.
    stride: stride (on the depthwise conv).
    groups: groups of the 1x1 convs of ``"ir"``.
  """

  op: str
  kernel: int
  expansion: int
  channels: int
  stride: int = 1
  groups: int = 1


class MobileSpec(NamedTuple):
  """A resolved mobile network: everything but the classifier size."""

  stem: int  # stem conv channels
  blocks: Tuple[Block, ...]
  last: int  # last 1x1 conv channels (0: none)
  activation: str = "relu6"
  stem_kernel: int = 3
  stem_stride: int = 2
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3


def check_width(width) -> float:
  """`width` as a float, or one GramJaxError line."""
  if (
      isinstance(width, bool)
      or not isinstance(width, (int, float))
      or not math.isfinite(width)
      or width <= 0
  ):
    raise GramJaxError(
        f"width: {width!r} is not allowed; allowed: a number "
        "> 0 (published: 0.35, 0.5, 0.75, 1.0, 1.4)"
    )
  return float(width)


def check_positive_int(value, field: str) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise GramJaxError(
        f"{field}: {value!r} is not allowed; allowed: an integer >= 1"
    )
  return value


def resolve(
    stem: int,
    defs: Sequence[BlockDef],
    last: int,
    width: float,
    *,
    last_min_width: Optional[float] = None,
    **spec_fields,
) -> MobileSpec:
  """Concrete channels of a block list at a width multiplier.

  Channels ``c * width`` are rounded by `make_divisible`; the expansion is
  ``cin * expansion``. An identity ``skip`` is dropped.

  Args:
    stem: stem channels at width 1.
    defs: the blocks at width 1.
    last: last 1x1 conv channels at width 1 (0: none).
    width: the width multiplier (> 0).
    last_min_width: when set, the last conv is scaled by
      ``max(width, last_min_width)`` (MobileNetV2 keeps 1280 below 1.0).
    **spec_fields: other `MobileSpec` fields (activation, BN settings).

  Returns:
    The `MobileSpec`.
  """
  width = check_width(width)
  c_stem = make_divisible(stem * width)
  plan, cin = [], c_stem
  for i, d in enumerate(defs):
    if d.op not in ("ir", "skip"):
      raise GramJaxError(
          f"blocks[{i}].op: {d.op!r} is not allowed; allowed: ir, skip"
      )
    cout = make_divisible(d.channels * width)
    if d.op == "skip":
      if cout != cin or d.stride != 1:
        plan.append(Block(cin, cout, cout, d.stride, 1, 1, "conv"))
    else:
      expanded = cin * d.expansion
      if expanded % d.groups or cout % d.groups or cin % d.groups:
        raise GramJaxError(
            f"blocks[{i}].groups: {d.groups} does not divide "
            f"the channels {cin}/{expanded}/{cout}"
        )
      plan.append(Block(cin, expanded, cout, d.stride, d.kernel, d.groups))
    cin = cout
  if last:
    scale = width if last_min_width is None else max(width, last_min_width)
    last = make_divisible(last * scale)
  return MobileSpec(c_stem, tuple(plan), last, **spec_fields)


# --- Flax modules -------------------------------------------------------------


class ConvBN(layer_lib.ConvBN):
  """`gram_jax.models.layers.ConvBN` with MobileNetV2's defaults: ReLU6,
  He-normal kernel (`_conv_init`), BN momentum 0.99 and epsilon 1e-3."""

  activation: str = "relu6"
  kernel_init: Callable = _conv_init


def channel_shuffle(x: jax.Array, groups: int) -> jax.Array:
  """ShuffleNet's shuffle on NHWC: ``[.., g, C/g] -> [.., C/g, g]``."""
  if groups == 1:
    return x
  *lead, c = x.shape
  x = x.reshape(*lead, groups, c // groups)
  return jnp.swapaxes(x, -1, -2).reshape(*lead, c)


class InvertedResidual(nn.Module):
  """Expand (1x1) -> depthwise k x k -> linear project (1x1), + input."""

  block: Block
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  activation: str = "relu6"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    b = self.block
    kw = dict(bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon)
    act = self.activation
    if b.kind == "conv":
      return ConvBN(b.cout, 1, b.stride, activation=act, name="conv", **kw)(
          x, train=train
      )
    y = x
    if b.expands:
      y = ConvBN(
          b.expanded, groups=b.groups, activation=act, name="expand", **kw
      )(y, train=train)
    y = channel_shuffle(y, b.groups)
    y = ConvBN(
        b.expanded,
        b.kernel,
        b.stride,
        groups=b.expanded,
        activation=act,
        name="depthwise",
        **kw,
    )(y, train=train)
    y = ConvBN(
        b.cout, groups=b.groups, activation="none", name="project", **kw
    )(y, train=train)
    return x + y if b.residual else y


def body(
    x: jax.Array,
    spec: MobileSpec,
    num_classes: int,
    *,
    train: bool,
    dropout: float = 0.0,
) -> jax.Array:
  """The network's layers, created in the calling module's scope.

  Called from the ``@nn.compact`` method of `MobileNet` and `MobileNetV2`,
  so both have the same flat variable names: ``stem``, ``block{i}``,
  ``last``, ``head``.
  """
  check_positive_int(num_classes, "num_classes")
  if not 0.0 <= dropout < 1.0:
    raise GramJaxError(
        f"dropout: {dropout!r} is not allowed; allowed: 0 <= dropout < 1"
    )
  if x.ndim != 4:
    raise GramJaxError(
        f"x: shape {x.shape} is not allowed; allowed: [B, H, W, C] (NHWC)"
    )
  if spec.activation not in ACTIVATIONS:
    raise GramJaxError(
        f"activation: {spec.activation!r} is not allowed; "
        f"allowed: {', '.join(ACTIVATIONS)}"
    )
  kw = dict(bn_momentum=spec.bn_momentum, bn_epsilon=spec.bn_epsilon)
  x = ConvBN(
      spec.stem,
      spec.stem_kernel,
      spec.stem_stride,
      activation=spec.activation,
      name="stem",
      **kw,
  )(x, train=train)
  for i, block in enumerate(spec.blocks):
    x = InvertedResidual(
        block, activation=spec.activation, name=f"block{i}", **kw
    )(x, train=train)
  if spec.last:
    x = ConvBN(spec.last, activation=spec.activation, name="last", **kw)(
        x, train=train
    )
  x = jnp.mean(x, axis=(1, 2))
  if dropout > 0:
    x = nn.Dropout(dropout, deterministic=not train)(x)
  return nn.Dense(num_classes, kernel_init=_dense_init, name="head")(x)


class MobileNet(nn.Module):
  """A mobile network from a resolved `MobileSpec`.

  Attributes:
    spec: the network (see `resolve`).
    num_classes: classifier outputs.
    dropout: dropout rate before the classifier (0 disables it).

  Call with ``x: f32[B, H, W, C]`` (NHWC) and ``train``; returns logits.

  Examples:
    >>> spec = resolve(16, [BlockDef("ir", 3, 6, 24, 2)], 64, 1.0)
    >>> net = MobileNet(spec, num_classes=10)
    >>> x = jnp.zeros((1, 32, 32, 3))
    >>> net.apply(net.init(jax.random.key(0), x), x).shape
    (1, 10)
  """

  spec: MobileSpec
  num_classes: int = 1000
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return body(
        x, self.spec, self.num_classes, train=train, dropout=self.dropout
    )


# --- analytic cost ------------------------------------------------------------


def check_size(input_size) -> Tuple[int, int]:
  if isinstance(input_size, int) and not isinstance(input_size, bool):
    input_size = (input_size, input_size)
  try:
    h, w = input_size
  except (TypeError, ValueError):
    h = w = None
  if not all(
      isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in (h, w)
  ):
    raise GramJaxError(
        f"input_size: {input_size!r} is not allowed; "
        "allowed: a positive integer (square) or (H, W)"
    )
  return h, w


def layers(
    spec: MobileSpec,
    input_size: Union[int, Sequence[int]],
    num_classes: int = 1000,
    *,
    in_channels: int = 3,
    padding_aware: bool = False,
) -> List[Layer]:
  """Every conv and dense layer of ``MobileNet(spec)`` with its cost.

  Args:
    spec: the network.
    input_size: the input resolution, ``S`` (square) or ``(H, W)``.
    num_classes: classifier outputs.
    in_channels: image channels.
    padding_aware: count only taps that touch real input (XLA's
      convention) instead of ``k^2`` per output position.

  Returns:
    The layers in execution order: ``stem``, per block ``expand`` (when
    present), ``depthwise`` and ``project`` (or ``conv``), ``last``,
    ``head``.
  """
  h, w = check_size(input_size)
  check_positive_int(num_classes, "num_classes")
  check_positive_int(in_channels, "in_channels")
  conv = functools.partial(conv_layer, padding_aware=padding_aware)
  s = spec.stem_stride
  out = [conv("stem", (h, w), in_channels, spec.stem, spec.stem_kernel, s)]
  h, w = same_out(h, s), same_out(w, s)
  cin = spec.stem
  for i, b in enumerate(spec.blocks):
    if b.kind == "conv":
      out.append(conv(f"block{i}/conv", (h, w), b.cin, b.cout, 1, b.stride))
      h, w = same_out(h, b.stride), same_out(w, b.stride)
      cin = b.cout
      continue
    if b.expands:
      out.append(
          conv(
              f"block{i}/expand",
              (h, w),
              b.cin,
              b.expanded,
              1,
              1,
              groups=b.groups,
          )
      )
    out.append(
        conv(
            f"block{i}/depthwise",
            (h, w),
            b.expanded,
            b.expanded,
            b.kernel,
            b.stride,
            groups=b.expanded,
        )
    )
    h, w = same_out(h, b.stride), same_out(w, b.stride)
    out.append(
        conv(
            f"block{i}/project",
            (h, w),
            b.expanded,
            b.cout,
            1,
            1,
            groups=b.groups,
        )
    )
    cin = b.cout
  if spec.last:
    out.append(conv("last", (h, w), cin, spec.last, 1, 1))
    cin = spec.last
  out.append(dense_layer("head", cin, num_classes))
  return out


def cost(
    spec: MobileSpec,
    input_size: Union[int, Sequence[int]],
    num_classes: int = 1000,
    *,
    in_channels: int = 3,
    padding_aware: bool = False,
) -> Cost:
  """Total MACs and trainable parameters (see `layers`)."""
  ls = layers(
      spec,
      input_size,
      num_classes,
      in_channels=in_channels,
      padding_aware=padding_aware,
  )
  return Cost(macs=sum(l.macs for l in ls), params=sum(l.params for l in ls))
