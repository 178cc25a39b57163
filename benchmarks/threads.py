"""Host latency of a found SwiftNet at 1, 2 and 4 LiteRT threads.

The paper reports about 2x lower latency multi-threaded on a Pixel 1, since
the parallel DAGs can run concurrently [SN §4.3]. This measures an
`arch.json` (random weights: latency does not depend on their values) at one
or more input sizes and prints one JSON line per (size, threads).

  python benchmarks/threads.py --arch runs/quickstart/arch.json \
      --input-shape 8,8,1 --input-shape 32,32,3 --input-shape 96,96,3
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp

from gram_jax import arch as arch_lib
from gram_jax import cost as cost_lib
from gram_jax.export import latency, tflite
from gram_jax.models import ExactNet


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--arch", required=True)
  p.add_argument("--input-shape", action="append", default=None)
  p.add_argument("--threads", default="1,2,4")
  p.add_argument("--runs", type=int, default=300)
  args = p.parse_args()
  spec = arch_lib.ArchSpec.load(args.arch)
  for text in args.input_shape or ["8,8,1"]:
    shape = tuple(int(s) for s in text.split(","))
    variables = ExactNet(spec).init(jax.random.key(0), jnp.zeros((1,) + shape))
    model = tflite.to_tflite(spec, variables, shape)
    macs = cost_lib.count(spec, shape).macs
    for t in (int(s) for s in args.threads.split(",")):
      stats = latency.measure_tflite(
          model, threads=t, runs=args.runs, warmup=max(10, args.runs // 10)
      )
      print(
          json.dumps({
              "input_shape": list(shape),
              "threads": t,
              "macs": macs,
              "median_ms": round(stats["median_ms"], 4),
              "p90_ms": round(stats["p90_ms"], 4),
              "cpu": stats.get("machine", {}),
          }),
          flush=True,
      )


if __name__ == "__main__":
  main()
