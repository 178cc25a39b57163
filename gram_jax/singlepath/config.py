"""Typed, validated settings of a Single-Path NAS search.

Experiment configs (``experiments/configs/singlepath_*.py``) return an
`ml_collections.ConfigDict`; `resolve` turns it (plus ``--config.x=y``
overrides) into frozen dataclasses, each field checked, every problem one
`ConfigError` line naming the field. The plumbing (file loading, overrides,
type checks) is the config layer, `gram_jax.config`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

from gram_jax import config as base
from gram_jax import data as data_lib
from gram_jax.config import ConfigError, in_range, one_of
from gram_jax.singlepath.space import IMAGENET_STAGES, Macro, SpaceError

OPTIMIZERS = ("rmsprop", "adam", "sgd")


@dataclasses.dataclass(frozen=True)
class MacroSettings:
  """Fields of `gram_jax.singlepath.space.Macro` (see there)."""

  width: float = 1.0
  stem_channels: int = 32
  stem_stride: int = 2
  first_channels: int = 16
  stages: tuple = IMAGENET_STAGES
  last_channels: int = 320
  head_channels: int = 1280
  dropout: float = 0.2
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3

  def build(self) -> Macro:
    try:
      return Macro(**dataclasses.asdict(self))
    except SpaceError as e:
      raise ConfigError(f"config.macro.{e}") from None


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
  """The runtime model and its schedule.

  table: "pixel1" (published, ImageNet backbone only), "macs" (analytic
    proxy) or the path of a table JSON (gram-jax single-path table).
  runtime_lambda: lambda of ``lambda * scale * ln(R)`` after the warm-up
    (paper: 0.02 with scale 1000 for the 79 ms model).
  scale: the multiplier of the official code's ``1e3 * ln(R)``.
  warmup_epochs: epochs with lambda = 0 and indicator dropout (paper: 5;
    the step count is ``int(warmup_epochs * steps_per_epoch)``).
  indicator_keep: keep probability of indicator dropout in the warm-up.
  rescale_dropout: kept indicators become 1/keep (TF1 dropout, the code).
  exact_masks: deviation: masked channels are zero after BN/ReLU and a
    skipped layer is the identity (the code leaves ReLU(beta)).
  squared_norm: compare squared kernel norms with the thresholds.
  """

  table: str = "pixel1"
  runtime_lambda: float = 0.02
  scale: float = 1000.0
  warmup_epochs: float = 5.0
  indicator_keep: float = 0.6
  rescale_dropout: bool = True
  exact_masks: bool = False
  squared_norm: bool = False
  _checks = {
      "runtime_lambda": in_range(0.0),
      "scale": in_range(0.0, lo_open=True),
      "warmup_epochs": in_range(0.0),
      "indicator_keep": in_range(0.0, 1.0, lo_open=True),
  }


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  """Search training (ALGORITHMS.md 3.4; defaults: the paper's ImageNet)."""

  epochs: int = 8
  batch_size: int = 1024
  learning_rate: float = 0.064  # 0.016 * 1024 / 256
  optimizer: str = "rmsprop"
  rms_decay: float = 0.9
  momentum: float = 0.9
  epsilon: float = 1e-3
  lr_decay: float = 0.97  # staircase, every lr_decay_epochs
  lr_decay_epochs: float = 2.4
  weight_decay: float = 1e-5  # * 1/2 sum w^2 over non-BN variables
  label_smoothing: float = 0.1
  # Deviation for small runs (1 = the paper): the thresholds' learning rate
  # is learning_rate * threshold_lr_scale. At init a kernel norm is far from
  # its threshold (sigmoid' is tiny there), so a few hundred steps need it.
  threshold_lr_scale: float = 1.0
  _checks = {
      "epochs": in_range(1),
      "batch_size": in_range(1),
      "learning_rate": in_range(0.0, lo_open=True),
      "optimizer": one_of(OPTIMIZERS),
      "rms_decay": in_range(0.0, 1.0, hi_open=True),
      "momentum": in_range(0.0, 1.0, hi_open=True),
      "epsilon": in_range(0.0, lo_open=True),
      "lr_decay": in_range(0.0, 1.0, lo_open=True),
      "lr_decay_epochs": in_range(0.0, lo_open=True),
      "weight_decay": in_range(0.0),
      "label_smoothing": in_range(0.0, 1.0, hi_open=True),
      "threshold_lr_scale": in_range(0.0, lo_open=True),
  }


@dataclasses.dataclass(frozen=True)
class SinglePathConfig:
  """Everything a `gram-jax single-path` run needs.

  dataset: a `gram_jax.data` name; held in memory unless ``streaming``.
  image_size: resize images to this size (0: native size).
  max_examples: read at most this many train and test examples (0: all).
  streaming: read the training split with `data.tfds_pipeline` each epoch
    (ImageNet); then ``num_train_examples`` sets the epoch length.
  eval_examples: test examples evaluated after every epoch (0: all).
  replicate_encoder_bug: decode with the official code's expansion mapping
    (3x3-6 -> e3, 5x5-3 -> e6) instead of the correct one.
  checkpoint_every: also checkpoint every this many steps (0: at the end of
    each epoch only).
  """

  seed: int = 0
  dataset: str = "digits"
  data_dir: str = ""
  image_size: int = 0
  max_examples: int = 0
  streaming: bool = False
  num_train_examples: int = 0
  eval_examples: int = 0
  eval_batch_size: int = 256
  macro: MacroSettings = MacroSettings()
  runtime: RuntimeSettings = RuntimeSettings()
  train: TrainSettings = TrainSettings()
  replicate_encoder_bug: bool = False
  checkpoint_every: int = 0
  keep_checkpoints: int = 3
  _checks = {
      "dataset": one_of(data_lib.DATASETS),
      "image_size": in_range(0),
      "max_examples": in_range(0),
      "num_train_examples": in_range(0),
      "eval_examples": in_range(0),
      "eval_batch_size": in_range(1),
      "checkpoint_every": in_range(0),
      "keep_checkpoints": in_range(1),
  }

  @classmethod
  def from_dict(cls, d: Dict[str, Any]) -> "SinglePathConfig":
    cfg = base.build(cls, d, "config")
    cfg.macro.build()
    if cfg.streaming and cfg.dataset == "digits":
      raise ConfigError(
          "config.streaming: true is not allowed with "
          "dataset digits; allowed: false"
      )
    if cfg.streaming and not cfg.num_train_examples:
      raise ConfigError(
          "config.num_train_examples: 0 is not allowed with "
          "streaming; allowed: the training split size, e.g. "
          "1281167 for imagenet2012"
      )
    return cfg

  def to_dict(self) -> Dict[str, Any]:
    return base.to_dict(self)


def resolve(path: Optional[str], overrides: List[str]) -> SinglePathConfig:
  """Config file + ``--config.a.b=v`` overrides -> `SinglePathConfig`."""
  if path:
    raw = base.load_config_file(path)
    d = raw.to_dict() if hasattr(raw, "to_dict") else dict(raw)
  else:
    d = SinglePathConfig().to_dict()
  d = base.plain(d)
  return SinglePathConfig.from_dict(base.apply_overrides(d, overrides))
