"""What does a proxy reward know? An analysis of a finished `gram-jax ablation`.

  python benchmarks/proxy_signal.py --workdir runs/ablation_fmnist \
      [--workdir runs/ablation_fmnist_cosine ...]

Reads the searches' ``candidates.jsonl`` and the derived networks in
``results.json`` (no training) and prints JSON lines:

  * ``edges``: per seed, how much of a candidate's proxy accuracy its edges
    predict: ridge regression of the accuracy (standardised per search) on
    the candidate's edge indicators, 10-fold cross-validated over every
    search of that seed in every workdir given (they share the meta-graph).
    ``cv_corr`` is the correlation of held-out predictions with the truth,
    ``cv_r2`` the variance they explain. This is the most a search that
    learns per-edge preferences (GRAM) could extract from these rewards.
  * ``size``: per search, the Spearman correlation of proxy accuracy with
    the candidate's MACs, parameters, live edges and live nodes.
  * ``full``: over every derived network of every workdir, the Spearman
    correlation of full-training top-1 with MACs, parameters and live nodes,
    and with the proxy accuracy of the networks that have one (the best
    samples).
"""

from __future__ import annotations

import argparse
import glob
import json
import os

import numpy as np
from scipy import stats

from gram_jax.search import loop


def _records(path):
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def _edge_features(record, n):
  masks = loop.decode_edges(record["edges"], n)
  rows, cols = np.triu_indices(n, 1)
  return masks[:, rows, cols].reshape(-1).astype(np.float64)


def _ridge_cv(x, y, groups, lam, folds=10, seed=0):
  """Held-out predictions; a group (an iteration index) stays in one fold."""
  names = np.random.default_rng(seed).permutation(np.unique(groups))
  idx = np.arange(len(y))
  pred = np.zeros(len(y))
  for part in np.array_split(names, folds):
    fold = idx[np.isin(groups, part)]
    train = idx[~np.isin(groups, part)]
    mu_x, mu_y = x[train].mean(0), y[train].mean()
    a = x[train] - mu_x
    w = np.linalg.solve(
        a.T @ a + lam * np.eye(a.shape[1]), a.T @ (y[train] - mu_y)
    )
    pred[fold] = (x[fold] - mu_x) @ w + mu_y
  return (
      float(np.corrcoef(y, pred)[0, 1]),
      float(1 - np.mean((y - pred) ** 2) / np.var(y)),
  )


def _spearman(a, b):
  return round(float(stats.spearmanr(a, b)[0]), 3)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", action="append", required=True)
  p.add_argument("--ridge", type=float, nargs="+", default=[10, 100, 1000])
  p.add_argument(
      "--plant-noise",
      type=float,
      default=0.0125,
      help="noise std of the planted reward of the power check",
  )
  args = p.parse_args()
  by_seed = {}
  for workdir in args.workdir:
    for path in sorted(
        glob.glob(os.path.join(workdir, "search", "*", loop.CANDIDATES))
    ):
      run = os.path.basename(os.path.dirname(path))
      seed = int(run.rsplit("seed", 1)[1])
      config = json.load(
          open(
              os.path.join(os.path.dirname(path), loop.CONFIG), encoding="utf-8"
          )
      )
      n = int(config["space"]["nodes"])
      records = _records(path)
      acc = np.array([r["accuracy"] for r in records])
      print(
          json.dumps({
              "kind": "size",
              "workdir": workdir,
              "search": run,
              "candidates": len(records),
              **{
                  k: _spearman(acc, [r[k] for r in records])
                  for k in ("macs", "params", "live_edges", "live_nodes")
              },
          })
      )
      x = np.stack([_edge_features(r, n) for r in records])
      z = (acc - acc.mean()) / (acc.std() or 1.0)
      xs, zs, gs = by_seed.setdefault(seed, ([], [], []))
      xs.append(x)
      zs.append(z)
      gs.append(np.array([r["step"] for r in records]))
  for seed, (xs, zs, gs) in sorted(by_seed.items()):
    x, z, g = np.concatenate(xs), np.concatenate(zs), np.concatenate(gs)
    for lam in args.ridge:
      corr, r2 = _ridge_cv(x, z, g, lam)
      # Power check: the same candidates and folds with a planted reward
      # (the synthetic battery's: 12 edges worth +0.01 each, noise of the
      # cosine proxy's size).
      rng = np.random.default_rng(seed)
      planted = rng.choice(x.shape[1], 12, replace=False)
      fake = 0.01 * x[:, planted].sum(1) + rng.normal(
          0, args.plant_noise, len(z)
      )
      pc, pr = _ridge_cv(x, (fake - fake.mean()) / fake.std(), g, lam)
      print(
          json.dumps({
              "kind": "edges",
              "seed": seed,
              "candidates": len(z),
              "edges": x.shape[1],
              "ridge": lam,
              "cv_corr": round(corr, 3),
              "cv_r2": round(r2, 3),
              "planted_cv_corr": round(pc, 3),
              "planted_cv_r2": round(pr, 3),
          })
      )
  rows = []
  for workdir in args.workdir:
    path = os.path.join(workdir, "results.json")
    if os.path.exists(path):
      rows += json.load(open(path, encoding="utf-8"))["rows"]
  if rows:
    top1 = [r["top1"] for r in rows]
    with_proxy = [r for r in rows if r.get("proxy_accuracy") is not None]
    print(
        json.dumps({
            "kind": "full",
            "networks": len(rows),
            "top1_vs_macs": _spearman(top1, [r["macs"] for r in rows]),
            "top1_vs_params": _spearman(top1, [r["params"] for r in rows]),
            "top1_vs_nodes": _spearman(top1, [r["nodes"] for r in rows]),
            "with_proxy": len(with_proxy),
            "top1_vs_proxy_accuracy": (
                _spearman(
                    [r["top1"] for r in with_proxy],
                    [r["proxy_accuracy"] for r in with_proxy],
                )
                if len(with_proxy) > 2
                else None
            ),
        })
    )


if __name__ == "__main__":
  main()
