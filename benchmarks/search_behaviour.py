"""How well each edge-update rule learns, on synthetic rewards (no training).

  python benchmarks/search_behaviour.py [--seeds 16] [--iterations 60,150,300]

The quickstart's space (6 DAGs x 8 nodes, 168 edges). Planted structure:
12 hidden edges out of node 0 (2 per DAG) each add `--effect` to the
reward, plus Gaussian noise `--noise`; printed per rule and budget:

  * auc: probability that a hidden edge outweighs another edge (0.5 chance);
  * precision: share of hidden edges among the edges kept when pruning to
    about 4 edges per DAG (chance: 12 / 168 = 0.07);
  * edges: mean edges of the candidates sampled in the last 10 iterations;
  * and, under rewards that ignore the candidate (noise only), the mean
    edges sampled in the last 50 of 300 iterations (a fresh sample has
    about 63): a rule that collapses runs to the complete DAG (168).

Prints one JSON line per (rule, budget) and a markdown table.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from gram_jax import metagraph as mg
from gram_jax.search import synthetic as syn
from gram_jax.search.gram import gram, random_search
from gram_jax.space import SearchSpace

SPACE = SearchSpace(hierarchies=2, dags_per_hierarchy=3, nodes=8, width=0.25)


def rules(beta0: float):
  out = {"random": random_search()}
  for norm in mg.NORMALIZATIONS:
    for alpha in (0.9, 3.0):
      out[f"{norm} a={alpha:g}"] = gram(
          alpha=alpha, beta0=beta0, normalization=norm
      )
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--seeds", type=int, default=16)
  p.add_argument("--iterations", default="60,150,300")
  p.add_argument("--effect", type=float, default=0.01)
  p.add_argument("--noise", type=float, default=0.02)
  args = p.parse_args()
  budgets = [int(x) for x in args.iterations.split(",")]
  seeds = jnp.arange(args.seeds)
  table = []
  for name, strategy in rules(0.8).items():
    flat = jax.jit(
        jax.vmap(
            lambda s, st=strategy: syn.run(
                st,
                SPACE,
                syn.constant_reward(base=0.8, noise=args.noise),
                jax.random.key(s),
                iterations=300,
            ).edges
        )
    )
    uninformative = float(np.asarray(flat(seeds))[:, -50:].mean())
    for t in budgets:

      def one(seed, st=strategy, t=t):
        key = jax.random.key(seed)
        planted = syn.planted_edges(SPACE, jax.random.fold_in(key, 7))
        tr = syn.run(
            st,
            SPACE,
            syn.planted_reward(planted, effect=args.effect, noise=args.noise),
            key,
            iterations=t,
            planted=planted,
        )
        return tr.state.graph.weights, planted, tr.edges

      w, planted, edges = jax.jit(jax.vmap(one))(seeds)
      aucs, prec = [], []
      for i in range(args.seeds):
        aucs.append(syn.auc(w[i], planted[i]))
        graph = mg.MetaGraph(
            weights=w[i],
            ops=jnp.zeros((SPACE.num_dags, SPACE.nodes), jnp.int32),
            space=SPACE,
        )
        kept = np.asarray(mg.prune(graph, 1 - 4 / 28, mode="quantile"))
        prec.append(
            float((kept & np.asarray(planted[i])).sum() / max(kept.sum(), 1))
        )  # nothing kept: 0
      row = {
          "rule": name,
          "iterations": t,
          "auc": float(np.mean(aucs)),
          "auc_min": float(np.min(aucs)),
          "precision": float(np.mean(prec)),
          "edges_late": float(np.asarray(edges)[:, -10:].mean()),
          "edges_uninformative": uninformative,
          "seeds": args.seeds,
          "effect": args.effect,
          "noise": args.noise,
      }
      print(json.dumps(row), flush=True)
      table.append(row)
  print(
      "\n| rule | T | AUC (min) | precision | edges late | edges, "
      "uninformative |\n|---|---|---|---|---|---|"
  )
  for r in table:
    print(
        f"| {r['rule']} | {r['iterations']} | {r['auc']:.3f} "
        f"({r['auc_min']:.3f}) | {r['precision']:.2f} | "
        f"{r['edges_late']:.0f} | {r['edges_uninformative']:.0f} |"
    )


if __name__ == "__main__":
  main()
