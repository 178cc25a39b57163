"""Shared benchmark helpers: compilation counting and machine FLOP/s."""

from __future__ import annotations

import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

_COMPILES = {"count": 0, "seconds": 0.0}


def _listener(event, duration, **kwargs):
  del kwargs
  if event == "/jax/core/compile/backend_compile_duration":
    _COMPILES["count"] += 1
    _COMPILES["seconds"] += duration


jax.monitoring.register_event_duration_secs_listener(_listener)


def compilations():
  """(number of XLA backend compilations, seconds spent in them) so far."""
  return _COMPILES["count"], _COMPILES["seconds"]


def matmul_flops(n: int = 1024, repeats: int = 20) -> float:
  """Measured float32 matmul FLOP/s of the default device (best of runs)."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2.0 * n ** 3 / best


def machine() -> dict:
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  return {"cpu": cpu, "cores": os.cpu_count(),
          "device": str(jax.devices()[0].device_kind),
          "platform": jax.default_backend(), "jax": jax.__version__,
          "numpy": np.__version__}
