"""Depthwise convolution on this backend: grouped conv vs shifted sums.

`gram_jax.depthwise.depthwise_conv` lowers a depthwise layer either as
``lax.conv_general_dilated(feature_group_count=C)`` ("conv") or as the sum
of k x k shifted, scaled copies of the input ("shift"); ``auto`` takes
"shift" on the CPU. This times both, side by side in one process:

1. one layer's forward and backward (the gradient of a squared sum) at
   MobileNetV2's depthwise sizes for 28x28 inputs, batch `--batch`;
2. a whole jitted training step (momentum SGD, L2, batch `--batch`, 28x28x1,
   the Fashion-MNIST comparison's) of each of `--models`.

Prints one JSON line per measurement, with the max difference between the
two lowerings' outputs (layers) or losses after the timed steps (models).

  python benchmarks/depthwise.py [--models mobilenet_v2@0.35,fbnet_96_035_1]
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
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from gram_jax import train as train_lib  # noqa: E402
from gram_jax.depthwise import depthwise_conv, depthwise_impl  # noqa: E402
from gram_jax.models import registry  # noqa: E402

# (resolution, channels, kernel, stride): MobileNetV2-1.0's depthwise layers
# at 28x28 input (two of each size), plus a 5x5 one.
LAYERS = (
    (14, 96, 3, 2),
    (7, 144, 3, 1),
    (4, 192, 3, 1),
    (2, 384, 3, 1),
    (2, 576, 3, 1),
    (1, 960, 3, 1),
    (14, 96, 5, 1),
)


def _time(fn, *args, repeats):
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t)
  return best


def _layers(batch, repeats):
  for h, c, k, s in LAYERS:
    x = jax.random.normal(jax.random.key(0), (batch, h, h, c))
    w = jax.random.normal(jax.random.key(1), (k, k, 1, c))
    row, outs = {"layer": f"{h}x{h}x{c} k{k}/{s}"}, {}
    for impl in ("conv", "shift"):
      with depthwise_impl(impl):
        grad = jax.jit(
            jax.grad(lambda x, w: jnp.sum(depthwise_conv(x, w, s) ** 2), (0, 1))
        )
        outs[impl] = jax.jit(lambda x, w: depthwise_conv(x, w, s))(x, w)
        row[f"{impl}_ms"] = round(1e3 * _time(grad, x, w, repeats=repeats), 2)
    row["speedup"] = round(row["conv_ms"] / row["shift_ms"], 2)
    row["max_abs_diff"] = float(jnp.max(jnp.abs(outs["conv"] - outs["shift"])))
    print(json.dumps(row), flush=True)


def _models(names, batch, steps):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((batch, 28, 28, 1)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 10, batch), jnp.int32)
  tx = train_lib.make_optimizer("momentum", 0.05)
  for name in names:
    model, _, w = name.partition("@")
    net = registry.build(model, num_classes=10, width=float(w or 1.0))
    variables = jax.jit(net.init)(jax.random.key(0), x[:1])
    row, losses = {"model": name}, {}
    for impl in ("conv", "shift"):
      with depthwise_impl(impl):
        step = jax.jit(
            train_lib.make_train_step(net.apply, tx, weight_decay=5e-4)
        )
        v, o = variables, tx.init(variables["params"])
        t0 = time.perf_counter()
        v, o, loss = step(v, o, x, y)
        row[f"{impl}_compile_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        for _ in range(steps):
          v, o, loss = step(v, o, x, y)
        loss.block_until_ready()
        row[f"{impl}_step_s"] = round((time.perf_counter() - t0) / steps, 4)
        losses[impl] = float(loss)
    row["speedup"] = round(row["conv_step_s"] / row["shift_step_s"], 2)
    row["last_loss_diff"] = abs(losses["conv"] - losses["shift"])
    print(json.dumps(row), flush=True)


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument(
      "--models",
      default="mobilenet_v2@0.35,mobilenet_v2@1.0,fbnet_96_035_1",
      help="comma-separated registry names (name@width); '' for none",
  )
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--repeats", type=int, default=5)
  args = p.parse_args()
  print(json.dumps({"machine": common.machine()}), flush=True)
  _layers(args.batch, args.repeats)
  _models([m for m in args.models.split(",") if m], args.batch, args.steps)


if __name__ == "__main__":
  main()
