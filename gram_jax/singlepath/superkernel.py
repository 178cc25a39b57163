"""The superkernel MBConv layer and the Single-Path supernet.

ALGORITHMS.md 3.2 [SP: nas-search/superkernel.py]. Every searchable layer has
ONE depthwise kernel ``W: f32[5, 5, 1, 6 * C_in]`` (Flax layout). The
candidate ops are subsets of it:

  * k3: the centre 3x3; k5: the whole 5x5;
  * e3: the first half of the channels; e6: all of them;
  * skip: no channel at all (only stride-1, non-first layers).

Three trainable thresholds per layer (initialised to 0) make the decisions,
in this order:

  d_k  = I(||W * M5|| - t_k5)                        outer ring, all channels
  W'   = W * M3 + d_k * W * M5
  d_e6 = I(||W' * C100|| - t_e6)                     second channel half
  d_e3 = I(||W' * C50|| - t_e3)  (1 if skipping is not allowed)
  W_f  = d_e3 * (W' * C50 + d_e6 * W' * C100)

`indicator` is a hard step forward and the sigmoid's derivative backward
(a custom VJP; the official code writes it as a straight-through sum). In
the warm-up each indicator goes through dropout (one Bernoulli per
indicator per step, kept with probability ``keep`` and rescaled by
``1 / keep`` as TF1's ``tf.nn.dropout`` does).

By default the rest of the block is the official code's: the expand conv
always computes all ``6 * C_in`` channels, and a channel masked in the
depthwise kernel still leaves ``ReLU(beta)`` after BN [SP-iss#11].
``exact_masks=True`` (a documented deviation) also zeroes masked channels
after the activation and turns a skipped layer into the identity, so the
supernet at hard decisions computes exactly the decoded network.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gram_jax.depthwise import depthwise_conv
from gram_jax.models import layers
from gram_jax.singlepath.space import Macro, SearchLayer


@jax.custom_vjp
def indicator(x: jax.Array) -> jax.Array:
  """``1[x >= 0]`` forward; ``sigmoid'(x)`` backward [SP: superkernel.py]."""
  x = jnp.asarray(x)
  return (x >= 0).astype(x.dtype)


def _indicator_fwd(x):
  return indicator(x), x


def _indicator_bwd(x, g):
  s = jax.nn.sigmoid(x)
  return (g * s * (1.0 - s),)


indicator.defvjp(_indicator_fwd, _indicator_bwd)


def indicator_dropout(
    d: jax.Array, key: Optional[jax.Array], keep, rescale: bool = True
) -> jax.Array:
  """Drops an indicator with probability ``1 - keep`` (identity at keep=1).

  ``rescale`` multiplies kept values by ``1 / keep`` as TF1's dropout in the
  official code (values in {0, 1/keep}); False keeps them in {0, 1}.
  """
  if key is None:
    return d
  keep = jnp.asarray(keep, d.dtype)
  kept = jax.random.bernoulli(key, keep, d.shape).astype(d.dtype)
  return d * kept / keep if rescale else d * kept


# Conv init of the official code: N(0, sqrt(2 / fan_out)), fan_out = kh * kw
# * out_channels, where a depthwise kernel's out_channels is its depth
# multiplier 1 [SP: singlepath_supernet.py conv_kernel_initializer].
def conv_init(key, shape, dtype=jnp.float32):
  kh, kw, _, cout = shape
  return jax.random.normal(key, shape, dtype) * np.sqrt(2.0 / (kh * kw * cout))


def depthwise_init(key, shape, dtype=jnp.float32):
  kh, kw = shape[:2]
  return jax.random.normal(key, shape, dtype) * np.sqrt(2.0 / (kh * kw))


def dense_init(key, shape, dtype=jnp.float32):
  limit = 1.0 / np.sqrt(shape[1])
  return jax.random.uniform(key, shape, dtype, -limit, limit)


class ConvBN(layers.ConvBN):
  """`gram_jax.models.layers.ConvBN` with the Single-Path backbone's
  defaults: ReLU, He-normal kernel (`conv_init`), BN momentum 0.99 and
  epsilon 1e-3. ``activation="none"`` for the linear projections."""

  activation: str = "relu"
  kernel_init: Callable = conv_init


def kernel_masks(channels: int) -> Tuple[np.ndarray, ...]:
  """``(M3, M5, C50, C100)`` as float32 arrays broadcastable to the kernel."""
  m3 = np.zeros((5, 5, 1, 1), np.float32)
  m3[1:4, 1:4] = 1.0
  c50 = int(round(channels / 2.0))
  cmask = np.zeros((1, 1, 1, channels), np.float32)
  cmask[..., :c50] = 1.0
  return m3, 1.0 - m3, cmask, 1.0 - cmask


