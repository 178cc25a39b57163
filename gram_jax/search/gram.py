"""GRAM: Algorithm 1 of the SwiftNet paper [SN §3.2], as a strategy.

Each iteration samples one sub-network (an independent Bernoulli draw per
edge of every DAG), the loop trains it on the proxy set and computes the
reward ``eta' = eta - gamma * tau``; `update` reweights every edge by the
paper's factor ``exp(alpha * (eta' - beta))`` and renormalises it
(`metagraph.update`: by default each edge's on/off pair, so a weight stays
the probability of sampling the edge), and then moves the baseline ``beta``
towards ``eta'`` (an exponential moving average of history performance,
starting at 0.4; ALGORITHMS.md 1.3 #5).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gram_jax import metagraph as mg
from gram_jax.search.base import SearchStrategy


class GramState(NamedTuple):
  graph: mg.MetaGraph
  baseline: jax.Array   # beta, f32[]
  step: jax.Array       # iterations done, i32[]


def gram(*, alpha: float = 0.9, beta0: float = 0.4,
         beta_momentum: float = 0.9,
         normalization: str = "bernoulli") -> SearchStrategy:
  """The GRAM meta-graph update.

  Args:
    alpha: meta-graph learning rate (paper: 0.9).
    beta0: initial baseline (paper: 0.4).
    beta_momentum: ``beta <- m * beta + (1 - m) * eta'``, applied after the
      edge update of the same iteration. The paper says only "moving
      average"; 0.9 is our default (ALGORITHMS.md 1.3 #5).
    normalization: ``Z_t``, see `metagraph.update`: "bernoulli" (default),
      "clip", or "max" (collapses to the complete DAG; kept to reproduce old
      runs).

  Returns:
    A `SearchStrategy`.

  Examples:
    >>> import jax
    >>> from gram_jax import metagraph as mg
    >>> from gram_jax.space import SearchSpace
    >>> strategy = gram(alpha=0.9)
    >>> graph = mg.init(SearchSpace(nodes=4), jax.random.key(0))
    >>> state = strategy.init(graph, jax.random.key(1))
    >>> masks = strategy.sample(state, jax.random.key(2))
    >>> state = strategy.update(state, masks, 0.8)
    >>> float(state.baseline)
    0.44
  """
  if normalization not in mg.NORMALIZATIONS:
    raise ValueError(f"normalization: {normalization!r} is not allowed; "
                     f"allowed: {', '.join(mg.NORMALIZATIONS)}")

  def init_fn(graph, key):
    del key
    return GramState(graph=graph, baseline=jnp.float32(beta0),
                     step=jnp.int32(0))

  def sample_fn(state, key):
    return mg.sample(state.graph, key)

  def update_fn(state, masks, reward):
    reward = jnp.asarray(reward, jnp.float32)
    graph = mg.update(state.graph, masks, reward - state.baseline,
                      alpha=alpha, normalization=normalization)
    baseline = beta_momentum * state.baseline + (1 - beta_momentum) * reward
    return GramState(graph=graph, baseline=baseline, step=state.step + 1)

  return SearchStrategy(init_fn, sample_fn, update_fn)


def random_search() -> SearchStrategy:
  """Samples from the initial weights forever: GRAM's ablation baseline."""

  def init_fn(graph, key):
    del key
    return GramState(graph=graph, baseline=jnp.float32(0.0),
                     step=jnp.int32(0))

  def sample_fn(state, key):
    return mg.sample(state.graph, key)

  def update_fn(state, masks, reward):
    del masks
    return state._replace(baseline=jnp.asarray(reward, jnp.float32),
                          step=state.step + 1)

  return SearchStrategy(init_fn, sample_fn, update_fn)
