"""Predicted against measured latency of random architectures.

`sample_specs` draws random architectures of a space (sparse to dense),
`export_archs` exports them as float32 TFLite models, `summarize` gives the
accuracy figures of predictions against measurements, and `validate` does
all of it for a table on its target (`build` uses the same pieces for its
calibration).

Measured on the project's 2-core CPU (quickstart space, 8x8x1 digits input,
1 thread; `benchmarks/lut_validate_host.py`), two build + validate runs on
50 new random architectures of 23-115 us: 100% within ±10% both times,
98-100% within ±5%, RMSE 0.6-1.3 us, Spearman 0.999. The same space with
"concat" aggregation (``--max-points 5``, 30 architectures): 100% within
±10%, 93% within ±5%.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gram_jax import arch as arch_lib
from gram_jax import metagraph as mg
from gram_jax.cost import macs as macs_lib
from gram_jax.cost.table import LatencyTable
from gram_jax.cost.timing import Timer, resolve_settings, timer_for
from gram_jax.cost.walk import LutError
from gram_jax.export import tflite
from gram_jax.models import ExactNet
from gram_jax.space import SearchSpace


def sample_specs(
    space: SearchSpace,
    num_classes: int,
    num_archs: int,
    *,
    seed: int = 0,
    low: float = 0.2,
    high: float = 0.9,
) -> List[arch_lib.ArchSpec]:
  """`num_archs` random architectures of `space`, of varied sizes.

  Each is drawn from its own meta-graph (its own node ops) whose uniform
  initial edge weight is drawn from ``U(low, high)``, so the sample spans
  sparse to dense networks.
  """
  specs = []
  base = jax.random.key(seed)
  for i in range(num_archs):
    k_ops, k_w, k_mask = jax.random.split(jax.random.fold_in(base, i), 3)
    weight = float(jax.random.uniform(k_w, (), minval=low, maxval=high))
    graph = mg.init(space, k_ops, init_weight=weight)
    masks = mg.sample(graph, k_mask)
    specs.append(
        arch_lib.from_masks(space, graph.ops, masks, num_classes=num_classes)
    )
  return specs


def export_archs(
    specs: Sequence[arch_lib.ArchSpec],
    input_shape: Sequence[int],
    *,
    seed: int = 0,
) -> List[bytes]:
  """Float32 TFLite models of `ExactNet(spec)`s with random weights."""
  x = jnp.zeros((1,) + tuple(input_shape), jnp.float32)
  models = []
  for i, spec in enumerate(specs):
    variables = ExactNet(spec).init(jax.random.key(seed + i), x)
    models.append(tflite.to_tflite(spec, variables, input_shape))
  return models


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
  """Spearman's rank correlation (ties get their average rank)."""

  def ranks(v):
    v = np.asarray(v, np.float64)
    order = np.argsort(v, kind="mergesort")
    r = np.empty(len(v))
    r[order] = np.arange(len(v), dtype=np.float64)
    for value in np.unique(v):
      tie = v == value
      r[tie] = r[tie].mean()
    return r

  ra, rb = ranks(a), ranks(b)
  if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
    return float("nan")
  return float(np.corrcoef(ra, rb)[0, 1])


def summarize(
    predicted: Sequence[float], measured: Sequence[float]
) -> Dict[str, float]:
  """Accuracy figures of predicted vs measured latencies (ms)."""
  p = np.asarray(predicted, np.float64)
  y = np.asarray(measured, np.float64)
  rel = (p - y) / y
  return {
      "num_archs": int(len(y)),
      "within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
      "within_5pct": float(np.mean(np.abs(rel) <= 0.05)),
      "rmse_ms": float(np.sqrt(np.mean((p - y) ** 2))),
      "rmspe": float(np.sqrt(np.mean(rel**2))),
      "mean_error_pct": float(100 * rel.mean()),
      "max_abs_error_pct": float(100 * np.abs(rel).max()),
      "spearman": spearman(p, y),
      "measured_ms_range": [float(y.min()), float(y.max())],
  }


