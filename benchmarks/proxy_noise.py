"""How much of a proxy reward is the candidate, and how much is chance?

  python benchmarks/proxy_noise.py --workdir runs/ablation_fmnist/search/random_seed0 \
      [--candidates 8] [--repeats 3] [--config.train.schedule=cosine ...]

Retrains `--candidates` logged candidates of a finished (or running) search
`--repeats` times each, with fresh training keys, on the search's own proxy
split and recipe, and prints (JSON) the proxy accuracy's standard deviation
within a candidate (training noise) and between candidates (the signal a
search can use), and their ratio. A search can only tell candidates apart
when the between-candidate spread is well above the within-candidate one.
``--config.<field>=<value>`` changes the proxy (e.g. ``train.schedule``,
``train.epochs``, ``proxy.num_train``) for the same candidates.
"""

from __future__ import annotations

import argparse
import json
import os

import jax
import numpy as np

from gram_jax import metagraph as mg
from gram_jax.search import config as config_lib
from gram_jax.search import loop


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--candidates", type=int, default=8)
  p.add_argument("--repeats", type=int, default=3)
  args, overrides = p.parse_known_args()
  stored = json.load(open(os.path.join(args.workdir, loop.CONFIG)))
  stored = config_lib.merge_defaults(
      config_lib.SearchConfig().to_dict(), stored
  )
  cfg = config_lib.SearchConfig.from_dict(
      config_lib.apply_overrides(stored, overrides)
  )
  records = [
      json.loads(l) for l in open(os.path.join(args.workdir, loop.CANDIDATES))
  ]
  shared, ds, split = loop.search_data(cfg)
  graph = mg.init(cfg.space, jax.random.fold_in(jax.random.key(shared), 0))
  trainer = loop.proxy_trainer(cfg, graph.ops, ds.num_classes, split)
  picks = np.linspace(0, len(records) - 1, args.candidates).round().astype(int)
  accs = np.zeros((len(picks), args.repeats))
  for i, c in enumerate(picks):
    masks = loop.decode_edges(records[c]["edges"], cfg.space.nodes)
    for r in range(args.repeats):
      key = jax.random.fold_in(jax.random.key(12345), int(c) * 1000 + r)
      accs[i, r] = trainer(masks, key).accuracy
    print(
        json.dumps({
            "step": int(c),
            "logged": records[c]["accuracy"],
            "repeats": accs[i].round(4).tolist(),
        }),
        flush=True,
    )
  within = float(np.sqrt(np.mean(np.var(accs, axis=1, ddof=1))))
  between = float(np.std(accs.mean(axis=1), ddof=1))
  # The candidate means still carry within-noise / sqrt(repeats).
  signal = float(np.sqrt(max(between**2 - within**2 / args.repeats, 0.0)))
  print(
      json.dumps({
          "workdir": args.workdir,
          "overrides": overrides,
          "candidates": len(picks),
          "repeats": args.repeats,
          "within_std": within,
          "between_std": between,
          "signal_std": signal,
          "signal_to_noise": signal / within if within else None,
          "logged_accuracy_std": float(
              np.std([r["accuracy"] for r in records], ddof=1)
          ),
      })
  )


if __name__ == "__main__":
  main()
