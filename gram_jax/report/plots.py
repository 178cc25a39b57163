"""PNG plots: a search's curves over iterations and edge-weight heatmaps,
and the accuracy-cost Pareto plot of trained networks."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence

import numpy as np


def pyplot():
  """`matplotlib.pyplot` on the non-interactive Agg backend (files only)."""
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  return plt


def smooth(values: Sequence[float], window: int) -> np.ndarray:
  """Running mean of `values` over `window` points, same length: the first
  ``window - 1`` points average what came before them."""
  v = np.asarray(values, dtype=float)
  if len(v) < window or window < 2:
    return v
  kernel = np.ones(window) / window
  head = [v[: i + 1].mean() for i in range(window - 1)]
  return np.concatenate([head, np.convolve(v, kernel, mode="valid")])


def search_curves(records: List[Dict[str, Any]], path: str) -> None:
  """Accuracy, reward and baseline, MACs and live edges per iteration."""
  plt = pyplot()
  fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
  if not records:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return
  step = [r["step"] for r in records]
  window = max(2, len(records) // 20)
  ax = axes[0, 0]
  acc = [r["accuracy"] for r in records]
  ax.plot(step, acc, ".", alpha=0.35, color="tab:blue", label="candidate")
  ax.plot(
      step,
      smooth(acc, window),
      color="tab:blue",
      label=f"moving mean ({window})",
  )
  ax.set(
      title="Proxy validation accuracy", xlabel="iteration", ylabel="accuracy"
  )
  ax.legend(loc="lower right")
  ax = axes[0, 1]
  ax.plot(
      step,
      [r["reward"] for r in records],
      ".",
      alpha=0.35,
      color="tab:green",
      label="reward η'",
  )
  ax.plot(
      step,
      [r["baseline"] for r in records],
      color="tab:red",
      label="baseline β",
  )
  ax.set(title="Reward and baseline", xlabel="iteration", ylabel="value")
  ax.legend(loc="lower right")
  ax = axes[1, 0]
  macs = [r["macs"] / 1e6 for r in records]
  ax.plot(step, macs, ".", alpha=0.35, color="tab:purple")
  ax.plot(step, smooth(macs, window), color="tab:purple")
  ax.set(title="Candidate MACs", xlabel="iteration", ylabel="M MACs")
  ax = axes[1, 1]
  edges = [r["live_edges"] for r in records]
  ax.plot(step, edges, ".", alpha=0.35, color="tab:orange")
  ax.plot(step, smooth(edges, window), color="tab:orange")
  ax.set(
      title="Live edges of the sampled network",
      xlabel="iteration",
      ylabel="edges",
  )
  fig.suptitle("GRAM search")
  fig.savefig(path, dpi=110)
  plt.close(fig)


def edge_weights(graph, path: str) -> None:
  """One heatmap per DAG: edge weight of i -> j (rows i, columns j)."""
  plt = pyplot()
  space = graph.space
  w = np.asarray(graph.weights)
  h, m, n = space.hierarchies, space.dags_per_hierarchy, space.nodes
  size = 2.2 + 0.16 * n
  fig, axes = plt.subplots(
      h,
      m,
      figsize=(size * m + 1.2, size * h),
      squeeze=False,
      constrained_layout=True,
  )
  tri = np.triu(np.ones((n, n), bool), 1)
  image = None
  for k in range(space.num_dags):
    ax = axes[k // m, k % m]
    shown = np.where(tri, w[k], np.nan)
    image = ax.imshow(shown, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_title(f"hierarchy {k // m + 1}, DAG {k % m + 1}", fontsize=9)
    step = max(1, math.ceil(n / 12))
    ax.set_xticks(range(0, n, step))
    ax.set_yticks(range(0, n, step))
    ax.set_xlabel("to node", fontsize=8)
    ax.set_ylabel("from node", fontsize=8)
    ax.tick_params(labelsize=7)
  fig.colorbar(image, ax=axes, shrink=0.8, label="edge weight")
  fig.suptitle("Meta-graph edge weights")
  fig.savefig(path, dpi=110)
  plt.close(fig)


def pareto(rows: List[Dict[str, Any]], path: str) -> None:
  """Top-1 against MACs, and against latency where rows have one, of
  trained networks (``name``, ``top1`` in %, ``macs``, ``latency_ms``),
  with the Pareto front (PNG)."""
  plt = pyplot()
  lat = [r for r in rows if r.get("latency_ms")]
  fig, axes = plt.subplots(
      1,
      2 if lat else 1,
      figsize=(11 if lat else 6, 4.2),
      squeeze=False,
      constrained_layout=True,
  )
  for ax, key, label in [(axes[0, 0], "macs", "M MACs")] + (
      [(axes[0, 1], "latency_ms", "latency (ms)")] if lat else []
  ):
    pts = [r for r in rows if r.get(key)]
    xs = [r[key] / (1e6 if key == "macs" else 1) for r in pts]
    ax.scatter(xs, [r["top1"] for r in pts], color="tab:blue")
    for x, r in zip(xs, pts):
      ax.annotate(
          r["name"],
          (x, r["top1"]),
          fontsize=7,
          textcoords="offset points",
          xytext=(4, 3),
      )
    front, best = [], -1.0
    for x, r in sorted(zip(xs, pts), key=lambda t: t[0]):
      if r["top1"] > best:
        front.append((x, r["top1"]))
        best = r["top1"]
    if front:
      ax.step(
          *zip(*front),
          where="post",
          color="tab:red",
          lw=1,
          label="Pareto front",
      )
      ax.legend(loc="lower right")
    ax.set(xlabel=label, ylabel="top-1 (%)", title=f"Accuracy vs {label}")
    ax.grid(alpha=0.3)
  fig.savefig(path, dpi=120)
  plt.close(fig)