def validate(
    table: LatencyTable,
    space: SearchSpace,
    input_shape: Sequence[int],
    num_classes: int,
    num_archs: int,
    *,
    seed: int = 0,
    runs: Optional[int] = None,
    rounds: Optional[int] = None,
    warmup: Optional[int] = None,
    timer: Optional[Timer] = None,
    log: Optional[Callable[[str], None]] = None,
    **device: Any,
) -> Dict[str, Any]:
  """Predicted vs measured latency of `num_archs` random architectures.

  Each architecture (`sample_specs` with `seed`) is built as an `ExactNet`
  with random weights, exported to float32 TFLite (`export.tflite.
  to_tflite`) and timed on the table's target at its thread count,
  interleaved as in `build`.

  Returns:
    A JSON-ready report: `summarize`'s figures, the table's target and
    threads, and ``archs``: per architecture its predicted and measured ms,
    nodes, edges and MACs.
  """
  if (
      not isinstance(num_archs, int)
      or isinstance(num_archs, bool)
      or num_archs < 2
  ):
    raise LutError(
        f"num_archs: {num_archs!r} is not allowed; allowed: an integer >= 2"
    )
  if not isinstance(seed, int) or seed < 0:
    raise LutError(f"seed: {seed!r} is not allowed; allowed: an integer >= 0")
  runs, rounds, warmup = resolve_settings(table.target, runs, rounds, warmup)
  log = log or (lambda _: None)
  if timer is None:
    timer = timer_for(
        table.target, table.threads, runs, rounds, warmup, log, device
    )
  elif device:
    raise LutError(f"{sorted(device)[0]}: not used with a given timer")
  specs = sample_specs(space, num_classes, num_archs, seed=seed)
  predicted = [table.predict(s, input_shape) for s in specs]
  log(f"exporting {num_archs} architectures")
  start = time.time()
  models = export_archs(specs, input_shape, seed=seed)
  log(f"exported in {time.time() - start:.0f} s; timing on {table.target}")
  measured = [float(t) for t in timer(models)]
  report = {
      "target": table.target,
      "threads": table.threads,
      "input_shape": [int(s) for s in input_shape],
      "seed": seed,
      "settings": {"runs": runs, "rounds": rounds, "warmup": warmup},
      **summarize(predicted, measured),
  }
  calibration = table.meta.get("calibration")
  if isinstance(calibration, dict) and isinstance(
      calibration.get("invoke_ms"), (int, float)
  ):
    # The same table without its calibration: invoke constant + entries.
    raw = [
        calibration["invoke_ms"] + (p - table.constant_ms) / table.scale
        for p in predicted
    ]
    report["uncalibrated"] = {
        k: v
        for k, v in summarize(raw, measured).items()
        if k not in ("num_archs", "measured_ms_range")
    }
  report["archs"] = [
      {
          "predicted_ms": p,
          "measured_ms": y,
          "error_pct": 100 * (p - y) / y,
          "nodes": s.num_nodes,
          "edges": s.num_edges,
          "macs": macs_lib.count(s, input_shape).macs,
      }
      for s, p, y in zip(specs, predicted, measured)
  ]
  return report


def plot_validation(report: Dict[str, Any], path: str) -> None:
  """Scatter of predicted vs measured latency with the ±10% band (PNG)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  y = np.asarray([a["measured_ms"] for a in report["archs"]])
  p = np.asarray([a["predicted_ms"] for a in report["archs"]])
  fig, ax = plt.subplots(figsize=(5.5, 5.0), constrained_layout=True)
  lo, hi = min(y.min(), p.min()) * 0.9, max(y.max(), p.max()) * 1.1
  line = np.linspace(lo, hi, 2)
  ax.fill_between(
      line, line * 0.9, line * 1.1, color="tab:green", alpha=0.15, label="±10%"
  )
  ax.plot(line, line, color="tab:green", lw=1)
  inside = np.abs(p - y) <= 0.1 * y
  ax.scatter(y[inside], p[inside], s=16, color="tab:blue", label="within ±10%")
  ax.scatter(y[~inside], p[~inside], s=16, color="tab:red", label="outside")
  ax.set(
      xlim=(lo, hi),
      ylim=(lo, hi),
      xlabel="measured latency (ms)",
      ylabel="predicted latency (ms)",
      title=(
          f"{report['target']}, {report['threads']} thread(s): "
          f"{100 * report['within_10pct']:.0f}% within ±10%, "
          f"ρ={report['spearman']:.3f}"
      ),
  )
  ax.legend(loc="upper left")
  fig.savefig(path, dpi=110)
  plt.close(fig)
