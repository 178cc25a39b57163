"""ShrinkCNN: a searched cell stacked into an ImageNet network.

The official build command (ALGORITHMS.md 2.3; [AS: evaluation/cnn/README.md,
build_imagenet.py, metagraph.py `create_eval_graph`]) is

  --scale 0.5 1 2 4 8 --channel_scale 1.4 --replicate 1 3 4 6 4
  --pool_size 1 2 2 2 2 --use_residual --image_size 224

so node widths are 12, 24, 44, 88, 180 per stage, the stem is a 3x3/2 conv
with ``4 round(32 * 1.4 / 4) = 44`` channels, and the head is a 1x1 conv to
1280 channels (not scaled), GAP, dropout 0 and a 1001-way dense layer.
ShrinkCNN-A uses ReLU, ShrinkCNN-B swish; leaves, projections and the
residual add stay linear. The released cell (both models) builds to 383.7M
MACs and 3.60M parameters at 224 (the official counters, BN excluded).

  from gram_jax.autoshrink import shrinkcnn
  cfg = shrinkcnn.imagenet_config(activation="swish")     # ShrinkCNN-B
  net = shrinkcnn.shrinkcnn(cfg)                            # ExactCellNet
  shrinkcnn.cost(cfg)                                       # Cost(macs, params)
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from gram_jax.autoshrink import cnn

# The released cell [AS: evaluation/cnn/shrinkCNN-{A,B}-release-repro.prototxt]
# with its nodes renamed 0..4: 1, 2 = sep3x3 on the input; 3 = sep3x3 on
# concat(0, 1); 4 = conv1x1 on concat(0, 2); leaves 3, 4.
RELEASED_EDGES = ((0, 1), (0, 2), (0, 3), (1, 3), (0, 4), (2, 4))
RELEASED_OPS = (cnn.SEP3X3, cnn.SEP3X3, cnn.SEP3X3, cnn.SEP3X3, cnn.CONV1X1)

# Published figures (README / ALGORITHMS.md 2.6).
PAPER = {
    "A": {"top1": 73.9, "macs_m": 384, "params_m": 3.6, "act": "relu"},
    "B": {"top1": 75.1, "macs_m": 384, "params_m": 3.6, "act": "swish"},
}


def released_mask() -> np.ndarray:
  mask = np.zeros((5, 5), bool)
  for i, j in RELEASED_EDGES:
    mask[i, j] = True
  return mask


def imagenet_config(
    ops: Optional[Sequence[int]] = None,
    *,
    activation: str = "relu",
    num_classes: int = 1001,
    channel_scale: float = 1.4,
    scales: Sequence[float] = (0.5, 1, 2, 4, 8),
    replicate: Sequence[int] = (1, 3, 4, 6, 4),
    pools: Sequence[int] = (1, 2, 2, 2, 2),
    head_channels: int = 1280,
    dropout: float = 0.0,
) -> cnn.NetConfig:
  """The ShrinkCNN ImageNet network for a cell's node ops (default: the
  released cell's). BN momentum 0.999, epsilon 1e-3 (ALGORITHMS.md 2.4)."""
  return cnn.NetConfig(
      ops=tuple(RELEASED_OPS if ops is None else ops),
      base_filters=16,
      scales=tuple(float(s) for s in scales),
      pools=tuple(pools),
      replicate=tuple(replicate),
      channel_scale=channel_scale,
      stem_channels=32,
      stem_stride=2,
      head_channels=head_channels,
      activation=activation,
      use_residual=True,
      num_classes=num_classes,
      dropout=dropout,
      bn_momentum=0.999,
      bn_epsilon=1e-3,
  )


def shrinkcnn(
    cfg: Optional[cnn.NetConfig] = None, mask: Optional[np.ndarray] = None
) -> cnn.ExactCellNet:
  """The exact Flax module of ShrinkCNN (default: the released cell, A)."""
  cfg = imagenet_config() if cfg is None else cfg
  mask = released_mask() if mask is None else mask
  return cnn.ExactCellNet(cfg, cnn.static_mask(mask))


def cost(
    cfg: Optional[cnn.NetConfig] = None,
    mask: Optional[np.ndarray] = None,
    image_size: int = 224,
) -> cnn.Cost:
  """Analytic MACs and parameters (official counters, BN excluded)."""
  cfg = imagenet_config() if cfg is None else cfg
  mask = released_mask() if mask is None else mask
  return cnn.count(cfg, mask, (image_size, image_size, 3))


# --- the ImageNet training recipe (ALGORITHMS.md 2.4) -------------------------------


def learning_rate(
    epoch: int, *, base: float = 0.1, warmup_epochs: int = 10, epochs: int = 300
) -> float:
  """The official per-EPOCH schedule (1-based epoch index, constant within
  an epoch): linear warm-up ``base e / warmup`` for e < warmup, then cosine
  ``0.5 base (1 + cos(pi (e - warmup) / (epochs - warmup))`` up to `epochs`,
  0 after. `base` is the solver's 0.05 times the official 2 GPUs."""
  e = int(epoch)
  if e < warmup_epochs:
    return base * e / warmup_epochs
  if e > epochs:
    return 0.0
  return (
      0.5
      * base
      * (1.0 + np.cos(np.pi * (e - warmup_epochs) / (epochs - warmup_epochs)))
  )


def schedule(steps_per_epoch: int, **kwargs):
  """`learning_rate` as an optax schedule of the step (jittable)."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  epochs = kwargs.get("epochs", 300)
  table = jnp.asarray(
      [learning_rate(e, **kwargs) for e in range(1, epochs + 2)], jnp.float32
  )

  def fn(step):
    e = jnp.minimum(step // steps_per_epoch, epochs)  # 0-based epoch
    return table[e]

  return fn


def optimizer(
    steps_per_epoch: int,
    *,
    base: float = 0.1,
    warmup_epochs: int = 10,
    epochs: int = 300,
):
  """TF RMSProp (decay 0.9, momentum 0.9, eps 1.0) on `schedule`. The
  Keras-style L2 (4e-5, no depthwise, no BN) is a loss term
  (`cnn_search.l2_penalty`); evaluate with an EMA (0.999) of the weights."""
  from gram_jax import train as train_lib  # pylint: disable=import-outside-toplevel

  return train_lib.make_optimizer(
      "rmsprop",
      schedule(
          steps_per_epoch, base=base, warmup_epochs=warmup_epochs, epochs=epochs
      ),
  )
