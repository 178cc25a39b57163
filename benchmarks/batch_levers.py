"""Two ways to run several candidates at once on the CPU, measured side by side.

  python benchmarks/batch_levers.py [--candidates 4] [--repeats 3] [--k 8]

One process, the quickstart space (2 hierarchies x 3 DAGs x 8 nodes, width
0.25, the paper's ops, 8x8x1 inputs, batch 50), synthetic data, compile
excluded. Prints one JSON line per measurement:

  * ``threads``: `--candidates` proxy trainings one after another, then the
    same trainings from two Python threads at once (XLA releases the GIL
    while it runs). If XLA left a core idle, two at once would be up to 2x
    faster. ``identical`` checks that the results do not change.
  * ``conv``: candidates per second of the loop (one after another) and of
    `vmap` over `--k` candidates, with XLA's convolution and with the
    convolution written as patches + `dot_general`, so that a batch of
    candidates is a batched matmul rather than a grouped convolution. The
    patches convolution is swapped in for `flax.linen.Conv` for this
    measurement only (same parameters and outputs to float rounding; the
    script checks that first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  pylint: disable=wrong-import-position

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from gram_jax import metagraph as mg  # noqa: E402
from gram_jax import train as train_lib  # noqa: E402
from gram_jax.scale import batched  # noqa: E402
from gram_jax.space import PAPER_OPS, SearchSpace  # noqa: E402

XLA_CONV = nn.Conv


class PatchConv(nn.Module):
  """``nn.Conv`` (SAME, no bias) as shifted slices + one `dot_general`."""

  features: int
  kernel_size: tuple
  strides: tuple = (1, 1)
  padding: str = "SAME"
  use_bias: bool = False
  kernel_init: object = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel_size
    s = self.strides[0]
    cin = x.shape[-1]
    kernel = self.param(
        "kernel", self.kernel_init, (kh, kw, cin, self.features)
    )
    dims = (((3,), (0,)), ((), ()))
    if kh == kw == 1 and s == 1:
      return lax.dot_general(x, kernel[0, 0], dims)
    _, h, w, _ = x.shape
    ho, wo = -(-h // s), -(-w // s)
    ph, pw = max((ho - 1) * s + kh - h, 0), max((wo - 1) * s + kw - w, 0)
    xp = jnp.pad(
        x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0))
    )
    cols = [
        xp[:, i : i + (ho - 1) * s + 1 : s, j : j + (wo - 1) * s + 1 : s, :]
        for i in range(kh)
        for j in range(kw)
    ]
    return lax.dot_general(
        jnp.concatenate(cols, axis=-1),
        kernel.reshape(kh * kw * cin, self.features),
        dims,
    )


def _check_patch_conv():
  x = jax.random.normal(jax.random.key(0), (4, 7, 7, 5))
  worst = 0.0
  for k, s in ((1, 1), (3, 1), (3, 2), (5, 1)):
    a = XLA_CONV(6, (k, k), strides=(s, s), padding="SAME", use_bias=False)
    b = PatchConv(6, (k, k), strides=(s, s))
    v = a.init(jax.random.key(1), x)
    worst = max(worst, float(jnp.max(jnp.abs(a.apply(v, x) - b.apply(v, x)))))
  if worst > 1e-4:
    raise SystemExit(f"PatchConv differs from nn.Conv by {worst}")
  return worst


def _setup(num_train):
  space = SearchSpace(
      hierarchies=2, dags_per_hierarchy=3, nodes=8, width=0.25, ops=PAPER_OPS
  )
  graph = mg.init(space, jax.random.key(0), init_weight=0.5)
  rng = np.random.default_rng(0)
  n = num_train + 300
  y = rng.integers(0, 10, n).astype(np.int32)
  x = rng.normal(size=(n, 8, 8, 1)).astype(np.float32)
  x += 0.5 * y[:, None, None, None] / 10
  trainer = train_lib.ProxyTrainer(
      space,
      graph.ops,
      10,
      x_train=x[:num_train],
      y_train=y[:num_train],
      x_val=x[num_train:],
      y_val=y[num_train:],
      epochs=4,
      batch_size=50,
  )
  return space, graph, trainer


def threads(args):
  _, graph, trainer = _setup(500)

  def masks(i):
    return np.asarray(mg.sample(graph, jax.random.key(1000 + i)))

  def one(i):
    return trainer(masks(i), jax.random.key(i))

  one(0)  # compile
  pool = ThreadPoolExecutor(2)
  for _ in range(args.repeats):
    t = time.perf_counter()
    seq = [one(i) for i in range(args.candidates)]
    t_seq = time.perf_counter() - t
    t = time.perf_counter()
    par = list(pool.map(one, range(args.candidates)))
    t_par = time.perf_counter() - t
    print(
        json.dumps({
            "lever": "threads",
            "candidates": args.candidates,
            "sequential_s_per_candidate": round(t_seq / args.candidates, 3),
            "two_threads_s_per_candidate": round(t_par / args.candidates, 3),
            "speedup": round(t_seq / t_par, 3),
            "identical": all(
                a.accuracy == b.accuracy for a, b in zip(seq, par)
            ),
            "machine": common.machine(),
        }),
        flush=True,
    )


def convs(args):
  worst = _check_patch_conv()
  for impl in ("xla", "patches"):
    nn.Conv = PatchConv if impl == "patches" else XLA_CONV
    try:
      _, graph, trainer = _setup(200)
      for k in (1, args.k):
        for mode in ("loop", "vmap"):
          rate = common.candidates_rate(
              batched.make_evaluator(trainer, mode), graph, k, args.repeats
          )["candidates_per_s"]
          print(
              json.dumps({
                  "lever": "conv",
                  "conv": impl,
                  "k": k,
                  "mode": mode,
                  "candidates_per_s": rate,
                  "patch_conv_max_abs_diff": worst,
              }),
              flush=True,
          )
    finally:
      nn.Conv = XLA_CONV


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--candidates", type=int, default=4)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--k", type=int, default=8)
  p.add_argument("--only", choices=("threads", "conv"), default=None)
  args = p.parse_args()
  if args.only in (None, "threads"):
    threads(args)
  if args.only in (None, "conv"):
    convs(args)


if __name__ == "__main__":
  main()
