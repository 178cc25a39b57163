"""Seconds per GRAM candidate: gram_jax vs a straightforward PyTorch loop.

Runs N iterations of the quickstart search with `gram_jax` (compile time
included, amortised over N), counts XLA compilations, and measures the
machine's float32 matmul FLOP/s in the same run. Two FLOP rates are
reported: ``useful_gflops`` counts only the exact sub-networks' work (the
analytic, padding-aware MACs of each sampled candidate's convolutions and
classifier: 2 FLOPs per MAC, forward + backward = 3 forwards per training
image, 1 forward per validation image), what a perfect engine would have to
compute; ``supernet_gflops`` is XLA's cost analysis of the compiled steps
(dead nodes and padded channels included). Then, unless
--no-torch, trains exactly the same N sampled sub-networks (decoded from
candidates.jsonl) with the PyTorch baseline of `torch_baseline.py` (eager,
one exact nn.Module per candidate, same data and settings; on the CPU, or
on the GPU when JAX runs on one) and reports the ratio. Prints one JSON line.

`--compilation-cache` says what the XLA programs come from: ``off`` (the
default: every program compiled in the run, as a first search ever does),
or ``warm``: JAX's persistent cache, which `gram-jax` commands turn on by
default, filled by a one-iteration search of the same config in a fresh
directory first and then read by the measured run (what a repeated search,
a resumed one or a sweep worker pays). ``xla_compilations`` counts the
programs a run obtains and ``xla_compile_s`` the time that took, compiled
or read from the cache alike (JAX times both as one event); programs that
compile in under 0.5 s are not stored and compile again.

  python benchmarks/search_throughput.py --iterations 30
  python benchmarks/search_throughput.py --iterations 30 --compilation-cache warm
  (torch: pip install -e ".[bench]", on this machine torch==2.13.0)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  pylint: disable=wrong-import-position

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from gram_jax import arch as arch_lib  # noqa: E402
from gram_jax import cost as cost_lib  # noqa: E402
from gram_jax.search import config as config_lib  # noqa: E402
from gram_jax.search import loop  # noqa: E402

QUICKSTART = common.QUICKSTART


def _flops_per_candidate(cfg, ops, split, num_classes):
  """XLA's FLOP count of one candidate's training and validation."""
  t = cfg.train
  trainer = loop.proxy_trainer(cfg, ops, num_classes, split)
  masks = jnp.ones((cfg.space.num_dags, cfg.space.nodes, cfg.space.nodes), bool)
  variables, opt_state = trainer.jit_init(jax.random.key(0), masks)
  idx = np.arange(t.batch_size)
  step = trainer.jit_step.lower(
      variables, opt_state, trainer.x_train, trainer.y_train, idx, masks
  ).cost_analysis()
  eidx = np.arange(trainer.eval_batch_size)
  ev = trainer.jit_eval.lower(
      variables,
      trainer.x_val,
      trainer.y_val,
      eidx,
      np.ones(len(eidx), np.float32),
      masks,
  ).cost_analysis()
  evals = t.epochs if t.select == "best" else 1
  chunks = -(-len(split.x_val) // trainer.eval_batch_size)
  return (
      step["flops"] * trainer.steps_per_epoch * t.epochs
      + ev["flops"] * chunks * evals
  )


def _useful_flops(
    cfg, ops, records, input_shape, num_classes, train_size, val_size
):
  """Mean exact-sub-network FLOPs of one candidate's proxy training."""
  t = cfg.train
  steps = train_size // t.batch_size
  evals = t.epochs if t.select == "best" else 1
  images = 3 * steps * t.batch_size * t.epochs + val_size * evals
  total = 0
  for rec in records:
    masks = loop.decode_edges(rec["edges"], cfg.space.nodes)
    spec = arch_lib.from_masks(cfg.space, ops, masks, num_classes=num_classes)
    macs = cost_lib.count(spec, input_shape, padding_aware=True).macs
    total += 2 * macs * images
  return total / max(len(records), 1)


