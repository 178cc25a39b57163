"""The strategy interface (DESIGN.md decision 2).

A strategy is a NamedTuple of pure functions, hyperparameters closed over by
its factory, like an optax `GradientTransformation`:

  state = strategy.init(graph, key)
  masks = strategy.sample(state, key)          # bool[K, n, n], fixed shape
  state = strategy.update(state, masks, reward)

Keys are explicit; the search loop derives them with
``jax.random.fold_in(key, step)`` so a resumed run draws exactly what an
uninterrupted run draws. All three functions are jittable and vmappable.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

from gram_jax.metagraph import MetaGraph

State = Any


class SearchStrategy(NamedTuple):
  init: Callable[[MetaGraph, jax.Array], State]
  sample: Callable[[State, jax.Array], jax.Array]
  update: Callable[[State, jax.Array, jax.Array], State]
