"""Typed, validated settings of a GRAM search.

Experiment configs are Python files returning an `ml_collections.ConfigDict`
(DESIGN.md decision 11). They stop here: `SearchConfig.from_dict` turns one
into frozen dataclasses, checking every field, and the library takes those.
Every problem is one `ConfigError` line naming the field and what is allowed.
The plumbing (field checks, config files, ``--config.x=y`` overrides) is the
config layer, `gram_jax.config`; its names are re-exported here.
"""

import dataclasses
import os
from typing import Any, Dict, List, Optional

from gram_jax import data as data_lib
from gram_jax import metagraph as mg
from gram_jax import train as train_lib
from gram_jax.config import (
    ConfigError,
    apply_overrides,
    build,
    check_fields,
    diff,
    in_range,
    load_config_file,
    load_overridden,
    merge_defaults,
    one_of,
    plain,
    to_dict,
)
from gram_jax.search import rewards
from gram_jax.space import SearchSpace

__all__ = [
    "ConfigError",
    "FinalSettings",
    "GramSettings",
    "ProxySettings",
    "SearchConfig",
    "TrainSettings",
    "apply_overrides",
    "build",
    "check_fields",
    "diff",
    "in_range",
    "load_config_file",
    "load_overridden",
    "merge_defaults",
    "one_of",
    "plain",
    "resolve",
    "to_dict",
]


@dataclasses.dataclass(frozen=True)
class ProxySettings:
  num_train: int = 500
  num_val: int = 400
  per_class: bool = False
  _checks = {"num_train": in_range(1), "num_val": in_range(1)}


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  epochs: int = 10
  batch_size: int = 50
  learning_rate: float = 4e-3
  optimizer: str = "adam"
  select: str = "last"
  schedule: str = "constant"  # learning rate over a candidate's training
  _checks = {
      "epochs": in_range(1),
      "batch_size": in_range(1),
      "schedule": one_of(train_lib.PROXY_SCHEDULES),
      "learning_rate": in_range(0, lo_open=True),
      "optimizer": one_of(train_lib.OPTIMIZERS),
      "select": one_of(("last", "best")),
  }


@dataclasses.dataclass(frozen=True)
class GramSettings:
  iterations: int = 1000
  strategy: str = "gram"
  alpha: float = 0.9
  beta0: float = 0.4
  beta_momentum: float = 0.9
  gamma: float = 0.1
  cost: str = "macs"
  normalization: str = "bernoulli"
  init_weight: float = 0.5
  prune_level: float = 0.5
  prune_mode: str = "threshold"
  lut_path: str = ""  # latency table for cost = "lut"
  latency_threads: int = 1  # LiteRT threads for cost = "measured"
  latency_runs: int = 30  # timed runs per candidate ("measured")
  # Scale (DESIGN.md decision 10, docs/scale.md). `num_seeds` searches with
  # seeds seed, seed+1, ... run as one program and share the proxy split and
  # node ops drawn from `shared_seed` (-1: from `seed`);
  # `candidates_per_iteration` candidates are sampled from the same weights
  # and trained together each iteration; `batch_candidates` says how
  # ("vmap": one vmapped program, sharded over `devices` devices, 0 = all;
  # "loop": one after another; "threads": the loop's programs from one
  # thread per CPU core; "auto": threads on the CPU, vmap elsewhere or when
  # devices != 1, `scale.batched.resolve_mode`).
  num_seeds: int = 1
  shared_seed: int = -1
  candidates_per_iteration: int = 1
  batch_candidates: str = "loop"
  devices: int = 1
  _checks = {
      "latency_threads": in_range(1),
      "latency_runs": in_range(1),
      "num_seeds": in_range(1),
      "shared_seed": in_range(-1),
      "candidates_per_iteration": in_range(1),
      "batch_candidates": one_of(("loop", "vmap", "threads", "auto")),
      "devices": in_range(0),
      "iterations": in_range(1),
      "strategy": one_of(("gram", "random")),
      "alpha": in_range(0),
      "beta0": in_range(),
      "gamma": in_range(0),
      "beta_momentum": in_range(0, 1, hi_open=True),
      "cost": one_of(rewards.COSTS),
      "normalization": one_of(mg.NORMALIZATIONS),
      "init_weight": in_range(0, 1, lo_open=True),
      "prune_level": in_range(0, 1),
      "prune_mode": one_of(mg.PRUNE_MODES),
  }


@dataclasses.dataclass(frozen=True)
class FinalSettings:
  epochs: int = 40
  batch_size: int = 64
  learning_rate: float = 4e-3
  optimizer: str = "adam"
  _checks = {
      "epochs": in_range(1),
      "batch_size": in_range(1),
      "learning_rate": in_range(0, lo_open=True),
      "optimizer": one_of(train_lib.OPTIMIZERS),
  }


@dataclasses.dataclass(frozen=True)
class SearchConfig:
  """Everything a GRAM search run depends on."""

  seed: int = 0
  dataset: str = "digits"
  data_dir: str = ""
  space: SearchSpace = SearchSpace()
  proxy: ProxySettings = ProxySettings()
  train: TrainSettings = TrainSettings()
  search: GramSettings = GramSettings()
  checkpoint_every: int = 10
  keep_checkpoints: int = 3
  final: FinalSettings = FinalSettings()
  _checks = {
      "seed": in_range(0),
      "dataset": one_of(data_lib.DATASETS),
      "checkpoint_every": in_range(1),
      "keep_checkpoints": in_range(1),
  }

  @classmethod
  def from_dict(cls, d: Dict[str, Any]) -> "SearchConfig":
    config = build(cls, d, "config")
    s = config.search
    if s.cost == "lut" and not os.path.isfile(s.lut_path):
      raise ConfigError(
          f"config.search.lut_path: {s.lut_path!r} is not a file; cost=lut "
          "needs a latency table (build one with `gram-jax lut build`)"
      )
    if s.batch_candidates in ("loop", "threads") and s.devices != 1:
      raise ConfigError(
          f"config.search.devices: {s.devices} is not allowed with "
          f"batch_candidates={s.batch_candidates!r}; allowed: 1 (or "
          "batch_candidates='vmap')"
      )
    return config

  def to_dict(self) -> Dict[str, Any]:
    return to_dict(self)


def resolve(path: Optional[str], overrides: List[str]) -> SearchConfig:
  """Config file + overrides -> validated `SearchConfig`."""
  if path:
    raw = load_config_file(path)
    d = raw.to_dict() if hasattr(raw, "to_dict") else dict(raw)
    # Fields a config file leaves out take their defaults (and can then be
    # overridden), so older config files gain newer fields.
    d = merge_defaults(SearchConfig().to_dict(), plain(d))
  else:
    d = SearchConfig().to_dict()
  d = plain(d)
  return SearchConfig.from_dict(apply_overrides(d, overrides))
