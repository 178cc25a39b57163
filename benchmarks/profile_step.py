"""Where the time of one supernet train step goes, per kind of XLA op.

Builds the `ProxyTrainer` of a search config (quickstart by default), takes
one sampled candidate, runs `--steps` train steps under `jax.profiler`, and
sums the durations of the executed XLA ops (thunks) per category:

  conv fwd / conv bwd   convolutions and their gradients (XLA convs, the
                        YNNPACK/XNNPACK fusions that implement them, dots)
  layout copies         transposes and copies XLA inserts around convs
  batch norm fwd / bwd  the BN statistics, normalisation and their gradients
  elu                   the activation and its gradient
  edges (pad, mask, sum) per-edge masks, channel padding, aggregation
  pool                  2x2 max/avg pooling and its gradient
  optimizer + loss      everything outside the network (Adam, softmax CE)

and reports each category's milliseconds per step next to the wall time
per step. Op times are summed over XLA's worker threads, so on a 2-core
machine their total may exceed the wall time; the difference between wall
time and the busiest thread is host work (dispatch, argument handling).
Prints one JSON line.

  python benchmarks/profile_step.py
  python benchmarks/profile_step.py --config experiments/configs/quickstart.py --steps 20
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  pylint: disable=wrong-import-position

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax._src.profiler import ProfileData  # noqa: E402  pylint: disable=protected-access

from gram_jax import metagraph as mg  # noqa: E402
from gram_jax.search import config as config_lib  # noqa: E402
from gram_jax.search import loop  # noqa: E402

QUICKSTART = common.QUICKSTART

_INSTR = re.compile(
    r"^\s*(?:ROOT )?%?([\w.\-]+) = .*?(?:calls=%?([\w.\-]+))?"
    r"(?:, metadata=\{op_name=\"([^\"]*)\")?",
    re.M,
)


def _op_names(hlo: str):
  """HLO instruction name -> the JAX op path of its metadata (or of the
  first op of the computation it calls)."""
  comps, current = {}, None
  for line in hlo.splitlines():
    head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
    if head:
      current = head.group(1)
      continue
    m = re.search(r'op_name="([^"]*)"', line)
    if current and m and current not in comps:
      comps[current] = m.group(1)
  names = {}
  for line in hlo.splitlines():
    m = re.match(r"^\s*(?:ROOT )?%?([\w.\-]+) = ", line)
    if not m:
      continue
    op = re.search(r'op_name="([^"]*)"', line)
    call = re.search(r"calls=%?([\w.\-]+)", line)
    path = op.group(1) if op else comps.get(call.group(1), "") if call else ""
    names[m.group(1)] = (path, line)
  return names


def categorise(name: str, path: str, line: str) -> str:
  """The breakdown category of one executed op."""
  backward = "transpose(" in path
  if (
      "conv_general_dilated" in path
      or "dot_general" in path
      or "ynn_fusion" in name
      or "convolution" in line.split("=")[1][:80]
  ):
    if name.startswith(("transpose", "copy")) and "ynn" not in name:
      return "layout copies"
    return "conv bwd" if backward else "conv fwd"
  if (
      "reduce-window" in name
      or "reduce_window" in path
      or "iota" in name
      or "max_pool" in path
      or "avg_pool" in path
  ):
    return "pool"
  if name.startswith(("transpose", "copy")):
    return "layout copies"
  if "/bn/" in path:
    return "batch norm bwd" if backward else "batch norm fwd"
  if "elu" in path:
    return "elu"
  if "Supernet" in path or "Net)" in path:
    return "edges (pad, mask, sum)"
  if path:
    return "optimizer + loss"
  return "other"


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--config", default=QUICKSTART)
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--seed", type=int, default=3, help="candidate seed")
  args, rest = p.parse_known_args()
  cfg = config_lib.resolve(args.config, rest)
  _, ds, split = loop.search_data(cfg)
  graph = mg.init(
      cfg.space,
      jax.random.fold_in(jax.random.key(cfg.seed), 0),
      init_weight=cfg.search.init_weight,
  )
  t = cfg.train
  trainer = loop.proxy_trainer(cfg, graph.ops, ds.num_classes, split)
  masks = mg.sample(graph, jax.random.key(args.seed))
  variables, opt_state = trainer.jit_init(jax.random.key(0), masks)
  idx = np.arange(t.batch_size)
  step = trainer.jit_step
  for _ in range(3):
    variables, opt_state, loss = step(
        variables, opt_state, trainer.x_train, trainer.y_train, idx, masks
    )
  jax.block_until_ready(loss)
  hlo = (
      step.lower(
          variables, opt_state, trainer.x_train, trainer.y_train, idx, masks
      )
      .compile()
      .as_text()
  )
  names = _op_names(hlo)
  with tempfile.TemporaryDirectory() as d:
    jax.profiler.start_trace(d)
    t0 = time.perf_counter()
    for _ in range(args.steps):
      variables, opt_state, loss = step(
          variables, opt_state, trainer.x_train, trainer.y_train, idx, masks
      )
    jax.block_until_ready(loss)
    wall = (time.perf_counter() - t0) / args.steps
    jax.profiler.stop_trace()
    path = sorted(
        glob.glob(os.path.join(d, "**", "*.xplane.pb"), recursive=True)
    )[-1]
    data = ProfileData.from_file(path)
  per_cat = collections.Counter()
  per_thread = []
  for plane in data.planes:
    if plane.name != "/host:CPU":
      continue
    for ln in plane.lines:
      if ln.name == "python":
        continue
      busy = 0
      for ev in ln.events:
        if ev.name.startswith("ThunkExecutor") or ev.name not in names:
          continue
        hpath, line = names[ev.name]
        per_cat[categorise(ev.name, hpath, line)] += ev.duration_ns
        busy += ev.duration_ns
      per_thread.append(busy)
  ms = {k: round(v / 1e6 / args.steps, 3) for k, v in per_cat.most_common()}
  total = sum(per_cat.values()) / 1e6 / args.steps
  print(
      json.dumps({
          "benchmark": "profile_step",
          "config": os.path.basename(args.config),
          "steps": args.steps,
          "wall_ms_per_step": round(wall * 1e3, 3),
          "op_ms_per_step": ms,
          "op_ms_total": round(total, 3),
          "busiest_thread_ms": round(max(per_thread) / 1e6 / args.steps, 3),
          "hlo_convolutions": hlo.count(" convolution("),
          "hlo_fusions": len(re.findall(r" fusion\(", hlo)),
          "machine": common.machine(),
      })
  )


if __name__ == "__main__":
  main()
