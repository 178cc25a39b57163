"""Seconds per training epoch of the `gram-jax compare` models on this host.

Times the jitted training step (momentum SGD, batch `--batch`, as the
Fashion-MNIST protocol of experiments/configs/compare_fashion_mnist.py)
of each model at 28x28x1 on generated images, after a warm-up step that
pays the compilation, and extrapolates to an epoch of `--train` images plus
the per-epoch evaluation of `--eval` images (validation and the training
subset). The timing does not depend on the pixel values, so no dataset is
read. Prints one JSON line per model.

SwiftNet stand-in: without `--metagraph`, a random meta-graph of the
quickstart space (2 x 3 DAGs of 8 nodes, width 0.25) pruned at quantile
0.5, with the adaptation stem `--stem`; a finished search's
metagraph.json gives the real candidates instead.

  python benchmarks/compare_epoch_cost.py [--steps 10] \\
      [--models mobilenet_v2@0.35,fbnet_96_035_1,swiftnet]
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

from gram_jax import arch as arch_lib  # noqa: E402
from gram_jax import cost as cost_lib  # noqa: E402
from gram_jax import fulltrain  # noqa: E402
from gram_jax import io  # noqa: E402
from gram_jax import metagraph as mg  # noqa: E402
from gram_jax import train as train_lib  # noqa: E402
from gram_jax.models import ExactNet, registry  # noqa: E402
from gram_jax.space import SearchSpace  # noqa: E402

DEFAULT = (
    "mobilenet_v2@0.35,mobilenet_v2@0.5,mobilenet_v2@0.75,"
    "mobilenet_v2@1.0,fbnet_96_035_1,fbnet_a,swiftnet"
)


def _swiftnet(metagraph: str, level: float, stem):
  if metagraph:
    graph = io.load_metagraph(metagraph)
  else:
    space = SearchSpace(
        hierarchies=2, dags_per_hierarchy=3, nodes=8, width=0.25
    )
    graph = mg.init(space, jax.random.key(0), init_weight=0.9)
    graph = graph.replace(
        weights=jax.random.uniform(
            jax.random.key(1), graph.weights.shape, minval=0.5, maxval=1.0
        )
    )
  masks = np.asarray(mg.prune(graph, jnp.float32(level), mode="quantile"))
  spec = arch_lib.from_masks(graph.space, graph.ops, masks, num_classes=10)
  return fulltrain.adapt_spec(spec, num_classes=10, stem=stem)


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--models", default=DEFAULT)
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--train", type=int, default=55000)
  p.add_argument("--eval", type=int, default=10000)
  p.add_argument("--metagraph", default="")
  p.add_argument("--level", type=float, default=0.5)
  p.add_argument("--stem", default="conv3x3_16/2,conv3x3_16/2")
  args = p.parse_args()
  shape = (28, 28, 1)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((args.batch,) + shape), jnp.float32)
  y = jnp.asarray(rng.integers(0, 10, args.batch), jnp.int32)
  xe = jnp.asarray(rng.standard_normal((500,) + shape), jnp.float32)
  ye = jnp.asarray(rng.integers(0, 10, 500), jnp.int32)
  print(json.dumps({"machine": common.machine()}), flush=True)
  for name in args.models.split(","):
    if name == "swiftnet":
      spec = _swiftnet(
          args.metagraph,
          args.level,
          tuple(s for s in args.stem.split(",") if s),
      )
      net = ExactNet(spec)
      c = cost_lib.count(spec, shape)
    else:
      model, _, w = name.partition("@")
      width = float(w or 1.0)
      net = registry.build(model, num_classes=10, width=width)
      c = registry.cost(model, shape, num_classes=10, width=width)
    variables = jax.jit(net.init)(jax.random.key(0), x[:1])
    tx = train_lib.make_optimizer("momentum", 0.05)
    opt = tx.init(variables["params"])
    step = jax.jit(
        train_lib.make_train_step(net.apply, tx, weight_decay=5e-4),
        donate_argnums=(0, 1),
    )
    evaluate = jax.jit(train_lib.make_eval_step(net.apply, top_k=5))
    t0 = time.perf_counter()
    variables, opt, loss = step(variables, opt, x, y)
    loss.block_until_ready()
    jax.block_until_ready(evaluate(variables, xe, ye, jnp.ones(500)))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.steps):
      variables, opt, loss = step(variables, opt, x, y)
    loss.block_until_ready()
    step_s = (time.perf_counter() - t0) / args.steps
    t0 = time.perf_counter()
    for _ in range(3):
      jax.block_until_ready(evaluate(variables, xe, ye, jnp.ones(500)))
    eval_s = (time.perf_counter() - t0) / 3 / 500
    epoch_s = (args.train // args.batch) * step_s + args.eval * eval_s
    print(
        json.dumps({
            "model": name,
            "macs": c.macs,
            "params": c.params,
            "compile_s": round(compile_s, 2),
            "step_s": round(step_s, 4),
            "epoch_s": round(epoch_s, 1),
        }),
        flush=True,
    )


if __name__ == "__main__":
  main()
