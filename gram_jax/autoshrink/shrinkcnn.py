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
  net = shrinkcnn.shrinkcnn(cfg)                            # ExactNet
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
PAPER = {"A": {"top1": 73.9, "macs_m": 384, "params_m": 3.6, "act": "relu"},
         "B": {"top1": 75.1, "macs_m": 384, "params_m": 3.6, "act": "swish"}}


def released_mask() -> np.ndarray:
  mask = np.zeros((5, 5), bool)
  for i, j in RELEASED_EDGES:
    mask[i, j] = True
  return mask


def imagenet_config(ops: Optional[Sequence[int]] = None, *,
                    activation: str = "relu", num_classes: int = 1001,
                    channel_scale: float = 1.4,
                    scales: Sequence[float] = (0.5, 1, 2, 4, 8),
                    replicate: Sequence[int] = (1, 3, 4, 6, 4),
                    pools: Sequence[int] = (1, 2, 2, 2, 2),
                    head_channels: int = 1280,
                    dropout: float = 0.0) -> cnn.NetConfig:
  """The ShrinkCNN ImageNet network for a cell's node ops (default: the
  released cell's). BN momentum 0.999, epsilon 1e-3 (ALGORITHMS.md 2.4)."""
  return cnn.NetConfig(
      ops=tuple(RELEASED_OPS if ops is None else ops), base_filters=16,
      scales=tuple(float(s) for s in scales), pools=tuple(pools),
      replicate=tuple(replicate), channel_scale=channel_scale,
      stem_channels=32, stem_stride=2, head_channels=head_channels,
      activation=activation, use_residual=True, num_classes=num_classes,
      dropout=dropout, bn_momentum=0.999, bn_epsilon=1e-3)


def shrinkcnn(cfg: Optional[cnn.NetConfig] = None,
              mask: Optional[np.ndarray] = None) -> cnn.ExactNet:
  """The exact Flax module of ShrinkCNN (default: the released cell, A)."""
  cfg = imagenet_config() if cfg is None else cfg
  mask = released_mask() if mask is None else mask
  return cnn.ExactNet(cfg, cnn.static_mask(mask))


def cost(cfg: Optional[cnn.NetConfig] = None,
         mask: Optional[np.ndarray] = None,
         image_size: int = 224) -> cnn.Cost:
  """Analytic MACs and parameters (official counters, BN excluded)."""
  cfg = imagenet_config() if cfg is None else cfg
  mask = released_mask() if mask is None else mask
  return cnn.count(cfg, mask, (image_size, image_size, 3))
