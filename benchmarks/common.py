"""Shared benchmark helpers: compilation counting and machine FLOP/s."""

from __future__ import annotations

import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

# The quickstart search config every benchmark defaults to.
QUICKSTART = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "experiments",
    "configs",
    "quickstart.py",
)

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
  return 2.0 * n**3 / best


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
  return {
      "cpu": cpu,
      "cores": os.cpu_count(),
      "device": str(jax.devices()[0].device_kind),
      "platform": jax.default_backend(),
      "jax": jax.__version__,
      "numpy": np.__version__,
  }


def candidates_rate(fn, graph, k: int, repeats: int) -> dict:
  """Times ``fn(masks[k], keys[k])`` on fresh samples of `graph`: the first
  call (compilation) apart, then `repeats` calls; candidates per second."""
  from gram_jax import metagraph as mg  # pylint: disable=import-outside-toplevel

  def call(i):
    keys = jax.random.split(jax.random.key(1000 + i), k)
    masks = jax.vmap(lambda kk: mg.sample(graph, kk))(keys)
    t = time.perf_counter()
    fn(masks, jax.random.split(jax.random.key(i), k))
    return time.perf_counter() - t

  c0 = compilations()
  first = call(0)
  c1 = compilations()
  times = [call(i + 1) for i in range(repeats)]
  return {
      "candidates_per_s": round(k * repeats / sum(times), 3),
      "s_per_call": round(float(np.median(times)), 4),
      "first_call_s": round(first, 2),
      "compile_s": round(c1[1] - c0[1], 2),
  }


def torch_device(torch, name: str) -> str:
  """`name`, or for ``"auto"``: ``"cuda"`` when JAX runs on a GPU and torch
  sees one, else ``"cpu"``."""
  if name != "auto":
    return name
  gpu = jax.default_backend() == "gpu" and torch.cuda.is_available()
  return "cuda" if gpu else "cpu"
