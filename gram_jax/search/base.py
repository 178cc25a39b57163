"""The strategy contract (DESIGN.md decision 2): ask/tell over a pytree state.

Every search method of gram_jax is a `Strategy`, a NamedTuple of functions
whose hyperparameters its factory closes over (like an optax
`GradientTransformation`):

  state = strategy.init(problem, key)          # a pytree of arrays
  while not strategy.done(state):
    proposal = strategy.ask(state, ask_key)     # m candidates (a pytree)
    rewards = evaluate(proposal)                # f32[m]: the caller's
    state, info = strategy.tell(state, proposal, rewards)
  answer = strategy.result(state)

`run_rounds` is that loop on the host and `scan_rounds` the same loop inside
one `lax.scan` (for a jittable strategy and reward); `vmap_strategy` makes S
independent searches one strategy over stacked states.

Why this shape, and not the per-candidate ``sample``/``update`` triple:

  * A round may propose several candidates that are scored together:
    AutoShrink's k one-edge removals, GRAM's ``candidates_per_iteration``.
    The proposal has a leading candidate axis, and one candidate is the case
    m = 1. GRAM's Algorithm 1 is that case.
  * ``ask`` gets the same key every round. The strategy folds its own round
    count into it: ``fold_in(key, count)``, where GRAM counts candidates
    told and AutoShrink counts rounds. The count is part of the state, so a
    restored state asks exactly what the uninterrupted run asked, and a loop
    needs no step counter of its own. `rounds` reads it, so the caller can
    derive its own per-round keys the same way (its training keys, say).
  * ``tell`` returns ``(state, info)``, two values as optax's ``update``
    returns. ``info`` is what the strategy made of each reward, for the log:
    GRAM and random give the baseline each candidate was judged against,
    which exists only inside ``tell`` once a round has several candidates;
    AutoShrink gives the chosen candidate. Working it out again outside
    would copy the update.
  * ``done`` is the strategy's own end, where it has one: AutoShrink stops
    at its edge budget. GRAM has none, so the caller sets the length
    (``until``), because a run may be extended on resume.
  * The state holds everything that carries over between rounds, as a
    pytree of arrays. `gram_jax.run.Checkpoints` (orbax) saves it as it is
    and restores it against ``init``'s output, and that is why resuming is
    exact.

Who implements what (tests/test_strategy_contract.py checks every claim):

  * gram and random_search (`gram.ask_tell`): all six functions; they jit
    and vmap; proposals have fixed shapes, ``bool[m, K, n, n]``.
  * autoshrink (`autoshrink.strategy.ask_tell`): all six; host numpy, so no
    jit and no vmap; a round proposes ``m = min(k, edges)`` candidates, so
    the last proposals are smaller.
  * Single-Path (`singlepath.strategy.single_path`): all but ``tell``;
    ``ask`` jits and vmaps; fixed shapes (one candidate, ``bool[1, L, 3]``).

Single-Path cannot ``tell``. Its update is a gradient step of the supernet's
weights and thresholds on a training batch (`singlepath.strategy.train_step`),
and one superkernel carries every candidate at once. The candidate its
thresholds select (its ``ask``) is never scored on its own, and the update is
not a function of one reward per candidate. So its ``tell`` raises, and its
loop is a training loop (`singlepath.search.run_search`), not `run_rounds`.

`SearchStrategy`, the older per-candidate triple ``(init, sample, update)``,
stays as it was. It is GRAM's and random's kernel, and `gram.ask_tell` turns it
into a `Strategy`:

  state = strategy.init(graph, key)
  masks = strategy.sample(state, key)          # bool[K, n, n], fixed shape
  state = strategy.update(state, masks, reward)
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp

from gram_jax.metagraph import MetaGraph

State = Any
Proposal = Any
Info = Any
# evaluate(proposal, round) -> (rewards f32[m], aux): the caller's scoring
# of one round's candidates; `aux` is whatever it wants to log.
Evaluate = Callable[[Proposal, Any], Tuple[Any, Any]]


class Strategy(NamedTuple):
  """The contract every search method implements (module docstring).

  Attributes:
    init: ``(problem, key) -> state``. The problem is what is searched: the
      `MetaGraph` (GRAM), the cell's node count (AutoShrink).
    ask: ``(state, key) -> proposal``, the candidates of the next round,
      drawn from ``fold_in(key, count)``.
    tell: ``(state, proposal, rewards) -> (state, info)``.
    done: ``state -> bool``: whether the strategy has finished by itself.
    result: ``state -> answer``: what the search found so far.
    rounds: ``state -> int``: rounds told so far.
  """

  init: Callable[[Any, jax.Array], State]
  ask: Callable[[State, jax.Array], Proposal]
  tell: Callable[[State, Proposal, Any], Tuple[State, Info]]
  done: Callable[[State], Any]
  result: Callable[[State], Any]
  rounds: Callable[[State], Any]


class SearchStrategy(NamedTuple):
  """GRAM's per-candidate triple (module docstring); `gram.ask_tell` makes
  it a `Strategy`."""

  init: Callable[[MetaGraph, jax.Array], State]
  sample: Callable[[State, jax.Array], jax.Array]
  update: Callable[[State, jax.Array, jax.Array], State]


def fold_in_range(key: jax.Array, first, k: int) -> jax.Array:
  """``keys[i] = fold_in(key, first + i)`` for i < k (`first` may be
  traced): the keys of k candidates numbered from `first`."""
  data = jnp.asarray(first, jnp.uint32) + jnp.arange(k, dtype=jnp.uint32)
  return jax.vmap(lambda d: jax.random.fold_in(key, d))(data)


def vmap_strategy(strategy: Strategy) -> Strategy:
  """S independent searches as one `Strategy` over stacked states.

  Every function maps over a leading axis of states, keys, proposals and
  rewards (``init`` over keys, with one shared problem). ``done`` holds once
  every search is done, and ``rounds`` is the first search's count (the
  searches move in lockstep).
  """
  return Strategy(
      init=jax.vmap(strategy.init, in_axes=(None, 0)),
      ask=jax.vmap(strategy.ask),
      tell=jax.vmap(strategy.tell),
      done=lambda states: jnp.all(jax.vmap(strategy.done)(states)),
      result=jax.vmap(strategy.result),
      rounds=lambda states: jax.vmap(strategy.rounds)(states)[0],
  )


def jit_strategy(strategy: Strategy) -> Strategy:
  """`strategy` with everything but ``init`` jitted (a problem may be a
  static Python value)."""
  return strategy._replace(
      ask=jax.jit(strategy.ask),
      tell=jax.jit(strategy.tell),
      done=jax.jit(strategy.done),
      result=jax.jit(strategy.result),
      rounds=jax.jit(strategy.rounds),
  )


class Round(NamedTuple):
  """One round of `play_round`, as `run_rounds`' ``on_round`` sees it.

  Attributes:
    round: ``rounds(state)`` before the round.
    state: the state before the round.
    proposal: what ``ask`` proposed.
    rewards: what ``evaluate`` scored.
    aux: what ``evaluate`` returned next to the rewards.
    info: what ``tell`` returned next to the new state.
    new: the state after the round.
    seconds: wall time of ask, evaluate and tell.
  """

  round: int
  state: State
  proposal: Proposal
  rewards: Any
  aux: Any
  info: Info
  new: State
  seconds: float


def play_round(
    strategy: Strategy, state: State, key: jax.Array, evaluate: Evaluate
) -> Round:
  """One round: ask with `key`, ``evaluate(proposal, round)``, tell."""
  t = int(strategy.rounds(state))
  t0 = time.perf_counter()
  proposal = strategy.ask(state, key)
  rewards, aux = evaluate(proposal, t)
  new, info = jax.block_until_ready(strategy.tell(state, proposal, rewards))
  return Round(
      t, state, proposal, rewards, aux, info, new, time.perf_counter() - t0
  )


def run_rounds(
    strategy: Strategy,
    state: State,
    key: jax.Array,
    evaluate: Evaluate,
    *,
    until: Optional[int] = None,
    on_round: Optional[Callable[[Round], None]] = None,
) -> State:
  """The search loop on the host: rounds until ``strategy.done`` or until
  ``rounds(state) == until``.

  Args:
    strategy: any `Strategy` (host or jitted functions).
    state: where to start: ``init``'s output or a restored checkpoint.
    key: the ask key, the same every round.
    evaluate: ``(proposal, round) -> (rewards, aux)``. It derives its own
      keys from ``round``, so a resumed run scores as the uninterrupted one
      did.
    until: stop once this many rounds are done (None: only ``done``).
    on_round: called with each `Round` (logs, checkpoints, progress).

  Returns:
    The last state.
  """
  while not bool(strategy.done(state)):
    if until is not None and int(strategy.rounds(state)) >= until:
      break
    rnd = play_round(strategy, state, key, evaluate)
    if on_round is not None:
      on_round(rnd)
    state = rnd.new
  return state


def scan_rounds(
    strategy: Strategy,
    state: State,
    key: jax.Array,
    evaluate: Evaluate,
    *,
    rounds: int,
) -> Tuple[State, Any]:
  """`rounds` rounds inside one `lax.scan`: jittable and vmappable when the
  strategy and `evaluate` are.

  A scan has a fixed length, so ``done`` is not consulted. Returns the last
  state and ``(aux, info)`` stacked over rounds.
  """

  def body(state, _):
    proposal = strategy.ask(state, key)
    rewards, aux = evaluate(proposal, strategy.rounds(state))
    state, info = strategy.tell(state, proposal, rewards)
    return state, (aux, info)

  return jax.lax.scan(body, state, None, length=rounds)
