"""TFLite ELU: the converter's five-op chain against one fused ELU op.

The exporter traces ELU as ``relu(x) + expm1(x - relu(x))`` (it quantises
without clipping); the converter keeps that as RELU, SUB, EXP, SUB, ADD, and
`gram_jax.export.fuse.fuse_elu` turns each chain back into one builtin ELU.
This exports the same network both ways, float32 and int8, and times the
pairs side by side on LiteRT (1 thread, median; the two alternate, twice),
with the op counts and the largest output difference.

  python benchmarks/elu_fusion.py [RUN_DIR ...]

Without arguments: the shipped SwiftNet
experiments/results/fashion_mnist/release/searched-L0.80-x1.json with fresh
weights, int8 calibrated on random inputs (latency only). With RUN_DIRs (a
`gram-jax compare` models/<name>/seed<k> directory or a `gram-jax train`
workdir of a SwiftNet): its trained network, calibrated as `gram-jax
compare` calibrates (the first 500 training images), and also each
export's top-1 on the dataset's test split. Prints one JSON line per
network and precision.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  pylint: disable=wrong-import-position

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from gram_jax import fulltrain, io  # noqa: E402
from gram_jax.arch import ArchSpec  # noqa: E402
from gram_jax.export import latency, tflite  # noqa: E402
from gram_jax.models import ExactNet  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = os.path.join(
    ROOT, "experiments/results/fashion_mnist/release/searched-L0.80-x1.json"
)


def _networks(run_dirs, calibration):
  """``(name, forward, shape, representative, test or None)`` per network."""
  if not run_dirs:
    spec = fulltrain.load_arch_file(DEFAULT)[0]
    shape = (28, 28, 1)
    net = ExactNet(spec)
    variables = net.init(jax.random.key(0), jnp.zeros((1,) + shape))
    rep = np.random.default_rng(0).standard_normal(
        (calibration,) + shape, dtype=np.float32
    )
    yield (
        os.path.basename(DEFAULT),
        lambda x: net.apply(variables, x, train=False),
        shape,
        rep,
        None,
    )
    return
  for run_dir in run_dirs:
    result = io.read_json(os.path.join(run_dir, "result.json"))
    config = io.read_json(os.path.join(run_dir, "config.json"))
    shape = tuple(result["input_shape"])
    net = ExactNet(ArchSpec.load(result["arch"]))
    variables = io.load_module_variables(result["variables"], net, shape)
    recipe = fulltrain.recipe_from_dict(config["recipe"], "recipe")
    data = fulltrain.splits(config["dataset"], recipe)
    yield (
        run_dir,
        lambda x, net=net, v=variables: net.apply(v, x, train=False),
        shape,
        data.x_train[:calibration],
        (data.memory.x_test, data.memory.y_test),
    )


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("run_dirs", nargs="*")
  p.add_argument("--runs", type=int, default=200)
  p.add_argument("--warmup", type=int, default=20)
  p.add_argument("--calibration", type=int, default=500)
  args = p.parse_args()
  machine = common.machine()
  for name, forward, shape, rep, test in _networks(
      args.run_dirs, args.calibration
  ):
    for int8 in (False, True):
      kw = dict(int8=True, representative=rep) if int8 else {}
      models = {
          fused: tflite.function_to_tflite(
              forward, (1,) + shape, fuse_elu=fused, **kw
          )
          for fused in (False, True)
      }
      times = {False: [], True: []}
      for _ in range(2):
        for fused in (False, True):
          stats = latency.measure_tflite(
              models[fused], threads=1, runs=args.runs, warmup=args.warmup
          )
          times[fused].append(stats["median_ms"])
      x = (
          test[0][:256]
          if test is not None
          else np.random.default_rng(1).standard_normal(
              (64,) + shape, dtype=np.float32
          )
      )
      outs = {f: latency.run_tflite(m, x) for f, m in models.items()}
      row = {
          "network": name,
          "precision": "int8" if int8 else "float32",
          "ops_chain": len(tflite.list_ops(models[False])),
          "ops_fused": len(tflite.list_ops(models[True])),
          "elu_ops": tflite.list_ops(models[True]).count("ELU"),
          "median_ms_chain": min(times[False]),
          "median_ms_fused": min(times[True]),
          "speedup": min(times[False]) / min(times[True]),
          "max_abs_output_diff": float(
              np.max(np.abs(outs[False].astype(np.float64) - outs[True]))
          ),
      }
      if test is not None:
        for fused, key in ((False, "top1_chain"), (True, "top1_fused")):
          pred = latency.run_tflite(models[fused], test[0]).argmax(-1)
          row[key] = float(np.mean(pred == test[1]))
      row["machine"] = machine["cpu"]
      print(json.dumps(row), flush=True)


if __name__ == "__main__":
  main()
