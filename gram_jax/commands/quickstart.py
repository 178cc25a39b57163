"""`gram-jax quickstart`: the README's first command.

Runs the quickstart GRAM search on the embedded digits data (resuming an
existing workdir), then trains the found architecture on the whole digits
training split and reports its test accuracy, MACs and parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import gram_jax
from gram_jax import cost as cost_lib
from gram_jax import data as data_lib
from gram_jax import io
from gram_jax import run as run_lib
from gram_jax.errors import GramJaxError
from gram_jax.search import config as config_lib
from gram_jax.search import loop

# Inside the package, so that an installed wheel finds it too.
DEFAULT_CONFIG = os.path.join(
    os.path.dirname(os.path.abspath(gram_jax.__file__)),
    "configs",
    "quickstart.py",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
  run_lib.add_arguments(parser, required=False, default="runs/quickstart")
  parser.add_argument(
      "--config",
      default=DEFAULT_CONFIG,
      help=(
          "default: gram_jax/configs/quickstart.py (the "
          "same as experiments/configs/quickstart.py)"
      ),
  )


def run(args: argparse.Namespace, rest) -> int:
  if not os.path.exists(args.config.rsplit(":", 1)[0]):
    raise GramJaxError(
        f"--config: {args.config} not found; allowed: a "
        "config file, e.g. experiments/configs/quickstart.py"
    )
  config = config_lib.resolve(args.config, rest)
  t0 = time.time()
  result = loop.run_search(config, args.workdir, progress=not args.no_progress)
  search_s = time.time() - t0
  spec = result.spec
  final_dir = os.path.join(args.workdir, "final")
  done = os.path.join(final_dir, "result.json")
  if os.path.exists(done) and os.path.isdir(
      os.path.join(final_dir, "checkpoint")
  ):
    with open(done) as fh:
      summary = json.load(fh)
    print(json.dumps(summary, indent=1))
    print(
        f"\nAlready finished (delete {final_dir} to train again): test "
        f"accuracy {100 * summary['test_accuracy']:.2f}%, "
        f"{summary['macs'] / 1e6:.3f} M MACs, "
        f"{summary['params'] / 1e3:.1f} K parameters."
    )
    return 0
  ds = data_lib.load(
      config.dataset, data_dir=config.data_dir or None, seed=config.seed
  )
  t1 = time.time()
  fitted = loop.fit_final(
      config,
      spec,
      ds,
      seed=config.seed,
      progress=not args.no_progress,
      desc="train found network",
  )
  train_s = time.time() - t1
  c = cost_lib.count(spec, ds.image_shape)
  os.makedirs(final_dir, exist_ok=True)
  ckpt = os.path.join(final_dir, "checkpoint")
  if os.path.exists(ckpt):
    import shutil  # pylint: disable=import-outside-toplevel

    shutil.rmtree(ckpt)
  io.save_variables(ckpt, fitted.variables)
  summary = {
      "dataset": config.dataset,
      "train_examples": int(len(ds.x_train)),
      "test_examples": int(len(ds.x_test)),
      "test_accuracy": fitted.test_accuracy,
      "test_top5": fitted.test_top5,
      "macs": c.macs,
      "params": c.params,
      "nodes": spec.num_nodes,
      "edges": spec.num_edges,
      "search_iterations": config.search.iterations,
      "search_seconds_this_call": round(search_s, 1),
      "train_seconds": round(train_s, 1),
      "arch": os.path.join(args.workdir, loop.ARCH),
      "checkpoint": ckpt,
  }
  io.write_json_atomic(os.path.join(final_dir, "result.json"), summary)
  print(json.dumps(summary, indent=1))
  print(
      "\nFound network on digits: test accuracy "
      f"{100 * fitted.test_accuracy:.2f}%, {c.macs / 1e6:.3f} M MACs, "
      f"{c.params / 1e3:.1f} K parameters ({spec.num_nodes} nodes, "
      f"{spec.num_edges} edges)."
  )
  return 0
