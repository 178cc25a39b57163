"""GRAM: Algorithm 1 of the SwiftNet paper [SN §3.2], as a strategy.

Each iteration samples one sub-network (an independent Bernoulli draw per
edge of every DAG), the loop trains it on the proxy set and computes the
reward ``eta' = eta - gamma * tau``; `update` reweights every edge by the
paper's factor ``exp(alpha * (eta' - beta))`` and renormalises it
(`metagraph.update`: by default each edge's on/off pair, so a weight stays
the probability of sampling the edge), and then moves the baseline ``beta``
towards ``eta'`` (an exponential moving average of history performance,
starting at 0.4; ALGORITHMS.md 1.3 #5).

`gram` and `random_search` return the per-candidate `SearchStrategy`;
`ask_tell` turns either into the `Strategy` contract (`search.base`), with
``candidates`` candidates a round.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gram_jax import metagraph as mg
from gram_jax.search import base
from gram_jax.search.base import SearchStrategy


class GramState(NamedTuple):
  graph: mg.MetaGraph
  baseline: jax.Array  # beta, f32[]
  step: jax.Array  # iterations done, i32[]


def gram(
    *,
    alpha: float = 0.9,
    beta0: float = 0.4,
    beta_momentum: float = 0.9,
    normalization: str = "bernoulli",
) -> SearchStrategy:
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
    >>> round(float(state.baseline), 6)
    0.44
  """
  if normalization not in mg.NORMALIZATIONS:
    raise ValueError(
        f"normalization: {normalization!r} is not allowed; "
        f"allowed: {', '.join(mg.NORMALIZATIONS)}"
    )

  def init_fn(graph, key):
    del key
    return GramState(
        graph=graph, baseline=jnp.float32(beta0), step=jnp.int32(0)
    )

  def sample_fn(state, key):
    return mg.sample(state.graph, key)

  def update_fn(state, masks, reward):
    reward = jnp.asarray(reward, jnp.float32)
    graph = mg.update(
        state.graph,
        masks,
        reward - state.baseline,
        alpha=alpha,
        normalization=normalization,
    )
    baseline = beta_momentum * state.baseline + (1 - beta_momentum) * reward
    return GramState(graph=graph, baseline=baseline, step=state.step + 1)

  return SearchStrategy(init_fn, sample_fn, update_fn)


def random_search() -> SearchStrategy:
  """Samples from the initial weights forever: GRAM's ablation baseline."""

  def init_fn(graph, key):
    del key
    return GramState(graph=graph, baseline=jnp.float32(0.0), step=jnp.int32(0))

  def sample_fn(state, key):
    return mg.sample(state.graph, key)

  def update_fn(state, masks, reward):
    del masks
    return state._replace(
        baseline=jnp.asarray(reward, jnp.float32), step=state.step + 1
    )

  return SearchStrategy(init_fn, sample_fn, update_fn)


def update_in_order(
    update, state: GramState, masks: jax.Array, rewards: jax.Array
):
  """``update`` applied once per candidate, in order (one Algorithm 1 update
  each): ``masks[m, K, n, n]``, ``rewards[m]`` -> ``(state, baselines[m])``,
  where ``baselines[i]`` is the baseline candidate i was judged against."""

  def body(st, xs):
    m, r = xs
    return update(st, m, r), st.baseline

  return jax.lax.scan(body, state, (masks, rewards))


def ask_tell(strategy: SearchStrategy, *, candidates: int = 1) -> base.Strategy:
  """`strategy` (`gram` or `random_search`) as a `base.Strategy`.

  Each round asks `candidates` candidates from the same weights, candidate
  i with the key ``fold_in(key, step + i)``, where ``step`` counts the
  candidates told so far. So one candidate a round draws exactly what
  ``strategy.sample(state, fold_in(key, t))`` draws in round t. ``tell``
  applies their updates in order and returns the baseline each was judged
  against as its info. There is no ``done``: the caller sets the length.
  ``result`` is the meta-graph (prune it at the level you want).

  Args:
    strategy: a `SearchStrategy` over a `GramState`.
    candidates: candidates per round (``search.candidates_per_iteration``).

  Returns:
    A `base.Strategy` whose proposals are ``bool[candidates, K, n, n]`` and
    whose rewards are ``f32[candidates]``.

  Examples:
    >>> import jax
    >>> from gram_jax import metagraph as mg
    >>> from gram_jax.space import SearchSpace
    >>> s = ask_tell(gram(), candidates=2)
    >>> state = s.init(mg.init(SearchSpace(nodes=4), jax.random.key(0)),
    ...                jax.random.key(1))
    >>> masks = s.ask(state, jax.random.key(2))
    >>> masks.shape
    (2, 9, 4, 4)
    >>> state, baselines = s.tell(state, masks, jnp.array([0.8, 0.6]))
    >>> int(s.rounds(state)), [round(float(b), 3) for b in baselines]
    (1, [0.4, 0.44])
  """
  if not (isinstance(candidates, int) and candidates >= 1):
    raise ValueError(
        f"candidates: {candidates!r} is not allowed; allowed: an integer >= 1"
    )

  def ask_fn(state, key):
    keys = base.fold_in_range(key, state.step, candidates)
    return jax.vmap(strategy.sample, in_axes=(None, 0))(state, keys)

  def tell_fn(state, masks, rewards):
    return update_in_order(
        strategy.update, state, masks, jnp.asarray(rewards, jnp.float32)
    )

  def done_fn(state):
    del state
    return jnp.zeros((), bool)

  def result_fn(state):
    return state.graph

  def rounds_fn(state):
    return state.step // candidates

  return base.Strategy(
      strategy.init, ask_fn, tell_fn, done_fn, result_fn, rounds_fn
  )
