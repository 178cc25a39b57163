"""Synthetic search problems: behaviour checks of a strategy without training.

A real search scores each candidate by training it, which costs seconds; the
questions "does this strategy learn?" and "does it stay a distribution?"
need hundreds of candidates over many seeds. Here the reward is a known
function of the sampled edges plus Gaussian noise of the size of proxy
noise, so those questions take milliseconds and have known answers.

`planted_edges` hides a set of good edges; `planted_reward` pays for each of
them; `run` drives any `SearchStrategy` for T iterations inside one
`lax.scan` (vmappable over seeds); `auc` scores how well the final edge
weights rank the planted edges above the rest (0.5 = chance, 1 = perfect).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gram_jax import metagraph as mg
from gram_jax.search.base import SearchStrategy
from gram_jax.space import SearchSpace


class Trace(NamedTuple):
  state: object           # the strategy's final state
  edges: jax.Array        # i32[T]: edges of each sampled candidate
  rewards: jax.Array      # f32[T]
  hits: jax.Array         # i32[T]: planted edges in each candidate


def planted_edges(space: SearchSpace, key: jax.Array, *,
                  per_dag: int = 2) -> jax.Array:
  """``bool[K, n, n]``: `per_dag` edges out of node 0 of every DAG.

  Edges out of node 0 are always observable (node 0 is always live), so a
  strategy's ranking of them measures what it learnt, not how often an
  upstream node happened to be live.
  """
  n = space.nodes
  if not 1 <= per_dag <= n - 1:
    raise ValueError(f"per_dag: {per_dag} is not allowed; allowed: 1 to "
                     f"{n - 1} (edges out of node 0)")
  keys = jax.random.split(key, space.num_dags)
  targets = jax.vmap(lambda k: jax.random.permutation(
      k, jnp.arange(1, n))[:per_dag])(keys)
  rows = jnp.zeros((space.num_dags, n), bool).at[
      jnp.arange(space.num_dags)[:, None], targets].set(True)
  return jnp.zeros((space.num_dags, n, n), bool).at[:, 0, :].set(rows)


def planted_reward(planted: jax.Array, *, base: float = 0.8,
                   effect: float = 0.015, cost: float = 0.0,
                   noise: float = 0.02) -> Callable:
  """``reward(masks, key)``: ``base + effect * planted hits - cost * other
  edges + noise * N(0, 1)``."""
  planted = jnp.asarray(planted, bool)

  def reward(masks, key):
    hits = jnp.sum(masks & planted)
    others = jnp.sum(masks & ~planted)
    return (base + effect * hits - cost * others
            + noise * jax.random.normal(key))

  return reward


def constant_reward(*, base: float = 0.8, noise: float = 0.02) -> Callable:
  """``reward(masks, key)``: noise around `base`, independent of `masks`
  (zero-mean advantages once the baseline has settled)."""

  def reward(masks, key):
    del masks
    return base + noise * jax.random.normal(key)

  return reward


def run(strategy: SearchStrategy, space: SearchSpace, reward_fn: Callable,
        key: jax.Array, *, iterations: int, init_weight: float = 0.5,
        planted: jax.Array | None = None) -> Trace:
  """`iterations` sample/score/update rounds of `strategy`; jittable."""
  graph = mg.init(space, jax.random.fold_in(key, 0), init_weight=init_weight)
  state = strategy.init(graph, jax.random.fold_in(key, 1))
  sample_key, reward_key = jax.random.fold_in(key, 2), jax.random.fold_in(
      key, 3)
  if planted is None:
    planted = jnp.zeros(graph.weights.shape, bool)

  def body(state, t):
    masks = strategy.sample(state, jax.random.fold_in(sample_key, t))
    r = reward_fn(masks, jax.random.fold_in(reward_key, t))
    state = strategy.update(state, masks, r)
    return state, (mg.num_edges(masks), r, jnp.sum(masks & planted))

  state, (edges, rewards, hits) = jax.lax.scan(body, state,
                                               jnp.arange(iterations))
  return Trace(state, edges, rewards, hits)


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