def superkernel_decisions(
    w: jax.Array,
    t_k5,
    t_e3,
    t_e6,
    *,
    can_skip: bool,
    key: Optional[jax.Array] = None,
    keep=1.0,
    rescale: bool = True,
    squared_norm: bool = False,
) -> Tuple[jax.Array, jax.Array]:
  """The masked kernel and the decisions ``[d_k, d_e3, d_e6]`` of one layer.

  Args:
    w: the superkernel ``f32[5, 5, 1, C]``.
    t_k5, t_e3, t_e6: the thresholds (scalars).
    can_skip: whether ``d_e3`` is searched (else the constant 1).
    key: PRNG key of the indicator dropout (None: no dropout).
    keep: keep probability of the dropout.
    rescale: dropout rescales kept indicators by ``1 / keep``.
    squared_norm: compare squared norms (a variant; the code uses norms).

  Returns:
    ``(W_final, d)`` with ``d: f32[3]``.
  """
  m3, m5, c50, c100 = (jnp.asarray(m) for m in kernel_masks(w.shape[-1]))

  def norm(v):
    sq = jnp.sum(jnp.square(v))
    # sqrt has an infinite gradient at 0; a fully masked part never
    # reaches 0 in practice, the guard only keeps gradients finite.
    return sq if squared_norm else jnp.sqrt(jnp.maximum(sq, 1e-30))

  keys = [None] * 3 if key is None else list(jax.random.split(key, 3))
  d_k = indicator_dropout(
      indicator(norm(w * m5) - t_k5), keys[0], keep, rescale
  )
  w1 = w * m3 + d_k * (w * m5)
  w50, w100 = w1 * c50, w1 * c100
  d_e6 = indicator_dropout(indicator(norm(w100) - t_e6), keys[2], keep, rescale)
  if can_skip:
    d_e3 = indicator_dropout(
        indicator(norm(w50) - t_e3), keys[1], keep, rescale
    )
  else:
    d_e3 = jnp.ones((), w.dtype)
  return d_e3 * (w50 + d_e6 * w100), jnp.stack([d_k, d_e3, d_e6])


class SuperMBConv(nn.Module):
  """A searchable MBConv layer: expand 1x1 (6x) -> superkernel -> project.

  Returns ``(y, d)`` with the decisions ``d = [d_k, d_e3, d_e6]``.
  """

  layer: SearchLayer
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  exact_masks: bool = False
  rescale_dropout: bool = True
  squared_norm: bool = False

  @nn.compact
  def __call__(self, x, *, train: bool, key=None, keep=1.0):
    ly = self.layer
    c = 6 * ly.cin
    bn = dict(bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon)
    w = self.param("depthwise_kernel", depthwise_init, (5, 5, 1, c))
    t = [
        self.param(n, nn.initializers.zeros, ())
        for n in ("t_k5", "t_e3", "t_e6")
    ]
    kernel, d = superkernel_decisions(
        w,
        *t,
        can_skip=ly.can_skip,
        key=key,
        keep=keep,
        rescale=self.rescale_dropout,
        squared_norm=self.squared_norm,
    )
    y = ConvBN(c, name="expand", **bn)(x, train=train)
    y = depthwise_conv(y, kernel, ly.stride)  # shifted sums on XLA:CPU
    y = nn.BatchNorm(
        use_running_average=not train,
        momentum=self.bn_momentum,
        epsilon=self.bn_epsilon,
        name="depthwise_bn",
    )(y)
    y = jax.nn.relu(y)
    if self.exact_masks:
      _, _, c50, c100 = (jnp.asarray(m[0, 0]) for m in kernel_masks(c))
      y = y * (d[1] * (c50 + d[2] * c100))
    y = ConvBN(ly.cout, activation="none", name="project", **bn)(y, train=train)
    if self.exact_masks and ly.can_skip:
      y = d[1] * y
    return (x + y if ly.residual else y), d


class MBConv(nn.Module):
  """A plain MBConv block (fixed blocks, and the decoded network's)."""

  cout: int
  kernel: int
  expansion: int
  stride: int
  residual: bool
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3

  @nn.compact
  def __call__(self, x, *, train: bool):
    bn = dict(bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon)
    c = x.shape[-1] * self.expansion
    y = x
    if self.expansion != 1:
      y = ConvBN(c, name="expand", **bn)(y, train=train)
    # One group per channel: the kernel is [k, k, 1, C], the superkernel's
    # layout.
    y = layers.DepthwiseConv(
        self.kernel, self.stride, kernel_init=depthwise_init, name="depthwise"
    )(y)
    y = nn.BatchNorm(
        use_running_average=not train,
        momentum=self.bn_momentum,
        epsilon=self.bn_epsilon,
        name="depthwise_bn",
    )(y)
    y = jax.nn.relu(y)
    y = ConvBN(self.cout, activation="none", name="project", **bn)(
        y, train=train
    )
    return x + y if self.residual else y


