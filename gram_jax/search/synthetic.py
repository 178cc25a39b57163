"""Synthetic search problems: behaviour checks of a strategy without training.

A real search scores each candidate by training it, which costs seconds; the
questions "does this strategy learn?" and "does it stay a distribution?"
need hundreds of candidates over many seeds. Here the reward is a known
function of the sampled edges plus Gaussian noise of the size of proxy
noise, so those questions take milliseconds and have known answers.

`planted_edges` hides a set of good edges; `planted_reward` pays for each of
them; `run` drives any meta-graph strategy for T rounds inside one
`lax.scan` (`base.scan_rounds`, vmappable over seeds); `auc` scores how well
the final edge weights rank the planted edges above the rest (0.5 = chance,
1 = perfect).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gram_jax import metagraph as mg
from gram_jax.search import base
from gram_jax.search import gram as gram_lib
from gram_jax.search.base import SearchStrategy
from gram_jax.space import SearchSpace


class Trace(NamedTuple):
  state: object  # the strategy's final state
  edges: jax.Array  # i32[T]: edges of each sampled candidate
  rewards: jax.Array  # f32[T]
  hits: jax.Array  # i32[T]: planted edges in each candidate


def planted_edges(
    space: SearchSpace, key: jax.Array, *, per_dag: int = 2
) -> jax.Array:
  """``bool[K, n, n]``: `per_dag` edges out of node 0 of every DAG.

  Edges out of node 0 are always observable (node 0 is always live), so a
  strategy's ranking of them measures what it learnt, not how often an
  upstream node happened to be live.
  """
  n = space.nodes
  if not 1 <= per_dag <= n - 1:
    raise ValueError(
        f"per_dag: {per_dag} is not allowed; allowed: 1 to "
        f"{n - 1} (edges out of node 0)"
    )
  keys = jax.random.split(key, space.num_dags)
  targets = jax.vmap(
      lambda k: jax.random.permutation(k, jnp.arange(1, n))[:per_dag]
  )(keys)
  rows = (
      jnp.zeros((space.num_dags, n), bool)
      .at[jnp.arange(space.num_dags)[:, None], targets]
      .set(True)
  )
  return jnp.zeros((space.num_dags, n, n), bool).at[:, 0, :].set(rows)


def planted_reward(
    planted: jax.Array,
    *,
    base: float = 0.8,
    effect: float = 0.015,
    cost: float = 0.0,
    noise: float = 0.02,
) -> Callable:
  """``reward(masks, key)``: ``base + effect * planted hits - cost * other
  edges + noise * N(0, 1)``."""
  planted = jnp.asarray(planted, bool)

  def reward(masks, key):
    hits = jnp.sum(masks & planted)
    others = jnp.sum(masks & ~planted)
    return base + effect * hits - cost * others + noise * jax.random.normal(key)

  return reward


def constant_reward(*, base: float = 0.8, noise: float = 0.02) -> Callable:
  """``reward(masks, key)``: noise around `base`, independent of `masks`
  (zero-mean advantages once the baseline has settled)."""

  def reward(masks, key):
    del masks
    return base + noise * jax.random.normal(key)

  return reward


def run(
    strategy: SearchStrategy | base.Strategy,
    space: SearchSpace,
    reward_fn: Callable,
    key: jax.Array,
    *,
    iterations: int,
    init_weight: float = 0.5,
    planted: jax.Array | None = None,
) -> Trace:
  """`iterations` rounds of `strategy` against `reward_fn`; jittable.

  `strategy` is a `SearchStrategy` (one candidate a round, through
  `gram.ask_tell`) or a `base.Strategy` over the meta-graph whose proposals
  are ``bool[m, K, n, n]``. Candidate i of round t is rewarded with the key
  ``fold_in(reward_key, t * m + i)``. The trace has one entry per candidate.
  """
  if isinstance(strategy, SearchStrategy):
    strategy = gram_lib.ask_tell(strategy)
  graph = mg.init(space, jax.random.fold_in(key, 0), init_weight=init_weight)
  state = strategy.init(graph, jax.random.fold_in(key, 1))
  sample_key, reward_key = jax.random.fold_in(key, 2), jax.random.fold_in(
      key, 3
  )
  if planted is None:
    planted = jnp.zeros(graph.weights.shape, bool)

  def evaluate(masks, t):
    m = masks.shape[0]
    r = jax.vmap(reward_fn)(masks, base.fold_in_range(reward_key, t * m, m))
    return r, (
        jax.vmap(mg.num_edges)(masks),
        r,
        jnp.sum(masks & planted, axis=(1, 2, 3)),
    )

  state, ((edges, rewards, hits), _) = base.scan_rounds(
      strategy, state, sample_key, evaluate, rounds=iterations
  )
  return Trace(state, edges.reshape(-1), rewards.reshape(-1), hits.reshape(-1))


def auc(weights, planted) -> float:
  """Probability that a planted edge outweighs a non-planted one (ties
  count one half), over the upper-triangle edges of every DAG."""
  weights, planted = np.asarray(weights), np.asarray(planted, bool)
  n = weights.shape[-1]
  rows, cols = np.triu_indices(n, 1)
  w = weights[..., rows, cols].ravel()
  p = planted[..., rows, cols].ravel()
  pos, neg = w[p], w[~p]
  if not len(pos) or not len(neg):
    raise ValueError("auc needs planted and non-planted edges")
  greater = (pos[:, None] > neg[None, :]).mean()
  ties = (pos[:, None] == neg[None, :]).mean()
  return float(greater + 0.5 * ties)
