"""Seconds per ShrinkRNN candidate: k candidates vmapped in one program vs
one candidate at a time through the same kind of program.

Builds the RNN proxy evaluator of an autoshrink config (default: the
runlocal config on the synthetic corpus), draws `--rounds` rounds of k
single-edge removals of the complete DAG, and times them with
``rnn.candidates_per_program = 0`` (all k vmapped) and ``= 1`` (a loop).
The first round includes the compilation; the figure to compare is the
steady-state seconds per candidate. Prints one JSON line per mode.

  python benchmarks/rnn_search_throughput.py
  python benchmarks/rnn_search_throughput.py --set rnn.nhid=100 \\
      --set rnn.batch_size=128 --set rnn.bptt=35 --k 10   # paper's proxy
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

from gram_jax.autoshrink import command
from gram_jax.autoshrink import rnn
from gram_jax.autoshrink import rnn_search

RUNLOCAL = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "experiments",
    "configs",
    "autoshrink_rnn_runlocal.py",
)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default=RUNLOCAL)
  p.add_argument("--k", type=int, default=10)
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument(
      "--set",
      action="append",
      default=[],
      help="config override a.b=value (repeatable)",
  )
  p.add_argument("--modes", default="vmap,loop")
  args = p.parse_args()
  over = [f"--config.{s}" for s in args.set]
  for mode in args.modes.split(","):
    per = 0 if mode == "vmap" else 1
    config = command.resolve(
        args.config, over + [f"--config.rnn.candidates_per_program={per}"]
    )
    evaluate, _, n = rnn_search.make_evaluator(config)
    full = rnn.complete_mask(n)
    edges = list(zip(*np.nonzero(full)))
    times = []
    for r in range(args.rounds):
      rng = np.random.default_rng(r)
      pick = rng.choice(len(edges), size=min(args.k, len(edges)), replace=False)
      masks = np.stack([full] * len(pick))
      for c, e in enumerate(pick):
        masks[c][edges[e]] = False
      t0 = time.perf_counter()
      evaluate(masks, jax.random.key(r))
      times.append(time.perf_counter() - t0)
    steady = times[1:] or times
    print(
        json.dumps({
            "mode": mode,
            "k": len(pick),
            "device": jax.devices()[0].device_kind,
            "first_round_s": times[0],
            "seconds_per_candidate": float(np.mean(steady)) / len(pick),
            "rounds": len(times),
            "nhid": evaluate.settings.nhid,
            "epochs": evaluate.settings.epochs,
            "batch_size": evaluate.settings.batch_size,
        })
    )


if __name__ == "__main__":
  main()
