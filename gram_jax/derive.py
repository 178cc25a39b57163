"""From a trained meta-graph to a network: the pruning profile [SN §3.3, §4.2].

`profile` sweeps pruning levels and records the derived network's MACs and
parameters (the paper's Figure 5), and its predicted latency when a latency
table is given; `select` picks the level whose network is the largest one
within a budget. `gram-jax prune --workdir <run>` does both and writes the
table, the plot and the chosen `arch.json`.

With the default ``space.dag_output="all"`` a higher level keeps a subset
of the edges, so nodes, edges, MACs and parameters never grow with the level
(tested); the predicted latency follows MACs closely but is not guaranteed
monotone (e.g. a removed input can turn a two-input add into none).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from typing import Any, Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gram_jax import arch as arch_lib
from gram_jax import cost as cost_lib
from gram_jax import data as data_lib
from gram_jax import io
from gram_jax import metagraph as mg
from gram_jax.errors import GramJaxError, parse_shape


def profile(
    graph: mg.MetaGraph,
    levels: Sequence[float],
    *,
    input_shape: Sequence[int],
    num_classes: int,
    mode: str = "threshold",
    table: Optional[Any] = None,
) -> List[Dict[str, Any]]:
  """MACs, parameters, nodes and edges of the network at each level.

  Args:
    graph: the trained meta-graph.
    levels: pruning levels.
    input_shape: ``(H, W, C)`` of one input.
    num_classes: classifier width.
    mode: `metagraph.PRUNE_MODES`.
    table: optional `cost.lut.LatencyTable`; adds ``latency_ms``.
  """
  rows = []
  prune = jax.jit(mg.prune, static_argnames="mode")
  for level in levels:
    masks = np.asarray(prune(graph, jnp.float32(level), mode=mode))
    spec = arch_lib.from_masks(
        graph.space, graph.ops, masks, num_classes=num_classes
    )
    c = cost_lib.count(spec, tuple(input_shape))
    row = {
        "level": round(float(level), 6),
        "macs": c.macs,
        "params": c.params,
        "nodes": spec.num_nodes,
        "edges": spec.num_edges,
    }
    if table is not None:
      row["latency_ms"] = round(float(table.predict(spec, input_shape)), 6)
    rows.append({**row, "spec": spec})
  return rows


def select(
    rows: List[Dict[str, Any]],
    *,
    max_macs: Optional[float] = None,
    max_params: Optional[float] = None,
    max_latency_ms: Optional[float] = None,
) -> Dict[str, Any]:
  """The row with the most MACs that meets every given budget."""
  budgets = [
      ("macs", max_macs, "--max-macs", "MACs"),
      ("params", max_params, "--max-params", "parameters"),
      ("latency_ms", max_latency_ms, "--max-latency-ms", "ms predicted"),
  ]
  budgets = [b for b in budgets if b[1] is not None]
  for key, _, flag, _ in budgets:
    if any(key not in r for r in rows):
      raise GramJaxError(
          f"{flag}: the profile has no {key} column (give a "
          "latency table with --lut)"
      )
  ok = [r for r in rows if all(r[key] <= limit for key, limit, _, _ in budgets)]
  if not ok:
    parts = [
        f"{flag} {limit:g}: the smallest network has "
        f"{min(r[key] for r in rows):g} {unit}"
        for key, limit, flag, unit in budgets
    ]
    raise GramJaxError("no pruning level meets the budget; " + "; ".join(parts))
  return max(ok, key=lambda r: (r["macs"], r["params"], -r["level"]))


def plot_profile(
    rows: List[Dict[str, Any]], path: str, chosen: Optional[float] = None
) -> None:
  from gram_jax.report.plots import pyplot  # pylint: disable=import-outside-toplevel

  plt = pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.2), constrained_layout=True)
  lv = [r["level"] for r in rows]
  ax.plot(lv, [r["macs"] / 1e6 for r in rows], "o-", label="MACs (M)")
  ax.plot(lv, [r["params"] / 1e6 for r in rows], "s-", label="parameters (M)")
  ax.set_yscale("log")
  ax.set(
      xlabel="pruning level",
      ylabel="model scale (log)",
      title="Model scale vs pruning level",
  )
  if chosen is not None:
    ax.axvline(chosen, color="gray", ls="--", label=f"chosen {chosen:g}")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--workdir", required=True, help="a finished search")
  parser.add_argument("--step", type=float, default=0.05)
  parser.add_argument("--mode", default="threshold", choices=mg.PRUNE_MODES)
  parser.add_argument(
      "--input-shape",
      default=None,
      help="H,W,C (default: the search dataset's)",
  )
  parser.add_argument("--num-classes", type=int, default=None)
  parser.add_argument("--max-macs", type=float, default=None)
  parser.add_argument("--max-params", type=float, default=None)
  parser.add_argument(
      "--lut",
      default=None,
      help=(
          "latency table (`gram-jax lut build`): adds the "
          "predicted latency to the profile"
      ),
  )
  parser.add_argument(
      "--max-latency-ms",
      type=float,
      default=None,
      help="latency budget; needs --lut",
  )
  parser.add_argument(
      "--out",
      default=None,
      help=(
          "arch.json to write for the budget (default: "
          "<workdir>/arch_budget.json)"
      ),
  )


def run(args: argparse.Namespace, rest) -> int:
  if rest:
    raise GramJaxError(f"{rest[0]}: unknown argument")
  if not 0 < args.step <= 1:
    raise GramJaxError(
        f"--step: {args.step} is not allowed; allowed: 0 < step <= 1"
    )
  graph = io.load_metagraph(os.path.join(args.workdir, "metagraph.json"))
  with open(os.path.join(args.workdir, "config.json")) as f:
    dataset = json.load(f).get("dataset", "digits")
  shape, classes = data_lib.info(dataset)
  if args.input_shape:
    shape = parse_shape(args.input_shape)
  classes = args.num_classes or classes
  if args.max_latency_ms is not None and not args.lut:
    raise GramJaxError(
        "--max-latency-ms: needs a latency table; allowed: "
        "with --lut <table.json> (build one with `gram-jax "
        "lut build`)"
    )
  table = None
  if args.lut:
    from gram_jax.cost import lut as lut_lib  # pylint: disable=import-outside-toplevel

    table = lut_lib.LatencyTable.load(args.lut)
  levels = np.round(np.arange(0.0, 1.0 + 1e-9, args.step), 6)
  rows = profile(
      graph,
      levels,
      input_shape=shape,
      num_classes=classes,
      mode=args.mode,
      table=table,
  )
  flat = [{k: v for k, v in r.items() if k != "spec"} for r in rows]
  with open(
      os.path.join(args.workdir, "prune_profile.csv"), "w", newline=""
  ) as f:
    w = csv.DictWriter(f, fieldnames=list(flat[0]))
    w.writeheader()
    w.writerows(flat)
  io.write_json_atomic(
      os.path.join(args.workdir, "prune_profile.json"),
      {
          "input_shape": list(shape),
          "num_classes": classes,
          "mode": args.mode,
          "lut": os.path.abspath(args.lut) if args.lut else None,
          "levels": flat,
      },
  )
  chosen = None
  if any(
      b is not None
      for b in (args.max_macs, args.max_params, args.max_latency_ms)
  ):
    chosen = select(
        rows,
        max_macs=args.max_macs,
        max_params=args.max_params,
        max_latency_ms=args.max_latency_ms,
    )
    out = args.out or os.path.join(args.workdir, "arch_budget.json")
    io.write_json_atomic(out, chosen["spec"].to_dict())
  plot_profile(
      rows,
      os.path.join(args.workdir, "prune_profile.png"),
      chosen["level"] if chosen else None,
  )
  lat = table is not None
  print(
      f"{'level':>6} {'MACs':>12} {'params':>10} {'nodes':>6} {'edges':>6}"
      + (f" {'ms':>9}" if lat else "")
  )
  for r in rows:
    print(
        f"{r['level']:6.2f} {r['macs']:12d} {r['params']:10d} "
        f"{r['nodes']:6d} {r['edges']:6d}"
        + (f" {r['latency_ms']:9.4f}" if lat else "")
    )
  if chosen:
    print(
        f"chosen level {chosen['level']:g}: {chosen['macs']} MACs, "
        f"{chosen['params']} params"
        + (f", {chosen['latency_ms']:.4f} ms" if lat else "")
        + f" -> {out}"
    )
  return 0
