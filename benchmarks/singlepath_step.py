"""Train-step throughput of a Single-Path supernet, and the search time it
implies for a config (synthetic images of the config's shape; no dataset).

  python benchmarks/singlepath_step.py \
      --config experiments/configs/singlepath_runlocal.py
  python benchmarks/singlepath_step.py \
      --config experiments/configs/singlepath_imagenet.py --batch 256

Prints one JSON line: compile seconds, seconds per step (median of
--steps timed steps after one warm-up step), images per second, and the
projected search time ``epochs * steps_per_epoch * sec_per_step`` (per-epoch
evaluation not included). ``--batch`` overrides train.batch_size (ImageNet's
1024 at 224 may not fit one GPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from gram_jax import data as data_lib
from gram_jax.singlepath import config as config_lib
from gram_jax.singlepath import runtime as rt
from gram_jax.singlepath import search


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--config", required=True)
  p.add_argument("--batch", type=int, default=None)
  p.add_argument("--steps", type=int, default=10)
  args, rest = p.parse_known_args()
  c = config_lib.resolve(args.config, rest)
  batch = args.batch or c.train.batch_size
  shape, classes = data_lib.INFO[c.dataset]
  if c.image_size:
    shape = (c.image_size, c.image_size, shape[2])
  n_train = c.num_train_examples or (1437 if c.dataset == "digits" else 0)
  if not n_train:
    raise SystemExit("set --config.num_train_examples for this dataset")
  macro = c.macro.build()
  table = rt.load_table(c.runtime.table, macro, shape, classes)
  train = dataclasses.replace(c.train, epochs=1, batch_size=batch)
  spe = n_train / batch
  progs = search.programs(
      macro,
      classes,
      tuple(shape),
      (
          c.runtime.exact_masks,
          c.runtime.rescale_dropout,
          c.runtime.squared_norm,
      ),
      train,
      spe,
  )
  hyper = search.make_hyper(c.runtime, table, 0)
  key = jax.random.key(0)
  state = progs.init(key)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((batch,) + tuple(shape)), jnp.float32)
  y = jnp.asarray(rng.integers(0, classes, batch), jnp.int32)
  t0 = time.perf_counter()
  state, m = progs.step(state, x, y, jnp.int32(0), key, hyper)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t0
  times = []
  for t in range(1, args.steps + 1):
    t0 = time.perf_counter()
    state, m = progs.step(state, x, y, jnp.int32(t), key, hyper)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t0)
  sec = float(np.median(times))
  steps = int(n_train // batch) * c.train.epochs
  print(
      json.dumps({
          "config": args.config,
          "device": str(jax.devices()[0]),
          "batch": batch,
          "input_shape": list(shape),
          "compile_and_first_step_s": round(compile_s, 2),
          "sec_per_step": round(sec, 5),
          "images_per_s": round(batch / sec, 1),
          "search_steps": steps,
          "projected_search_hours": round(steps * sec / 3600, 3),
      })
  )


if __name__ == "__main__":
  main()
