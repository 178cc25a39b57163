"""`gram-jax report --workdir <run>`: drawings, plots and a summary table.

Writes into the workdir: `arch.png` (the found architecture, like Figure 3
of the paper), `pareto.png` (top-1 vs MACs, and vs latency where measured,
of every trained network found under the workdir: each `result.json`
written by `gram-jax train` or the quickstart) and `summary.md`.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from typing import Any, Dict, List

from gram_jax import arch as arch_lib
from gram_jax import cost as cost_lib
from gram_jax import data as data_lib
from gram_jax.errors import GramJaxError
from gram_jax.report import draw
from gram_jax.report.plots import pareto


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--workdir", required=True)


def _results(workdir: str) -> List[Dict[str, Any]]:
  out = []
  for path in sorted(
      glob.glob(os.path.join(workdir, "**", "result.json"), recursive=True)
  ):
    with open(path) as f:
      r = json.load(f)
    top1 = r.get("top1", r.get("test_accuracy"))
    if top1 is None or "macs" not in r:
      continue
    out.append({
        "name": os.path.relpath(os.path.dirname(path), workdir),
        "top1": 100 * top1,
        "macs": r["macs"],
        "params": r.get("params"),
        "latency_ms": r.get("latency_ms"),
        "density": cost_lib.accuracy_density(100 * top1, r["macs"]),
    })
  return out


def run(args: argparse.Namespace, rest) -> int:
  if rest:
    raise GramJaxError(f"{rest[0]}: unknown argument")
  w = args.workdir
  arch_path = os.path.join(w, "arch.json")
  if not os.path.exists(arch_path):
    raise GramJaxError(
        f"--workdir: {w} has no arch.json (finish a search "
        "or a training run there first)"
    )
  spec = arch_lib.ArchSpec.load(arch_path)
  dataset = "digits"
  if os.path.exists(os.path.join(w, "config.json")):
    with open(os.path.join(w, "config.json")) as f:
      dataset = json.load(f).get("dataset", dataset)
  shape = data_lib.info(dataset)[0]
  c = cost_lib.count(spec, shape)
  draw.draw(spec, os.path.join(w, "arch.png"))
  rows = _results(w)
  lines = [
      f"# Report: {w}",
      "",
      (
          f"Architecture `arch.json`: {spec.num_nodes} nodes, "
          f"{spec.num_edges} edges, {c.macs / 1e6:.3f} M MACs and "
          f"{c.params / 1e3:.1f} K parameters at input {shape} "
          f"({dataset}). Drawing: `arch.png`."
      ),
      "",
  ]
  cand = os.path.join(w, "candidates.jsonl")
  if os.path.exists(cand):
    with open(cand) as f:
      recs = [json.loads(l) for l in f if l.strip()]
    if recs:
      best = max(recs, key=lambda r: r["reward"])
      lines += [
          (
              f"Search: {len(recs)} iterations; proxy accuracy mean "
              f"{sum(r['accuracy'] for r in recs) / len(recs):.4f}, best "
              f"reward {best['reward']:.4f} at step {best['step']}; final "
              f"baseline {recs[-1]['baseline']:.4f}."
          ),
          "",
      ]
  if rows:
    lines += [
        (
            "| run | top-1 % | M MACs | K params | density (top-1 %/M MACs)"
            " | latency ms |"
        ),
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
      lat = f"{r['latency_ms']:.3f}" if r.get("latency_ms") else "–"
      params = f"{r['params'] / 1e3:.1f}" if r.get("params") else "–"
      lines.append(
          f"| {r['name']} | {r['top1']:.2f} | {r['macs'] / 1e6:.3f}"
          f" | {params} | {r['density']:.2f} | {lat} |"
      )
    pareto(rows, os.path.join(w, "pareto.png"))
    lines += ["", "Pareto plot: `pareto.png`."]
  else:
    lines += [
        "No trained network found under the workdir yet (train one "
        "with `gram-jax train --arch arch.json --workdir "
        f"{w}/train`)."
    ]
  with open(os.path.join(w, "summary.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))
  return 0