def head(
    x, *, num_classes: int, channels: int, dropout: float, train: bool, bn: dict
):
  """1x1 conv -> BN -> ReLU -> global average pool -> dropout -> dense."""
  x = ConvBN(channels, name="head_conv", **bn)(x, train=train)
  x = jnp.mean(x, axis=(1, 2))
  if dropout > 0:
    x = nn.Dropout(dropout, deterministic=not train, name="dropout")(x)
  return nn.Dense(num_classes, kernel_init=dense_init, name="classifier")(x)


class SinglePathSuperNet(nn.Module):
  """The supernet: stem, fixed block, superkernel layers, fixed block, head.

  Call with ``x: f32[B, H, W, C]``, ``train``, and for the warm-up an
  indicator dropout ``key`` and ``keep`` probability (a traced scalar: one
  compiled program for the warm-up and after). Returns ``(logits,
  decisions: f32[L, 3])`` with per searchable layer ``[d_k, d_e3, d_e6]``.
  With ``train=True`` and ``macro.dropout > 0`` it needs a ``"dropout"``
  rng.

  Examples:
    >>> from gram_jax.singlepath.space import Macro
    >>> macro = Macro(stem_channels=8, stem_stride=1, first_channels=8,
    ...               stages=("16x2/2",), last_channels=16, head_channels=32,
    ...               dropout=0.0)
    >>> net = SinglePathSuperNet(macro, num_classes=10)
    >>> v = net.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
    >>> logits, d = net.apply(v, jnp.zeros((2, 8, 8, 1)))
    >>> logits.shape, d.shape
    ((2, 10), (2, 3))
  """

  macro: Macro
  num_classes: int
  exact_masks: bool = False
  rescale_dropout: bool = True
  squared_norm: bool = False

  @nn.compact
  def __call__(self, x, *, train: bool = False, key=None, keep=1.0):
    m = self.macro
    bn = dict(bn_momentum=m.bn_momentum, bn_epsilon=m.bn_epsilon)
    x = ConvBN(m.stem, 3, m.stem_stride, name="stem", **bn)(x, train=train)
    b = m.first_block()
    x = MBConv(
        b.cout, b.kernel, b.expansion, b.stride, False, name="block0", **bn
    )(x, train=train)
    decisions = []
    for ly in m.layers():
      k = None if key is None else jax.random.fold_in(key, ly.index)
      x, d = SuperMBConv(
          ly,
          exact_masks=self.exact_masks,
          rescale_dropout=self.rescale_dropout,
          squared_norm=self.squared_norm,
          name=f"layer{ly.index + 1}",
          **bn,
      )(x, train=train, key=k, keep=keep)
      decisions.append(d)
    b = m.last_block()
    x = MBConv(
        b.cout, b.kernel, b.expansion, b.stride, False, name="last_block", **bn
    )(x, train=train)
    logits = head(
        x,
        num_classes=self.num_classes,
        channels=m.head_channels,
        dropout=m.dropout,
        train=train,
        bn=bn,
    )
    return logits, jnp.stack(decisions)


def thresholds(params) -> np.ndarray:
  """``f32[L, 3]`` thresholds ``[t_k5, t_e3, t_e6]`` per searchable layer."""
  rows = []
  i = 1
  while f"layer{i}" in params:
    p = params[f"layer{i}"]
    rows.append([float(p["t_k5"]), float(p["t_e3"]), float(p["t_e6"])])
    i += 1
  return np.asarray(rows, np.float32)


def hard_decisions(
    params, macro: Macro, *, squared_norm: bool = False
) -> jax.Array:
  """The raw (no dropout) decisions ``bool[L, 3]`` of the current weights;
  jittable."""
  out = []
  for ly in macro.layers():
    p = params[f"layer{ly.index + 1}"]
    _, d = superkernel_decisions(
        p["depthwise_kernel"],
        p["t_k5"],
        p["t_e3"],
        p["t_e6"],
        can_skip=ly.can_skip,
        squared_norm=squared_norm,
    )
    out.append(d > 0.5)
  return jnp.stack(out) if out else jnp.zeros((0, 3), bool)


def describe(decisions: Sequence[Sequence[float]]) -> list:
  """Per layer ``"k5e6" | ... | "skip"`` from ``[d_k, d_e3, d_e6]`` rows."""
  out = []
  for d_k, d_e3, d_e6 in np.asarray(decisions, np.float32):
    if d_e3 <= 0.5:
      out.append("skip")
    else:
      out.append(f"k{5 if d_k > 0.5 else 3}e{6 if d_e6 > 0.5 else 3}")
  return out
