"""Host latency and outputs of a .tflite model with the LiteRT interpreter.

`measure_tflite` times ``Interpreter.invoke()`` on random input (after
warm-up runs) and returns JSON-ready statistics together with the machine
and library versions they were measured with: a latency is only meaningful
next to where it was measured. `run_tflite` computes outputs, quantising
int8 inputs and dequantising int8 outputs, for accuracy checks.

The interpreter is ``ai_edge_litert.interpreter.Interpreter`` with its
default op resolver, which applies the XNNPACK delegate to float models.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import time
from typing import Any, Callable, Dict, Optional, Union

import numpy as np

from gram_jax.errors import GramJaxError

Model = Union[bytes, bytearray, str, os.PathLike]


class LatencyError(GramJaxError):
  """A model cannot be loaded or timed as requested."""


def measure_tflite(
    model: Model,
    *,
    threads: int = 1,
    runs: int = 50,
    warmup: int = 10,
    seed: int = 0,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> Dict[str, Any]:
  """Times a TFLite model on this machine.

  Args:
    model: the model as bytes, or the path of a ``.tflite`` file.
    threads: interpreter threads.
    runs: timed ``invoke()`` calls.
    warmup: untimed calls before them.
    seed: seed of the random input (normal for float inputs, uniform over
      the integer range for quantised ones).
    clock: nanosecond clock (injectable for tests).

  Returns:
    A JSON-ready dict: ``median_ms``, ``p90_ms``, ``mean_ms``, ``std_ms``
    (population), ``min_ms``, ``max_ms``, ``runs``, ``warmup``,
    ``threads``, ``input`` (shape, dtype), ``model`` (path, bytes,
    sha256), ``machine`` and ``versions`` (see `environment`).

  Raises:
    LatencyError: bad arguments, or a file that is not a loadable model.

  Examples:
    >>> stats = measure_tflite("model.tflite", threads=2)  # doctest: +SKIP
    >>> stats["median_ms"]  # doctest: +SKIP
  """
  threads = _check_int(threads, "threads", 1)
  runs = _check_int(runs, "runs", 1)
  warmup = _check_int(warmup, "warmup", 0)
  content, path = _read_model(model)
  interpreter = _interpreter(content, path, threads)
  detail = interpreter.get_input_details()[0]
  x = _random_input(detail, np.random.default_rng(seed))
  interpreter.set_tensor(detail["index"], x)
  for _ in range(warmup):
    interpreter.invoke()
  times = np.empty(runs, dtype=np.float64)
  for i in range(runs):
    start = clock()
    interpreter.invoke()
    times[i] = (clock() - start) / 1e6
  return {
      "median_ms": float(np.median(times)),
      "p90_ms": float(np.percentile(times, 90)),
      "mean_ms": float(times.mean()),
      "std_ms": float(times.std()),
      "min_ms": float(times.min()),
      "max_ms": float(times.max()),
      "runs": runs,
      "warmup": warmup,
      "threads": threads,
      "input": {
          "shape": [int(d) for d in detail["shape"]],
          "dtype": np.dtype(detail["dtype"]).name,
      },
      "model": {
          "path": path,
          "bytes": len(content),
          "sha256": hashlib.sha256(content).hexdigest(),
      },
      **environment(),
  }


def run_tflite(model: Model, x: np.ndarray, *, threads: int = 1) -> np.ndarray:
  """Outputs of a TFLite model on `x`, as float32.

  `x` is ``f32[N, ...]``; the model runs on batches of its own fixed batch
  size (the last one zero-padded). An int8/uint8 input is quantised with the
  model's scale and zero point, and an int8/uint8 output dequantised.

  Args:
    model: the model as bytes, or the path of a ``.tflite`` file.
    x: the inputs, batch first.
    threads: interpreter threads.

  Returns:
    ``f32[N, ...]``: the model's first output for every row of `x`.
  """
  content, path = _read_model(model)
  interpreter = _interpreter(content, path, _check_int(threads, "threads", 1))
  inp = interpreter.get_input_details()[0]
  out = interpreter.get_output_details()[0]
  x = np.asarray(x, dtype=np.float32)
  batch = int(inp["shape"][0])
  if x.ndim != len(inp["shape"]) or tuple(x.shape[1:]) != tuple(
      inp["shape"][1:]
  ):
    raise LatencyError(
        f"x: shape {x.shape} does not fit the model input "
        f"{tuple(int(d) for d in inp['shape'])} (any batch "
        "size)"
    )
  results = []
  for start in range(0, len(x), batch):
    chunk = x[start : start + batch]
    n = len(chunk)
    if n < batch:
      chunk = np.concatenate(
          [chunk, np.zeros((batch - n,) + chunk.shape[1:], np.float32)]
      )
    interpreter.set_tensor(inp["index"], _quantize(chunk, inp))
    interpreter.invoke()
    results.append(_dequantize(interpreter.get_tensor(out["index"]), out)[:n])
  return (
      np.concatenate(results)
      if results
      else np.zeros((0,) + tuple(out["shape"][1:]), np.float32)
  )


def environment() -> Dict[str, Any]:
  """The machine and library versions a measurement was taken with."""
  return {
      "machine": {
          "system": platform.system(),
          "machine": platform.machine(),
          "processor": platform.processor() or None,
          "cpu_model": _cpu_model(),
          "cpu_count": os.cpu_count(),
      },
      "versions": {
          "ai-edge-litert": _version("ai-edge-litert"),
          "tensorflow": _version("tensorflow") or _version("tensorflow-cpu"),
          "jax": _version("jax"),
      },
  }


# --- helpers ------------------------------------------------------------------


def _read_model(model: Model):
  if isinstance(model, (bytes, bytearray)):
    return bytes(model), None
  if not isinstance(model, (str, os.PathLike)):
    raise LatencyError(
        f"model: expected bytes or a .tflite path, got {type(model).__name__}"
    )
  path = os.fspath(model)
  try:
    with open(path, "rb") as f:
      return f.read(), path
  except OSError as e:
    raise LatencyError(f"{path}: cannot read ({e.strerror})") from None


def _interpreter(content: bytes, path: Optional[str], threads: int):
  from ai_edge_litert.interpreter import Interpreter

  where = path or "model"
  if content[4:8] != b"TFL3":
    raise LatencyError(
        f"{where}: not a TFLite model (no TFL3 identifier); "
        "export one with `gram-jax export`"
    )
  try:
    interpreter = Interpreter(model_content=content, num_threads=threads)
    interpreter.allocate_tensors()
  except (ValueError, RuntimeError) as e:
    msg = str(e).strip().splitlines()
    raise LatencyError(
        f"{where}: LiteRT cannot load it "
        f"({msg[0][:200] if msg else type(e).__name__})"
    ) from None
  return interpreter


def _random_input(detail, rng) -> np.ndarray:
  dtype = np.dtype(detail["dtype"])
  shape = tuple(int(d) for d in detail["shape"])
  if np.issubdtype(dtype, np.integer):
    info = np.iinfo(dtype)
    return rng.integers(
        info.min, info.max, size=shape, endpoint=True, dtype=dtype
    )
  return rng.standard_normal(shape).astype(dtype)


def _quantize(x: np.ndarray, detail) -> np.ndarray:
  dtype = np.dtype(detail["dtype"])
  if not np.issubdtype(dtype, np.integer):
    return x.astype(dtype)
  scale, zero_point = detail["quantization"]
  if not scale:
    raise LatencyError(
        f"model input {detail['name']!r} is {dtype.name} "
        "without a quantisation scale; cannot feed floats"
    )
  info = np.iinfo(dtype)
  q = np.round(x / scale + zero_point)
  return np.clip(q, info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail) -> np.ndarray:
  scale, zero_point = detail["quantization"]
  if np.issubdtype(y.dtype, np.integer) and scale:
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)
  return y.astype(np.float32)


def _cpu_model() -> Optional[str]:
  try:
    with open("/proc/cpuinfo") as f:
      text = f.read()
  except OSError:
    return None
  for key in ("model name", "Hardware", "Processor", "cpu model"):
    for line in text.splitlines():
      name, sep, value = line.partition(":")
      if sep and name.strip() == key and value.strip():
        return value.strip()
  return None


def _version(dist: str) -> Optional[str]:
  try:
    return importlib.metadata.version(dist)
  except importlib.metadata.PackageNotFoundError:
    return None


def _check_int(value, field: str, minimum: int) -> int:
  if (
      isinstance(value, bool)
      or not isinstance(value, (int, np.integer))
      or value < minimum
  ):
    raise LatencyError(
        f"{field}: {value!r} is not allowed; allowed: an integer >= {minimum}"
    )
  return int(value)
