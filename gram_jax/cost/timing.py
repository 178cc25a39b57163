"""Timing TFLite models on a latency table's target.

A timer maps a list of TFLite models to their latencies (ms). `host_timer`
interleaves all models of a session over several passes and keeps each
model's fastest pass median, in a fresh process that loads only LiteRT
(see its docstring for why both matter on a shared CPU); `android_timer`
runs TFLite's ``benchmark_model`` on a phone over adb. `timer_for` picks
the target's timer, `resolve_settings` fills in its default settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Callable, List, Optional, Sequence

import numpy as np

from gram_jax.cost.walk import LutError
from gram_jax.export import android
from gram_jax.export import latency

# Host defaults: timed invokes per pass, passes (interleaved over all
# models; the smallest pass median is kept) and untimed warm-up invokes.
DEFAULT_RUNS = 500
DEFAULT_ROUNDS = 7
DEFAULT_WARMUP = 20

Timer = Callable[[Sequence[bytes]], List[float]]


def host_timer(
    *,
    threads: int = 1,
    runs: int = DEFAULT_RUNS,
    rounds: int = DEFAULT_ROUNDS,
    warmup: int = DEFAULT_WARMUP,
    isolate: bool = True,
    log: Optional[Callable[[str], None]] = None,
) -> Timer:
  """Times models with LiteRT here: `rounds` interleaved passes.

  Each pass times every model once (`latency.measure_tflite`: a fresh
  interpreter, `warmup` untimed then `runs` timed invokes, their median),
  in a new random order per pass. A model's latency is the *smallest* of
  its pass medians: on a shared machine other processes slow whole passes
  down (by up to 1.6x on the project's 2-core box, for seconds at a time),
  and the fastest pass is the reproducible, uncontended figure.

  With `isolate` (the default) the timing runs in a fresh Python process
  that loads only LiteRT: after a process has converted models with
  TensorFlow and JAX, LiteRT runs the same model about 8% slower in it (so
  a table timed there would not match ``gram-jax latency``).
  """

  def timer(models: Sequence[bytes]) -> List[float]:
    if not isolate:
      return _time_models(list(models), threads, runs, rounds, warmup, log)
    with tempfile.TemporaryDirectory(prefix="gram_jax_lut_") as tmp:
      paths = []
      for i, model in enumerate(models):
        paths.append(os.path.join(tmp, f"model{i:05d}.tflite"))
        with open(paths[-1], "wb") as f:
          f.write(model)
      job = os.path.join(tmp, "job.json")
      result = os.path.join(tmp, "result.json")
      with open(job, "w") as f:
        json.dump(
            {
                "paths": paths,
                "threads": threads,
                "runs": runs,
                "rounds": rounds,
                "warmup": warmup,
                "out": result,
            },
            f,
        )
      code = (
          "import sys; from gram_jax.cost.timing import timing_child; "
          "timing_child(sys.argv[1])"
      )
      proc = subprocess.Popen(
          [sys.executable, "-c", code, job],
          stdout=subprocess.PIPE,
          stderr=subprocess.PIPE,
          text=True,
      )
      for line in proc.stdout:
        if log and line.strip():
          log(line.rstrip())
      err = proc.stderr.read()
      if proc.wait() != 0 or not os.path.exists(result):
        lines = [x for x in err.splitlines() if x.strip()]
        raise LutError(
            "timing process failed: "
            f"{lines[-1][:300] if lines else 'no message'}"
        )
      with open(result) as f:
        return [float(v) for v in json.load(f)]

  return timer


def _time_models(models, threads, runs, rounds, warmup, log) -> List[float]:
  per: List[List[float]] = [[] for _ in models]
  order = np.arange(len(models))
  rng = np.random.default_rng(0)
  for r in range(rounds):
    rng.shuffle(order)
    for i in order:
      s = latency.measure_tflite(
          models[i], threads=threads, runs=runs, warmup=warmup
      )
      per[i].append(s["median_ms"])
    if log:
      log(f"  pass {r + 1}/{rounds} done")
  return [float(min(p)) for p in per]


def timing_child(job_path: str) -> None:
  """Entry point of `host_timer`'s timing process."""
  with open(job_path) as f:
    job = json.load(f)
  times = _time_models(
      job["paths"],
      job["threads"],
      job["runs"],
      job["rounds"],
      job["warmup"],
      lambda m: print(m, flush=True),
  )
  with open(job["out"], "w") as f:
    json.dump(times, f)


def android_timer(
    *,
    threads: int = 1,
    runs: int = 50,
    rounds: int = 1,
    warmup: int = 10,
    log: Optional[Callable[[str], None]] = None,
    **device: Any,
) -> Timer:
  """Times models on an Android phone with `android.benchmark_on_device`.

  `device` passes on serial, benchmark_binary, cpu_mask, use_xnnpack, adb
  and runner (a fake in tests). Each model is written to a temporary file
  and benchmarked `rounds` times; its latency is the median of the tool's
  medians (its averages where it prints no median).
  """

  def timer(models: Sequence[bytes]) -> List[float]:
    per = [[] for _ in models]
    with tempfile.TemporaryDirectory(prefix="gram_jax_lut_") as tmp:
      paths = []
      for i, model in enumerate(models):
        path = os.path.join(tmp, f"layer{i:05d}.tflite")
        with open(path, "wb") as f:
          f.write(model)
        paths.append(path)
      for r in range(rounds):
        for i, path in enumerate(paths):
          s = android.benchmark_on_device(
              path, threads=threads, runs=runs, warmup=warmup, **device
          )
          value = s["median_ms"] if s["median_ms"] is not None else s["avg_ms"]
          if value is None:
            raise LutError(
                f"benchmark_model printed no latency for layer model {i}"
            )
          per[i].append(float(value))
          if r == 0 and i == 0:
            timer.device = s.get("device")
        if log:
          log(f"  pass {r + 1}/{rounds} done")
    return [float(np.median(p)) for p in per]

  timer.device = None
  return timer


def resolve_settings(target, runs, rounds, warmup):
  """Timing settings with the target's defaults filled in, checked."""
  for name, value in (("runs", runs), ("rounds", rounds)):
    if value is not None and (
        not isinstance(value, int) or isinstance(value, bool) or value < 1
    ):
      raise LutError(
          f"{name}: {value!r} is not allowed; allowed: an integer >= 1"
      )
  if warmup is not None and (
      not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0
  ):
    raise LutError(
        f"warmup: {warmup!r} is not allowed; allowed: an integer >= 0"
    )
  host = target == "host"
  return (
      runs or (DEFAULT_RUNS if host else 50),
      rounds or (DEFAULT_ROUNDS if host else 1),
      (DEFAULT_WARMUP if host else 10) if warmup is None else warmup,
  )


def timer_for(target, threads, runs, rounds, warmup, log, device) -> Timer:
  """The timer of `target` (`device`: `android_timer` options only)."""
  if target == "host":
    if device:
      raise LutError(f"{sorted(device)[0]}: only used with target android")
    return host_timer(
        threads=threads, runs=runs, rounds=rounds, warmup=warmup, log=log
    )
  return android_timer(
      threads=threads,
      runs=runs,
      rounds=rounds,
      warmup=warmup,
      log=log,
      **device,
  )
