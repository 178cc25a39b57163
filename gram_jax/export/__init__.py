"""From a trained `ArchSpec` to a phone: TFLite export and latency.

Modules:
  tflite      `to_tflite`: jax2tf -> TFLiteConverter (float32 or int8),
              builtin ops only; `write_tflite`, `list_ops`.
  latency     `measure_tflite` / `run_tflite`: host timing and outputs with
              the LiteRT interpreter (``ai-edge-litert``).
  android     `benchmark_on_device`: TFLite's ``benchmark_model`` on an
              Android phone driven over ``adb``.

The ``gram-jax export`` and ``gram-jax latency`` commands are
`gram_jax.commands.export` and `gram_jax.commands.latency`.

This package is the only one that uses TensorFlow, and imports it inside
functions only: ``import gram_jax.export`` stays TensorFlow-free.
"""

from gram_jax.export.tflite import ExportError
from gram_jax.export.tflite import function_to_tflite
from gram_jax.export.tflite import list_ops
from gram_jax.export.tflite import to_tflite
from gram_jax.export.tflite import write_tflite
from gram_jax.export.latency import LatencyError
from gram_jax.export.latency import environment
from gram_jax.export.latency import measure_tflite
from gram_jax.export.latency import run_tflite

__all__ = [
    "ExportError",
    "function_to_tflite",
    "list_ops",
    "to_tflite",
    "write_tflite",
    "LatencyError",
    "environment",
    "measure_tflite",
    "run_tflite",
]
