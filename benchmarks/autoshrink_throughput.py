"""Seconds per AutoShrink CNN candidate: serial vs vmapped evaluation.

Builds the CNN evaluator of an autoshrink config twice (``cnn.vmap`` false
and true), compiles each once on a warm-up round (the compile time is
reported separately, from JAX's compile events), then evaluates the same
rounds of candidates with both and reports steady-state seconds per
candidate and the largest accuracy difference between the two paths. One
JSON line.

  python benchmarks/autoshrink_throughput.py --rounds 3
  python benchmarks/autoshrink_throughput.py --rounds 3 \
      --config experiments/configs/autoshrink_cnn.py   # CIFAR-10 (TFDS)

Compare ``seconds_per_candidate`` with ``jax_seconds_per_candidate`` of
benchmarks/search_throughput.py on the same, otherwise idle machine (both
train one candidate from scratch on a digits proxy; the networks differ).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  pylint: disable=wrong-import-position

import jax  # noqa: E402
import numpy as np  # noqa: E402

from gram_jax.autoshrink import cnn_search  # noqa: E402
from gram_jax.autoshrink import command  # noqa: E402
from gram_jax.autoshrink import strategy as st  # noqa: E402

RUNLOCAL = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "experiments",
    "configs",
    "autoshrink_cnn_runlocal.py",
)


def _rounds(num_nodes, k, rounds, key):
  """A fixed sequence of proposals (scores: fewer MACs-like = more edges
  removed from the end), the same for both paths."""
  s = st.autoshrink(k=k, keep_fraction=0.0)
  state = s.init(num_nodes)
  out = []
  for _ in range(rounds + 1):
    p = s.propose(state, key)
    out.append(p.masks)
    state = s.update(state, p, [-float(m.sum()) for m in p.masks])
  return out


def _measure(config, proposals, key):
  c0 = common.compilations()
  evaluator, _, _ = cnn_search.make_evaluator(config)
  t0 = time.perf_counter()
  evaluator(proposals[0], key)  # warm-up: compiles
  first = time.perf_counter() - t0
  c1 = common.compilations()
  t0 = time.perf_counter()
  results, count = [], 0
  for r, masks in enumerate(proposals[1:]):
    results.extend(evaluator(masks, jax.random.fold_in(key, r)))
    count += len(masks)
  steady = time.perf_counter() - t0
  return {
      "seconds_per_candidate": round(steady / count, 4),
      "candidates": count,
      "warmup_round_s": round(first, 2),
      "xla_compilations": c1[0] - c0[0],
      "xla_compile_s": round(c1[1] - c0[1], 2),
      "mean_accuracy": round(float(np.mean([r["acc"] for r in results])), 4),
  }, results


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--config", default=RUNLOCAL)
  p.add_argument(
      "--rounds",
      type=int,
      default=3,
      help="timed rounds (after one warm-up round)",
  )
  args, rest = p.parse_known_args()
  base = command.resolve(args.config, rest)
  if base["kind"] != "cnn":
    raise SystemExit("this benchmark measures kind = cnn configs")
  key = jax.random.key(0)
  proposals = _rounds(
      base["cnn"]["nodes"], base["search"]["k"], args.rounds, key
  )
  out = {
      "benchmark": "autoshrink_throughput",
      "rounds": args.rounds,
      "k": base["search"]["k"],
      "cnn": {
          k: base["cnn"][k]
          for k in (
              "dataset",
              "nodes",
              "base_filters",
              "scales",
              "stem_channels",
          )
      },
      "train": base["cnn"]["train"],
      "proxy": base["cnn"]["proxy"],
  }
  results = {}
  for mode in ("serial", "vmap"):
    cfg = json.loads(json.dumps(base))
    cfg["cnn"]["vmap"] = mode == "vmap"
    out[mode], results[mode] = _measure(cfg, proposals, key)
  out["max_abs_acc_difference"] = round(
      max(
          abs(a["acc"] - b["acc"])
          for a, b in zip(results["serial"], results["vmap"])
      ),
      4,
  )
  out["vmap_speedup"] = round(
      out["serial"]["seconds_per_candidate"]
      / out["vmap"]["seconds_per_candidate"],
      3,
  )
  out["faster"] = "vmap" if out["vmap_speedup"] > 1 else "serial"
  out["machine"] = common.machine()
  print(json.dumps(out))


if __name__ == "__main__":
  main()
