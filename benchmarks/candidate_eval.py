"""Times one candidate evaluation on the quickstart space.

One evaluation = fresh weights, proxy training (epochs x steps), validation.
The first candidate pays the XLA compilation; later candidates (different
masks) reuse the same programs. Prints one JSON line.

  python benchmarks/candidate_eval.py [--candidates 5] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  pylint: disable=wrong-import-position

import jax  # noqa: E402

from gram_jax import metagraph as mg  # noqa: E402
from gram_jax.search import config as config_lib  # noqa: E402
from gram_jax.search import loop  # noqa: E402

QUICKSTART = common.QUICKSTART


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--candidates", type=int, default=5)
  p.add_argument("--config", default=QUICKSTART)
  args, rest = p.parse_known_args()
  cfg = config_lib.resolve(args.config, rest)
  _, ds, split = loop.search_data(cfg)
  graph = mg.init(
      cfg.space, jax.random.key(cfg.seed), init_weight=cfg.search.init_weight
  )
  t = cfg.train
  c0 = common.compilations()
  t0 = time.perf_counter()
  trainer = loop.proxy_trainer(cfg, graph.ops, ds.num_classes, split)
  times, accs = [], []
  for i in range(args.candidates + 1):
    masks = mg.sample(graph, jax.random.key(100 + i))
    masks.block_until_ready()
    start = time.perf_counter()
    r = trainer(masks, jax.random.key(i))
    times.append(time.perf_counter() - start)
    accs.append(r.accuracy)
  c1 = common.compilations()
  run = times[1:]
  print(
      json.dumps({
          "benchmark": "candidate_eval",
          "first_candidate_s": round(times[0], 3),
          "compile_s": round(c1[1] - c0[1], 3),
          "compilations": c1[0] - c0[0],
          "run_s_median": round(statistics.median(run), 4),
          "run_s_min": round(min(run), 4),
          "run_s_max": round(max(run), 4),
          "candidates_timed": len(run),
          "mean_accuracy": round(statistics.mean(accs), 4),
          "total_s": round(time.perf_counter() - t0, 2),
          "space": cfg.space.to_dict(),
          "train": config_lib.to_dict(t),
          "proxy": {
              "num_train": len(split.x_train),
              "num_val": len(split.x_val),
          },
          "machine": common.machine(),
      })
  )


if __name__ == "__main__":
  main()
