"""Per-op latency lookup tables: build, predict (also jitted), validate.

A `LatencyTable` holds the measured latency of every layer an architecture
of a search space can contain, on one target (this host with LiteRT, or an
Android phone with TFLite's ``benchmark_model``) at one thread count
(DESIGN.md decision 5). The latency of a network is predicted as

  ``constant_ms + scale * sum over its layers of entry(layer)``

This module gathers the public names of the pieces, one module per concern
(each module's docstring says more):

  walk        `KINDS` of entries, `items` (the layers of an `ArchSpec` as a
              table sees them), `requirements` (the entries a space needs)
  table       `LatencyTable` (curves, `predict`, JSON), `interpolate`,
              `check_table`
  predictor   `jax_predictor`: the jittable masks -> ms of a search
  timing      `host_timer`, `android_timer`: models -> measured ms
  validation  `sample_specs`, `export_archs`, `summarize`, `validate`,
              `plot_validation`
  measure     `build` (one-layer models, the invoke constant, the
              calibration: `fit_calibration`)

``from gram_jax.cost import lut`` and ``lut.build(...)``, ``lut.LatencyTable``
and so on keep working as before the split.
"""

from gram_jax.cost.measure import CALIBRATION_SEED
from gram_jax.cost.measure import DEFAULT_CALIBRATE
from gram_jax.cost.measure import build
from gram_jax.cost.measure import constant_function
from gram_jax.cost.measure import fit_calibration
from gram_jax.cost.measure import layer_function
from gram_jax.cost.predictor import jax_predictor
from gram_jax.cost.table import FORMAT
from gram_jax.cost.table import TARGETS
from gram_jax.cost.table import VERSION
from gram_jax.cost.table import Curve
from gram_jax.cost.table import LatencyTable
from gram_jax.cost.table import check_table
from gram_jax.cost.table import interpolate
from gram_jax.cost.timing import DEFAULT_ROUNDS
from gram_jax.cost.timing import DEFAULT_RUNS
from gram_jax.cost.timing import DEFAULT_WARMUP
from gram_jax.cost.timing import Timer
from gram_jax.cost.timing import android_timer
from gram_jax.cost.timing import host_timer
from gram_jax.cost.validation import export_archs
from gram_jax.cost.validation import plot_validation
from gram_jax.cost.validation import sample_specs
from gram_jax.cost.validation import spearman
from gram_jax.cost.validation import summarize
from gram_jax.cost.validation import validate
from gram_jax.cost.walk import DEFAULT_MAX_POINTS
from gram_jax.cost.walk import KINDS
from gram_jax.cost.walk import Item
from gram_jax.cost.walk import Key
from gram_jax.cost.walk import LutError
from gram_jax.cost.walk import items
from gram_jax.cost.walk import requirements

__all__ = [
    "CALIBRATION_SEED",
    "DEFAULT_CALIBRATE",
    "DEFAULT_MAX_POINTS",
    "DEFAULT_ROUNDS",
    "DEFAULT_RUNS",
    "DEFAULT_WARMUP",
    "FORMAT",
    "KINDS",
    "TARGETS",
    "VERSION",
    "Curve",
    "Item",
    "Key",
    "LatencyTable",
    "LutError",
    "Timer",
    "android_timer",
    "build",
    "check_table",
    "constant_function",
    "export_archs",
    "fit_calibration",
    "host_timer",
    "interpolate",
    "items",
    "jax_predictor",
    "layer_function",
    "plot_validation",
    "requirements",
    "sample_specs",
    "spearman",
    "summarize",
    "validate",
]
