"""Candidates per second vs K (batched candidates) and vs device count.

  python benchmarks/scaling.py                  # K and device sweeps, tiny space
  python benchmarks/scaling.py --paper-scale    # s per GRAM iteration, paper space

What it measures. One "candidate" = fresh weights, proxy training and
validation of one sub-network (what a GRAM iteration spends its time on).
For each setting the first call (compilation) is excluded and the next
`--repeats` calls are timed; the figure is candidates / second.

  * vs K: K candidates per call, ``loop`` (one after another), ``vmap``
    (one vmapped program) and ``threads`` (the loop's programs from one
    thread per core) on one device.
  * vs seeds (``--seeds``): whole searches (the quickstart config in the
    same small space, ``--seed-iterations`` rounds) with S seeds in one
    run, for each ``batch_candidates`` mode; seconds per candidate from
    `candidates.jsonl`, the first round (compilation) left out. Seeds and
    candidates per round share one batched evaluator, so this adds the
    search's own work (vmapped sampling and updates over S, logging) to
    the K sweep.
  * vs devices: 8 candidates per call, vmapped and sharded (shard_map) over
    1, 2, 4, 8 devices. On a CPU host the devices are fake
    (``--xla_force_host_platform_device_count``) and share the same cores,
    so this measures the overhead of sharding, not a speed-up; on a
    multi-GPU/TPU host they are real devices.

``--paper-scale``: the paper's space (h=3, m=3, n=30, the 5-op table, full
width), 32x32x3 synthetic inputs, a 500-image proxy set, and prints seconds
per GRAM iteration next to the paper's 8.3 GPU-hours per 1000 iterations on
a GTX 1080 (29.9 s per iteration). Run it on a GPU; on a CPU use
``--iterations 1`` as a smoke test only (a full-width 30-node net trains at
about 2 images/s on the project's 2-core CPU).

Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

_DEVICES = 8
if "--paper-scale" not in sys.argv and "XLA_FLAGS" not in os.environ:
  os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={_DEVICES}"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  pylint: disable=wrong-import-position

import jax  # noqa: E402
import numpy as np  # noqa: E402

from gram_jax import metagraph as mg  # noqa: E402
from gram_jax import train as train_lib  # noqa: E402
from gram_jax.scale import batched, distributed  # noqa: E402
from gram_jax.space import PAPER_OPS, SearchSpace  # noqa: E402

PAPER_S_PER_ITER = 8.3 * 3600 / 1000  # SwiftNet Table 2, 1x GTX 1080


def _data(n, shape, classes=10, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, classes, n).astype(np.int32)
  x = rng.normal(size=(n,) + shape).astype(np.float32)
  x += 0.5 * y[:, None, None, None] / classes
  return x, y


def _trainer(space, ops, shape, *, num_train, num_val, epochs, batch):
  x, y = _data(num_train + num_val, shape)
  return train_lib.ProxyTrainer(
      space,
      ops,
      10,
      x_train=x[:num_train],
      y_train=y[:num_train],
      x_val=x[num_train:],
      y_val=y[num_train:],
      epochs=epochs,
      batch_size=batch,
  )


def sweeps(args):
  space = SearchSpace(hierarchies=2, dags_per_hierarchy=2, nodes=6, width=0.25)
  graph = mg.init(space, jax.random.key(0), init_weight=0.5)
  trainer = _trainer(
      space,
      graph.ops,
      (8, 8, 1),
      num_train=args.num_train,
      num_val=100,
      epochs=args.epochs,
      batch=50,
  )
  base = {
      "space": space.to_dict(),
      "epochs": args.epochs,
      "proxy_train": args.num_train,
      "platform": jax.default_backend(),
      "device_kind": jax.devices()[0].device_kind,
  }
  for k in args.k:
    for mode in ("loop", "vmap", "threads"):
      fn = batched.make_evaluator(trainer, mode)
      print(
          json.dumps({
              "sweep": "K",
              "k": k,
              "mode": mode,
              "devices": 1,
              **common.candidates_rate(fn, graph, k, args.repeats),
              **base,
          }),
          flush=True,
      )
  for d in args.devices:
    if d > jax.device_count():
      continue
    fn = batched.make_evaluator(trainer, "vmap", mesh=distributed.make_mesh(d))
    print(
        json.dumps({
            "sweep": "devices",
            "k": 8,
            "mode": "vmap",
            "devices": d,
            "fake_cpu_devices": jax.default_backend() == "cpu",
            **common.candidates_rate(fn, graph, 8, args.repeats),
            **base,
        }),
        flush=True,
    )


def seeds_sweep(args):
  """Seconds per candidate of whole searches with S seeds in one run."""
  import statistics  # pylint: disable=import-outside-toplevel
  import tempfile  # pylint: disable=import-outside-toplevel

  from gram_jax.search import config as config_lib  # pylint: disable=import-outside-toplevel
  from gram_jax.search import loop  # pylint: disable=import-outside-toplevel

  for seeds in args.seeds:
    for mode in ("loop", "vmap", "threads"):
      cfg = config_lib.resolve(
          common.QUICKSTART,
          [
              "--config.space.hierarchies=2",
              "--config.space.dags_per_hierarchy=2",
              "--config.space.nodes=6",
              f"--config.proxy.num_train={args.num_train}",
              "--config.proxy.num_val=100",
              f"--config.train.epochs={args.epochs}",
              f"--config.search.iterations={args.seed_iterations}",
              f"--config.checkpoint_every={args.seed_iterations}",
              f"--config.search.num_seeds={seeds}",
              f"--config.search.batch_candidates={mode}",
          ],
      )
      with tempfile.TemporaryDirectory() as work:
        t0 = time.perf_counter()
        loop.run_search(cfg, work, progress=False)
        total = time.perf_counter() - t0
        per_round = {}
        for d in loop.seed_dirs(cfg, work):
          with open(os.path.join(d, loop.CANDIDATES)) as f:
            for line in f:
              rec = json.loads(line)
              per_round.setdefault(rec["step"], []).append(rec["seconds"])
      steady = [v for t, vals in per_round.items() if t > 0 for v in vals]
      print(
          json.dumps({
              "sweep": "seeds",
              "seeds": seeds,
              "mode": mode,
              "iterations": args.seed_iterations,
              "s_per_candidate_steady": (
                  round(statistics.median(steady), 4) if steady else None
              ),
              "first_round_s_per_candidate": round(
                  statistics.median(per_round[0]), 3
              ),
              "total_s": round(total, 2),
              "epochs": args.epochs,
              "proxy_train": args.num_train,
              "platform": jax.default_backend(),
              "device_kind": jax.devices()[0].device_kind,
          }),
          flush=True,
      )


def paper_scale(args):
  """Seconds per GRAM iteration in the paper's space (one candidate)."""
  from gram_jax import arch as arch_lib  # pylint: disable=import-outside-toplevel
  from gram_jax import cost as cost_lib  # pylint: disable=import-outside-toplevel
  from gram_jax.search.gram import gram  # pylint: disable=import-outside-toplevel

  space = SearchSpace(
      hierarchies=3, dags_per_hierarchy=3, nodes=30, ops=PAPER_OPS, width=1.0
  )
  strategy = gram()
  state = strategy.init(
      mg.init(space, jax.random.key(0), init_weight=0.5), jax.random.key(0)
  )
  trainer = _trainer(
      space,
      state.graph.ops,
      (32, 32, 3),
      num_train=500,
      num_val=args.num_val,
      epochs=args.epochs,
      batch=50,
  )
  sample, update = jax.jit(strategy.sample), jax.jit(strategy.update)
  times = []
  for t in range(args.iterations + 1):
    t0 = time.perf_counter()
    masks = sample(state, jax.random.key(t))
    spec = arch_lib.from_masks(space, state.graph.ops, masks, num_classes=10)
    macs = cost_lib.count(spec, (32, 32, 3)).macs
    r = trainer(masks, jax.random.key(10_000 + t))
    state = update(state, masks, r.accuracy - 0.1 * (np.log10(macs) - 6))
    jax.block_until_ready(state)
    times.append(time.perf_counter() - t0)
    print(
        json.dumps({
            "iteration": t,
            "seconds": round(times[-1], 2),
            "includes_compile": t == 0,
            "macs": macs,
        }),
        flush=True,
    )
  run = times[1:] or times
  s_iter = float(np.median(run))
  print(
      json.dumps({
          "benchmark": "paper_scale",
          "s_per_iteration": round(s_iter, 2),
          "hours_per_1000_iterations": round(s_iter * 1000 / 3600, 2),
          "paper_gpu_hours_per_1000": 8.3,
          "paper_s_per_iteration": round(PAPER_S_PER_ITER, 1),
          "first_iteration_s": round(times[0], 1),
          "epochs": args.epochs,
          "proxy_train": 500,
          "proxy_val": args.num_val,
          "input": [32, 32, 3],
          "space": space.to_dict(),
          "machine": common.machine(),
      }),
      flush=True,
  )


def main():
  p = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawTextHelpFormatter
  )
  p.add_argument("--k", type=int, nargs="*", default=[1, 2, 4, 8])
  p.add_argument("--devices", type=int, nargs="*", default=[1, 2, 4, 8])
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument(
      "--seeds",
      type=int,
      nargs="*",
      default=[1, 2, 4],
      help="seed counts of the whole-search sweep (none: skip it)",
  )
  p.add_argument("--seed-iterations", type=int, default=3)
  p.add_argument(
      "--epochs",
      type=int,
      default=None,
      help="proxy epochs (default 2; paper scale 10)",
  )
  p.add_argument("--num-train", type=int, default=200)
  p.add_argument("--paper-scale", action="store_true")
  p.add_argument(
      "--iterations",
      type=int,
      default=3,
      help="paper scale: timed iterations after the first",
  )
  p.add_argument(
      "--num-val", type=int, default=1000, help="paper scale: validation images"
  )
  args = p.parse_args()
  if args.paper_scale:
    args.epochs = args.epochs or 10
    paper_scale(args)
  else:
    args.epochs = args.epochs or 2
    sweeps(args)
    seeds_sweep(args)


if __name__ == "__main__":
  main()
