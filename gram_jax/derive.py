"""From a trained meta-graph to a network: the pruning profile [SN §3.3, §4.2].

`profile` sweeps pruning levels and records the derived network's MACs and
parameters (the paper's Figure 5); `select` picks the level whose network is
the largest one within a budget. `gram-jax prune --workdir <run>` does both
and writes the table, the plot and the chosen `arch.json`.
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


def profile(graph: mg.MetaGraph, levels: Sequence[float], *,
            input_shape: Sequence[int], num_classes: int,
            mode: str = "threshold") -> List[Dict[str, Any]]:
  """MACs, parameters, nodes and edges of the network at each level."""
  rows = []
  prune = jax.jit(mg.prune, static_argnames="mode")
  for level in levels:
    masks = np.asarray(prune(graph, jnp.float32(level), mode=mode))
    spec = arch_lib.from_masks(graph.space, graph.ops, masks,
                               num_classes=num_classes)
    c = cost_lib.count(spec, tuple(input_shape))
    rows.append({"level": round(float(level), 6), "macs": c.macs,
                 "params": c.params, "nodes": spec.num_nodes,
                 "edges": spec.num_edges, "spec": spec})
  return rows


def select(rows: List[Dict[str, Any]], *, max_macs: Optional[float] = None,
           max_params: Optional[float] = None) -> Dict[str, Any]:
  """The row with the most MACs that meets every given budget."""
  ok = [r for r in rows
        if (max_macs is None or r["macs"] <= max_macs)
        and (max_params is None or r["params"] <= max_params)]
  if not ok:
    smallest = min(rows, key=lambda r: (r["macs"], r["params"]))
    parts = []
    if max_macs is not None:
      parts.append(f"--max-macs {max_macs:g}: the smallest network has "
                   f"{smallest['macs']} MACs")
    if max_params is not None:
      parts.append(f"--max-params {max_params:g}: the smallest network has "
                   f"{min(r['params'] for r in rows)} parameters")
    raise GramJaxError("no pruning level meets the budget; "
                       + "; ".join(parts))
  return max(ok, key=lambda r: (r["macs"], r["params"], -r["level"]))


def plot_profile(rows: List[Dict[str, Any]], path: str,
                 chosen: Optional[float] = None) -> None:
  from gram_jax.report.plots import _pyplot  # pylint: disable=import-outside-toplevel
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.2), constrained_layout=True)
  lv = [r["level"] for r in rows]
  ax.plot(lv, [r["macs"] / 1e6 for r in rows], "o-", label="MACs (M)")
  ax.plot(lv, [r["params"] / 1e6 for r in rows], "s-",
          label="parameters (M)")
  ax.set_yscale("log")
  ax.set(xlabel="pruning level", ylabel="model scale (log)",
         title="Model scale vs pruning level")
  if chosen is not None:
    ax.axvline(chosen, color="gray", ls="--", label=f"chosen {chosen:g}")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--workdir", required=True, help="a finished search")
  parser.add_argument("--step", type=float, default=0.05)
  parser.add_argument("--mode", default="threshold",
                      choices=mg.PRUNE_MODES)
  parser.add_argument("--input-shape", default=None,
                      help="H,W,C (default: the search dataset's)")
  parser.add_argument("--num-classes", type=int, default=None)
  parser.add_argument("--max-macs", type=float, default=None)
  parser.add_argument("--max-params", type=float, default=None)
  parser.add_argument("--out", default=None,
                      help="arch.json to write for the budget (default: "
                      "<workdir>/arch_budget.json)")


def run(args: argparse.Namespace, rest) -> int:
  if rest:
    raise GramJaxError(f"{rest[0]}: unknown argument")
  if not 0 < args.step <= 1:
    raise GramJaxError(f"--step: {args.step} is not allowed; allowed: "
                       "0 < step <= 1")
  graph = io.load_metagraph(os.path.join(args.workdir, "metagraph.json"))
  with open(os.path.join(args.workdir, "config.json")) as f:
    dataset = json.load(f).get("dataset", "digits")
  shape, classes = data_lib.info(dataset)
  if args.input_shape:
    shape = parse_shape(args.input_shape)
  classes = args.num_classes or classes
  levels = np.round(np.arange(0.0, 1.0 + 1e-9, args.step), 6)
  rows = profile(graph, levels, input_shape=shape, num_classes=classes,
                 mode=args.mode)
  table = [{k: v for k, v in r.items() if k != "spec"} for r in rows]
  with open(os.path.join(args.workdir, "prune_profile.csv"), "w",
            newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(table[0]))
    w.writeheader()
    w.writerows(table)
  io.write_json_atomic(os.path.join(args.workdir, "prune_profile.json"),
                       {"input_shape": list(shape), "num_classes": classes,
                        "mode": args.mode, "levels": table})
  chosen = None
  if args.max_macs is not None or args.max_params is not None:
    chosen = select(rows, max_macs=args.max_macs, max_params=args.max_params)
    out = args.out or os.path.join(args.workdir, "arch_budget.json")
    io.write_json_atomic(out, chosen["spec"].to_dict())
  plot_profile(rows, os.path.join(args.workdir, "prune_profile.png"),
               chosen["level"] if chosen else None)
  print(f"{'level':>6} {'MACs':>12} {'params':>10} {'nodes':>6} {'edges':>6}")
  for r in table:
    print(f"{r['level']:6.2f} {r['macs']:12d} {r['params']:10d} "
          f"{r['nodes']:6d} {r['edges']:6d}")
  if chosen:
    print(f"chosen level {chosen['level']:g}: {chosen['macs']} MACs, "
          f"{chosen['params']} params -> {out}")
  return 0