def _peak_memory():
  """Peak resident host memory (MiB) and, where reported, device memory."""
  import resource  # pylint: disable=import-outside-toplevel

  out = {
      "peak_host_rss_mib": round(
          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
      )
  }
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    out["peak_device_mib"] = round(stats["peak_bytes_in_use"] / 2**20, 1)
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--iterations", type=int, default=30)
  p.add_argument("--config", default=QUICKSTART)
  p.add_argument("--no-torch", action="store_true")
  p.add_argument(
      "--torch-candidates",
      type=int,
      default=None,
      help="train only the first K candidates with PyTorch",
  )
  p.add_argument(
      "--torch-device",
      default="auto",
      help="cpu, cuda, or auto: cuda when JAX runs on a GPU and torch sees one",
  )
  p.add_argument(
      "--compilation-cache",
      choices=("off", "warm"),
      default="off",
      help="off: compile everything; warm: read a filled persistent cache",
  )
  args, rest = p.parse_known_args()
  cache_dir = None
  if args.compilation_cache == "warm":
    from gram_jax import cli  # pylint: disable=import-outside-toplevel

    cache_dir = tempfile.mkdtemp(prefix="gram_jax_xla_")
    cli.enable_compilation_cache(cache_dir)
    warm_cfg = config_lib.resolve(
        args.config,
        rest + ["--config.search.iterations=1", "--config.checkpoint_every=1"],
    )
    with tempfile.TemporaryDirectory() as work:
      loop.run_search(warm_cfg, work, progress=False)
    jax.clear_caches()  # the measured run reads the persistent cache
  cfg = config_lib.resolve(
      args.config,
      rest
      + [
          f"--config.search.iterations={args.iterations}",
          f"--config.checkpoint_every={args.iterations}",
      ],
  )
  matmul = common.matmul_flops()
  c0 = common.compilations()
  with tempfile.TemporaryDirectory() as work:
    t0 = time.perf_counter()
    result = loop.run_search(cfg, work, progress=False)
    jax_s = time.perf_counter() - t0
    records = result.records
  c1 = common.compilations()
  _, ds, split = loop.search_data(cfg)
  flops = _flops_per_candidate(
      cfg, result.state.graph.ops, split, ds.num_classes
  )
  per_cand = jax_s / args.iterations
  useful = _useful_flops(
      cfg,
      np.asarray(result.state.graph.ops),
      records,
      tuple(ds.image_shape),
      ds.num_classes,
      len(split.x_train),
      len(split.x_val),
  )
  compile_s = c1[1] - c0[1]
  out = {
      "benchmark": "search_throughput",
      "iterations": args.iterations,
      "jax_seconds_per_candidate": round(per_cand, 4),
      "jax_total_s": round(jax_s, 2),
      "jax_steady_s_median": (
          round(statistics.median(r["seconds"] for r in records[1:]), 4)
          if len(records) > 1
          else None
      ),
      "compilation_cache": args.compilation_cache,
      "xla_compilations": c1[0] - c0[0],
      "xla_compile_s": round(compile_s, 2),
      "jax_seconds_per_candidate_excl_compile": round(
          (jax_s - compile_s) / args.iterations, 4
      ),
      "useful_flops_per_candidate": int(useful),
      "useful_gflops": round(useful / per_cand / 1e9, 3),
      "useful_fraction_of_matmul": round(useful / per_cand / matmul, 4),
      "supernet_flops_per_candidate": flops,
      "supernet_gflops": round(flops / per_cand / 1e9, 3),
      "matmul_gflops": round(matmul / 1e9, 2),
      "mean_accuracy": round(
          statistics.mean(r["accuracy"] for r in records), 4
      ),
      "space": cfg.space.to_dict(),
      "train": config_lib.to_dict(cfg.train),
      "proxy": {"num_train": cfg.proxy.num_train, "num_val": cfg.proxy.num_val},
      "machine": common.machine(),
  }
  out.update(_peak_memory())
  if not args.no_torch:
    import torch  # pylint: disable=import-outside-toplevel
    import torch_baseline  # pylint: disable=import-outside-toplevel

    device = common.torch_device(torch, args.torch_device)
    ops = np.asarray(result.state.graph.ops)
    chosen = records[: args.torch_candidates or len(records)]
    secs, accs = [], []
    t = cfg.train
    for i, rec in enumerate(chosen):
      masks = loop.decode_edges(rec["edges"], cfg.space.nodes)
      spec = arch_lib.from_masks(
          cfg.space, ops, masks, num_classes=ds.num_classes
      )
      r = torch_baseline.train_candidate(
          spec,
          split.x_train,
          split.y_train,
          split.x_val,
          split.y_val,
          epochs=t.epochs,
          batch_size=t.batch_size,
          learning_rate=t.learning_rate,
          seed=i,
          device=device,
          schedule=t.schedule,
      )
      secs.append(r["seconds"])
      accs.append(r["accuracy"])
    torch_per = statistics.mean(secs)
    out.update({
        "torch_seconds_per_candidate": round(torch_per, 4),
        "torch_candidates": len(secs),
        "torch_mean_accuracy": round(statistics.mean(accs), 4),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_device": device,
        "speedup_vs_torch": round(torch_per / per_cand, 2),
    })
  print(json.dumps(out))
  if cache_dir:
    shutil.rmtree(cache_dir, ignore_errors=True)


if __name__ == "__main__":
  main()
