"""How fast could one candidate's proxy training be with XLA's own kernels?

For a few candidates sampled as a GRAM search samples them (each edge with
probability `--edge-p`), measures one training step three ways in one
process (the two XLA steps interleaved in rounds, PyTorch's rounds after
them; medians):

  supernet   the search's engine: `ProxyTrainer.jit_step`, one compiled
             program for every candidate (masks are an argument; dead
             nodes and padded channels are computed, then zeroed)
  exact      the candidate's exact network (`ExactNet`, only live nodes,
             exact widths) compiled for this candidate alone by XLA: what
             an engine that "does only the exact sub-network's work" with
             XLA's kernels would run; its trace + compile time is reported
             separately, because a search would pay it for every candidate
  torch      the eager PyTorch module of `torch_baseline.py` (same exact
             network, same batch size, Adam)

and reports each candidate's step times, the exact network's compile cost,
and per-candidate ratios for a training of ``--steps-per-candidate`` steps
(the quickstart proxy: 10 epochs x 10 steps). The exact step over the
torch step bounds what any engine built from XLA:CPU's convolutions and
fusions can gain over the eager loop on this machine, before compilation.
Prints one JSON line.

  python benchmarks/engine_ceiling.py
  python benchmarks/engine_ceiling.py --candidates 3 --config experiments/configs/search_fashion_mnist.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  pylint: disable=wrong-import-position

import jax  # noqa: E402
import numpy as np  # noqa: E402

from gram_jax import arch as arch_lib  # noqa: E402
from gram_jax import metagraph as mg  # noqa: E402
from gram_jax import train as train_lib  # noqa: E402
from gram_jax.models.exact import ExactNet  # noqa: E402
from gram_jax.search import config as config_lib  # noqa: E402
from gram_jax.search import loop  # noqa: E402

QUICKSTART = common.QUICKSTART


def _median_ms(fn, reps: int) -> float:
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times) * 1e3


class _Jax:
  """Repeated steps of one jitted step function, state carried along."""

  def __init__(self, step, variables, opt_state, args):
    self.step, self.state, self.args = step, (variables, opt_state), args

  def __call__(self):
    v, o, loss = self.step(*self.state, *self.args)
    loss.block_until_ready()
    self.state = (v, o)


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--config", default=QUICKSTART)
  p.add_argument("--candidates", type=int, default=4)
  p.add_argument("--edge-p", type=float, default=0.5)
  p.add_argument("--rounds", type=int, default=4)
  p.add_argument("--reps", type=int, default=10)
  p.add_argument("--no-torch", action="store_true")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument(
      "--torch-device",
      default="auto",
      help="cpu, cuda, or auto: cuda when JAX runs on a GPU and torch sees one",
  )
  args, rest = p.parse_known_args()
  cfg = config_lib.resolve(args.config, rest)
  shared_seed, ds, split = loop.search_data(cfg)
  space, t = cfg.space, cfg.train
  rng = np.random.default_rng(args.seed)
  # The node ops a search with this config freezes (search.loop.run_search).
  ops = mg.init(space, jax.random.fold_in(jax.random.key(shared_seed), 0)).ops
  trainer = loop.proxy_trainer(cfg, ops, ds.num_classes, split)
  b = t.batch_size
  idx = np.arange(b)
  steps_per_candidate = trainer.steps_per_epoch * t.epochs
  tx = train_lib.make_optimizer(t.optimizer, t.learning_rate)
  if not args.no_torch:
    import torch  # pylint: disable=import-outside-toplevel
    import torch_baseline  # pylint: disable=import-outside-toplevel
    from torch.nn import functional as F  # pylint: disable=import-outside-toplevel

    device = common.torch_device(torch, args.torch_device)
    xt = torch_baseline._nchw(split.x_train[:b]).to(device)  # pylint: disable=protected-access
    yt = torch.from_numpy(np.asarray(split.y_train[:b], np.int64)).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else lambda: None

  rows = []
  for c in range(args.candidates):
    n = space.nodes
    masks = np.triu(rng.random((space.num_dags, n, n)) < args.edge_p, 1)
    spec = arch_lib.from_masks(space, ops, masks, num_classes=ds.num_classes)
    runners = {}
    v, o = trainer.jit_init(jax.random.key(c), masks)
    runners["supernet"] = _Jax(
        trainer.jit_step, v, o, (trainer.x_train, trainer.y_train, idx, masks)
    )
    net = ExactNet(spec)
    t0 = time.perf_counter()
    ve = jax.jit(net.init)(jax.random.key(c), trainer.x_train[:1])
    oe = tx.init(ve["params"])
    exact_step = train_lib.make_train_step(net.apply, tx)
    step = jax.jit(
        lambda v, o, x, y, i, f=exact_step: f(v, o, x[i], y[i]),
        donate_argnums=(0, 1),
    )
    compiled = step.lower(ve, oe, trainer.x_train, trainer.y_train, idx)
    compiled = compiled.compile()
    exact_compile_s = time.perf_counter() - t0
    runners["exact"] = _Jax(
        compiled, ve, oe, (trainer.x_train, trainer.y_train, idx)
    )
    if not args.no_torch:
      torch.manual_seed(c)
      model = torch_baseline.build_model(spec, xt.shape[1]).to(device)
      opt = torch.optim.Adam(model.parameters(), lr=t.learning_rate)
      model.train()

      def torch_step(model=model, opt=opt):
        loss = F.cross_entropy(model(xt), yt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()

      runners["torch"] = torch_step
    for r in runners.values():  # warm-up (the first call compiles)
      r()
      r()
    # XLA's two step kinds alternate; PyTorch's rounds run after them: its
    # OpenMP workers spin for a while after each op and, interleaved, slowed
    # XLA's steps by a third on 2 cores.
    times = {k: [] for k in runners}
    for _ in range(args.rounds):
      for k in ("supernet", "exact"):
        times[k].append(_median_ms(runners[k], args.reps))
    if "torch" in runners:
      for _ in range(args.rounds):
        times["torch"].append(_median_ms(runners["torch"], args.reps))
    row = {k: round(statistics.median(v), 3) for k, v in times.items()}
    row.update({
        "live_nodes": sum(len(d.nodes) for d in spec.dags),
        "exact_compile_s": round(exact_compile_s, 2),
    })
    rows.append(row)

  def mean(key):
    return statistics.mean(r[key] for r in rows)

  out = {
      "benchmark": "engine_ceiling",
      "config": os.path.basename(args.config),
      "candidates": rows,
      "step_ms": {k: round(mean(k), 3) for k in rows[0] if k in runners},
      "exact_compile_s": round(mean("exact_compile_s"), 2),
      "steps_per_candidate": steps_per_candidate,
      "supernet_over_exact_step": round(mean("supernet") / mean("exact"), 3),
  }
  if not args.no_torch:
    out["torch_over_supernet_step"] = round(mean("torch") / mean("supernet"), 3)
    out["torch_over_exact_step"] = round(mean("torch") / mean("exact"), 3)
    train_s = steps_per_candidate / 1e3
    out["torch_over_exact_with_compile"] = round(
        mean("torch")
        * train_s
        / (mean("exact") * train_s + mean("exact_compile_s")),
        3,
    )
    out["torch_threads"] = torch.get_num_threads()
    out["torch_device"] = device
  out["machine"] = common.machine()
  print(json.dumps(out))


if __name__ == "__main__":
  main()
