"""Measuring a latency table: `build`.

Each entry is a *marginal* cost: the latency of a one-layer TFLite model
(`layer_function`) minus that of a model that does almost nothing
(`constant_function`: the fixed cost of one ``invoke()``). `build` then
times a few random whole architectures in the same session and fits
``constant_ms`` and ``scale`` to them (`fit_calibration`): inside a whole
network layers run a few percent slower than alone. ``--calibrate 0`` keeps
the plain sum (the measured invoke cost and scale 1).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gram_jax.cost.table import TARGETS, Curve, LatencyTable
from gram_jax.cost.timing import Timer, resolve_settings, timer_for
from gram_jax.cost.validation import export_archs, sample_specs, summarize
from gram_jax.cost.walk import (
    DEFAULT_MAX_POINTS,
    KINDS,
    Key,
    LutError,
    requirements,
)
from gram_jax.export import latency
from gram_jax.export import tflite
from gram_jax.models import layers
from gram_jax.space import SearchSpace

# Architectures timed by `build` to fit the table's scale, and the base seed
# they are drawn with (`validate` draws from seed 0 by default).
DEFAULT_CALIBRATE = 12
CALIBRATION_SEED = 1000


def layer_function(kind: str, key: Key, x: int, *, seed: int = 0):
  """A one-layer JAX function and its input shape ``(1, H, W, C)``.

  The layer is built from the same modules `ExactNet` uses, with random
  weights, so its TFLite form is the one a whole network contains.

  Returns:
    ``(fn, input_shape, width)``: `width` is the x actually realised (a
    concat of j equal inputs rounds x to a multiple of j).
  """
  p = dict(zip(KINDS[kind], key))
  hw = (1, p["height"], p["width"])
  rng = jax.random.key(seed)
  if kind == "conv":
    mod = layers.ConvBNAct(p["cout"], p["kernel"], p["stride"])
    v = mod.init(rng, jnp.zeros(hw + (x,)), train=False)
    return (lambda a: mod.apply(v, a, train=False)), hw + (x,), x
  if kind == "pad":
    return (lambda a: layers.pad_channels(a, p["cout"])), hw + (x,), x
  if kind == "add":
    return (lambda a: a + a), hw + (x,), x
  if kind == "concat":
    j = p["inputs"]
    part = max(1, int(round(x / j)))
    return (lambda a: jnp.concatenate([a] * j, axis=-1)), hw + (part,), part * j
  if kind == "pool":
    return (lambda a: layers.pool(a, p["mode"])), hw + (x,), x
  if kind == "head":

    class Head(nn.Module):

      @nn.compact
      def __call__(self, a):
        return layers.head(a, p["classes"])

    mod = Head()
    v = mod.init(rng, jnp.zeros(hw + (x,)))
    return (lambda a: mod.apply(v, a)), hw + (x,), x
  raise LutError(f"kind: {kind!r} is not allowed; allowed: {', '.join(KINDS)}")


def constant_function():
  """The near-empty model whose latency is the per-invoke constant."""
  return (lambda a: a * 2.0), (1, 1, 1, 1)


def fit_calibration(
    sums: Sequence[float], measured: Sequence[float], constant: float
) -> Tuple[float, float]:
  """``(constant, scale)`` minimising the relative error of ``c + s * sum``.

  Least squares on ``(c + s * S_i) / y_i - 1`` over calibration
  architectures with entry sums ``S_i`` and measured latencies ``y_i``:
  the calibration of `build`. With fewer than 3 architectures only the
  scale is fitted (``c`` stays the measured `constant`); a fit that is
  undefined or has a scale <= 0 falls back to ``(constant, 1.0)``.
  """
  y = np.asarray(measured, np.float64)
  q = np.asarray(sums, np.float64) / y
  if len(y) >= 3 and np.ptp(q) > 0:
    design = np.stack([1.0 / y, q], axis=1)
    (c, s), *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
  else:
    den = float(np.sum(q * q))
    c, s = constant, (
        float(np.sum(q * (1.0 - constant / y))) / den if den > 0 else 1.0
    )
  if not (math.isfinite(c) and math.isfinite(s) and s > 0):
    return float(constant), 1.0
  return float(c), float(s)


def build(
    space: SearchSpace,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    target: str = "host",
    threads: int = 1,
    runs: Optional[int] = None,
    rounds: Optional[int] = None,
    warmup: Optional[int] = None,
    max_points: int = DEFAULT_MAX_POINTS,
    calibrate: int = DEFAULT_CALIBRATE,
    seed: int = 0,
    timer: Optional[Timer] = None,
    log: Optional[Callable[[str], None]] = None,
    **device: Any,
) -> LatencyTable:
  """Measures the latency table of `space` on `target`.

  Every entry of `requirements` becomes one-layer TFLite models (float32,
  `export.tflite.function_to_tflite`), timed together with the near-empty
  model that gives the per-invoke constant; entries are the latencies minus
  it, clipped at zero. With `calibrate` > 0, that many random architectures
  (`sample_specs` with seed ``CALIBRATION_SEED + seed``, so not those
  `validate` draws by default) are exported and timed in the same
  interleaved session, and `fit_calibration` gives the table's
  ``constant_ms`` and ``scale``: layers run a little slower inside a whole
  network than alone (up to about 5% on the project's CPU, more for bigger
  networks), which the sum of one-layer latencies cannot see.

  Args:
    space: the search space.
    input_shape: ``(H, W, C)`` of one input image.
    num_classes: classifier width.
    target: ``"host"`` (LiteRT here) or ``"android"`` (benchmark_model on
      the phone over adb; `device` holds `android_timer`'s options).
    threads: interpreter threads.
    runs, rounds, warmup: timing settings (defaults: host 500 timed
      invokes per pass, 7 interleaved passes, 20 warm-up invokes; android
      50 runs, 1 pass, 10 warm-up runs).
    max_points: most widths measured per entry.
    calibrate: architectures timed to fit ``constant_ms`` and ``scale``
      (0: the measured invoke constant and scale 1).
    seed: seed of the layers' random weights and the calibration sample.
    timer: replaces the target's timer (``models -> ms``), e.g. in tests.
    log: progress messages (e.g. ``print``).

  Returns:
    The `LatencyTable`.
  """
  if target not in TARGETS:
    raise LutError(
        f"target: {target!r} is not allowed; allowed: {', '.join(TARGETS)}"
    )
  for name, value, low in (
      ("threads", threads, 1),
      ("num_classes", num_classes, 1),
      ("calibrate", calibrate, 0),
      ("seed", seed, 0),
  ):
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
      raise LutError(
          f"{name}: {value!r} is not allowed; allowed: an integer >= {low}"
      )
  runs, rounds, warmup = resolve_settings(target, runs, rounds, warmup)
  log = log or (lambda _: None)
  if timer is None:
    timer = timer_for(target, threads, runs, rounds, warmup, log, device)
  elif device:
    raise LutError(f"{sorted(device)[0]}: not used with a given timer")
  need = requirements(space, input_shape, num_classes, max_points=max_points)
  log(
      f"converting {sum(len(x) for x in need.values()) + 1} one-layer "
      f"models ({len(need)} entries)"
      + (f" and {calibrate} calibration architectures" if calibrate else "")
  )
  start = time.time()
  fn, shape = constant_function()
  models = [tflite.function_to_tflite(fn, shape)]
  where: List[Tuple[Tuple[str, Key], int]] = []
  for i, ((kind, key), xs) in enumerate(need.items()):
    for x in xs:
      fn, shape, real = layer_function(kind, key, x, seed=seed + i)
      models.append(tflite.function_to_tflite(fn, shape))
      where.append(((kind, key), real))
  specs = (
      sample_specs(space, num_classes, calibrate, seed=CALIBRATION_SEED + seed)
      if calibrate
      else []
  )
  archs = export_archs(specs, input_shape, seed=CALIBRATION_SEED + seed)
  log(
      f"converted in {time.time() - start:.0f} s; timing on {target} "
      f"({threads} thread{'s' if threads > 1 else ''})"
  )
  start = time.time()
  times = timer(models + archs)
  log(f"timed in {time.time() - start:.0f} s")
  constant = float(times[0])
  points: Dict[Tuple[str, Key], Dict[int, float]] = {}
  for (kk, real), t in zip(where, times[1 : len(models)]):
    points.setdefault(kk, {})[real] = max(0.0, float(t) - constant)
  curves = {
      kk: Curve(tuple(sorted(p)), tuple(p[x] for x in sorted(p)))
      for kk, p in points.items()
  }
  table = LatencyTable(
      target=target, threads=threads, constant_ms=constant, curves=curves
  )
  calibration = None
  scale = 1.0
  if specs:
    measured = [float(t) for t in times[len(models) :]]
    sums = [table.predict(s, input_shape) - constant for s in specs]
    fitted, scale = fit_calibration(sums, measured, constant)
    before = summarize([constant + v for v in sums], measured)
    after = summarize([fitted + scale * v for v in sums], measured)
    calibration = {
        "archs": len(specs),
        "seed": CALIBRATION_SEED + seed,
        "invoke_ms": constant,
        "constant_ms": fitted,
        "scale": scale,
        "rmspe_before": before["rmspe"],
        "rmspe_after": after["rmspe"],
        "measured_ms": measured,
    }
    log(
        f"calibration on {len(specs)} architectures: constant "
        f"{1000 * constant:.2f} -> {1000 * fitted:.2f} us, scale "
        f"{scale:.4f}; RMS relative error {100 * before['rmspe']:.1f}% -> "
        f"{100 * after['rmspe']:.1f}%"
    )
    constant = fitted
  env = latency.environment() if target == "host" else {}
  meta = {
      "space": space.to_dict(),
      "input_shape": [int(s) for s in input_shape],
      "num_classes": int(num_classes),
      "settings": {
          "runs": runs,
          "rounds": rounds,
          "warmup": warmup,
          "max_points": max_points,
          "seed": seed,
          "models": len(models),
      },
      "calibration": calibration,
      "machine": env.get("machine"),
      "versions": env.get("versions") or {"jax": jax.__version__},
      "device": getattr(timer, "device", None),
      "created": (
          datetime.datetime.now(datetime.timezone.utc).isoformat(
              timespec="seconds"
          )
      ),
  }
  return dataclasses.replace(
      table, constant_ms=constant, scale=scale, meta=meta
  )
