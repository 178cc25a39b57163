"""Single-Path NAS under the strategy contract, as far as it goes.

`gram_jax.search.base` defines the ask/tell contract that every search method
implements. Single-Path NAS [SP] is gradient-based, and it fits the parts of
the contract that do not need a reward:

  * ``init``: the supernet's weights and thresholds, its BN statistics, the
    optimizer state and the gradient steps done (`SinglePathState`, a
    pytree that `run.Checkpoints` saves as it is).
  * ``ask``: the one candidate that the thresholds select now, i.e. the
    hard decisions ``bool[1, L, 3]``, with ``[d_k, d_e3, d_e6]`` for each
    searchable layer. It draws nothing, so the key is unused. It is jittable
    and vmappable.
  * ``done``: the step budget is spent. ``result``: the decisions ``ask``
    gives. ``rounds``: the gradient steps done.

``tell`` is where it cannot follow. Calling it raises NotImplementedError.
Single-Path's update is `train_step`: one gradient step of cross-entropy
plus weight decay plus ``lambda * ln(runtime)`` on a training batch. The step
goes through each layer's superkernel, which holds all of that layer's
candidate ops at once. The candidate that ``ask`` returns is never trained
or scored on its own, and the update is not a function of one reward per
candidate: the gradient reaches the thresholds through the sigmoid surrogate
of the indicators. A ``tell`` driven by rewards would be another method (a
policy gradient over the decisions), not Single-Path.

So Single-Path's loop is a training loop over batches and epochs, with
evaluation and a warm-up (`singlepath.search.run_search`), not
`base.run_rounds`. It shares the state handling with the other methods: a
pytree state, orbax checkpoints, and keys from ``fold_in(key, step)``. Its
``ask`` is the architecture it has derived so far.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Tuple

import jax
import jax.numpy as jnp

from gram_jax.search import base
from gram_jax.singlepath import search
from gram_jax.singlepath import superkernel as sk

TELL = (
    "Single-Path NAS has no tell: its update is a gradient step of the "
    "shared supernet on a training batch "
    "(gram_jax.singlepath.strategy.train_step), not a function of one "
    "reward per candidate"
)


class SinglePathState(NamedTuple):
  """The search state (a pytree).

  Attributes:
    params: the supernet's parameters, thresholds included.
    batch_stats: its BatchNorm statistics.
    opt_state: the optimizer's state.
    step: ``i32[]`` gradient steps done.
  """

  params: Any
  batch_stats: Any
  opt_state: Any
  step: jax.Array


def single_path(programs: search.Programs, *, steps: int) -> base.Strategy:
  """Single-Path NAS as a `base.Strategy` without ``tell`` (module docstring).

  Args:
    programs: the compiled supernet, optimizer and train step
      (`singlepath.search.programs`).
    steps: the gradient steps of the whole search (``done`` after them).

  Returns:
    A `base.Strategy`. ``init(problem, key)`` ignores ``problem`` (pass
    None): the supernet, its macro-architecture and its optimizer are
    already compiled into `programs`.
  """
  net = programs.net

  def init_fn(problem, key):
    del problem
    v = programs.init(key)
    return SinglePathState(
        v["params"], v["batch_stats"], v["opt_state"], jnp.int32(0)
    )

  def ask_fn(state, key):
    del key
    return sk.hard_decisions(
        state.params, net.macro, squared_norm=net.squared_norm
    )[None]

  def tell_fn(state, proposal, rewards):
    del state, proposal, rewards
    raise NotImplementedError(TELL)

  def done_fn(state):
    return state.step >= steps

  def result_fn(state):
    return ask_fn(state, None)[0]

  def rounds_fn(state):
    return state.step

  return base.Strategy(init_fn, ask_fn, tell_fn, done_fn, result_fn, rounds_fn)


def train_step(
    programs: search.Programs,
) -> Callable[..., Tuple[SinglePathState, Any]]:
  """``step(state, x, y, key, hyper) -> (state, metrics)``, Single-Path's
  update where the contract has ``tell``.

  It is `search.make_train_step`'s step at ``t = state.step`` (its keys are
  ``fold_in(key, t)``), and it counts the step.
  """

  def step(state: SinglePathState, x, y, key, hyper: search.Hyper):
    new, metrics = programs.step(
        {
            "params": state.params,
            "batch_stats": state.batch_stats,
            "opt_state": state.opt_state,
        },
        x,
        y,
        state.step,
        key,
        hyper,
    )
    return (
        SinglePathState(
            new["params"], new["batch_stats"], new["opt_state"], state.step + 1
        ),
        metrics,
    )

  return step
