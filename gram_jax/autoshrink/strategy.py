"""AutoShrink's progressive edge shrinking, generic over what is shrunk.

The strategy is the same for the CNN cell (ShrinkCNN) and the recurrent cell
(ShrinkRNN) [AS: searching/cnn/metagraph.py `auto_shrink`,
searching/rnn/autoshrink_rnn.py]; only the evaluator and the score differ:

  state = strategy.init(num_nodes)                 # complete DAG
  while not strategy.done(state):
    proposal = strategy.propose(state, key)        # k distinct 1-edge removals
    metrics = evaluate(proposal.masks, key)        # caller: train + measure
    scores = [score_fn(m) for m in metrics]
    state = strategy.update(state, proposal, scores)
  mask, score, r = best_snapshot(state)

`ask_tell` is the same strategy under the contract every search method
implements (`gram_jax.search.base`); `shrink_round` does one round of that
loop and `run` the whole loop (`base.run_rounds`); the `gram-jax autoshrink`
command adds logs and checkpoints around the same rounds.

Semantics, following the official code (ALGORITHMS.md 2.2 and 5):

  * masks are ``bool[n, n]`` upper-triangular adjacency matrices, node 0 is
    the input; a state's mask is always "optimized": edges out of nodes not
    reachable from node 0 are dropped (`optimize_mask`). Nodes that do not
    reach the output are *not* pruned: they become leaves.
  * a round draws ``min(k, edges)`` DISTINCT edges of the current mask, in
    the order of a permutation drawn with ``fold_in(key, round)``; candidate
    c is the current mask minus edge c (then optimized).
  * the edge whose removal scores HIGHEST is removed (pitfall 3); a NaN
    score (a diverged candidate) counts as -inf (pitfall 14); ties go to
    the earlier candidate of the proposal.
  * the loop stops once ``edges <= round(max_edges * keep_fraction)``
    (Python's banker's round, as the official code); CNN 0.01, RNN 0.25.
  * every round stores its snapshot (the mask after removal) and that
    snapshot's score (the chosen candidate's score). The result is the
    best-scoring snapshot of the whole trajectory (pitfall 5); on a tie the
    later snapshot, the one with fewer edges, wins (the README's
    tie-breaker: prefer fewer branches). The complete DAG itself is never
    evaluated, as in the official code.

State is a NamedTuple of numpy arrays with fixed shapes (``R = n(n-1)/2``
rounds at most), so it is a pytree that orbax checkpoints as is.
"""

from __future__ import annotations

import math
import time
from typing import (
    Any,
    Callable,
    Dict,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
)

import jax
import numpy as np

# The edge encoding of rounds.jsonl, the same as candidates.jsonl's.
from gram_jax.arch import decode_mask, encode_mask  # noqa: F401
from gram_jax.search import base

Metrics = Dict[str, Any]
Evaluator = Callable[[np.ndarray, jax.Array], List[Metrics]]
ScoreFn = Callable[[Metrics], float]


class ShrinkState(NamedTuple):
  """The whole state of a shrinking run (a pytree of numpy arrays).

  Attributes:
    mask: ``bool[n, n]`` current optimized mask.
    round: ``int32[]`` rounds done.
    max_edges: ``int32[]`` edges of the initial (complete) DAG.
    snapshots: ``bool[R, n, n]``; row r is the mask after round r.
    scores: ``float32[R]``; score of snapshot r (NaN for rounds not done;
      -inf for a round whose candidates all diverged).
    removed: ``int32[R, 2]``; the edge removed in round r (-1 if not done).
  """

  mask: np.ndarray
  round: np.ndarray
  max_edges: np.ndarray
  snapshots: np.ndarray
  scores: np.ndarray
  removed: np.ndarray


class Proposal(NamedTuple):
  """The candidates of one round.

  Attributes:
    masks: ``bool[m, n, n]`` candidate masks (optimized), ``m <= k``.
    edges: ``int32[m, 2]`` the edge each candidate removes.
  """

  masks: np.ndarray
  edges: np.ndarray


class ShrinkStrategy(NamedTuple):
  """Pure functions of an edge-shrinking strategy (see module docstring)."""

  init: Callable[[int], ShrinkState]
  propose: Callable[[ShrinkState, jax.Array], Proposal]
  update: Callable[[ShrinkState, Proposal, Sequence[float]], ShrinkState]
  done: Callable[[ShrinkState], bool]


# --- mask helpers (host, numpy) ----------------------------------------------------


def complete_dag(n: int) -> np.ndarray:
  """``bool[n, n]`` with every edge i -> j, i < j."""
  return np.triu(np.ones((n, n), bool), 1)


def reachable(mask: np.ndarray) -> np.ndarray:
  """``bool[n]``: node 0 and every node with an edge from a reachable one."""
  mask = np.asarray(mask, bool)
  n = mask.shape[-1]
  live = np.zeros(n, bool)
  live[0] = True
  for v in range(1, n):
    live[v] = bool(np.any(mask[:v, v] & live[:v]))
  return live


def optimize_mask(mask: np.ndarray) -> np.ndarray:
  """Drops edges out of nodes not reachable from node 0 (and the lower
  triangle), as the official `optimize_mask`."""
  mask = np.asarray(mask, bool) & complete_dag(np.shape(mask)[-1])
  return mask & reachable(mask)[:, None]


def num_edges(mask: np.ndarray) -> int:
  return int(np.sum(optimize_mask(mask)))


def leaves(mask: np.ndarray) -> np.ndarray:
  """``bool[n]``: reachable nodes with no outgoing edge (the cell output)."""
  eff = optimize_mask(mask)
  return reachable(eff) & ~np.any(eff, axis=1)


def edge_threshold(max_edges: int, keep_fraction: float) -> int:
  # Python's round (banker's), as the official code.
  return int(round(max_edges * keep_fraction))


def best_snapshot(state: ShrinkState) -> Tuple[np.ndarray, float, int]:
  """``(mask, score, round)`` of the best-scoring snapshot so far.

  Ties go to the later round (fewer edges). Raises ValueError before the
  first round.
  """
  r_done = int(state.round)
  if r_done == 0:
    raise ValueError("best_snapshot: no round done yet")
  scores = np.asarray(state.scores[:r_done], np.float64)
  scores = np.where(np.isnan(scores), -np.inf, scores)
  best = int(r_done - 1 - np.argmax(scores[::-1]))
  return np.array(state.snapshots[best]), float(scores[best]), best


# --- the strategy ------------------------------------------------------------------


def autoshrink(k: int = 10, keep_fraction: float = 0.01) -> ShrinkStrategy:
  """Progressive edge shrinking with k-candidate selection.

  Args:
    k: candidates (distinct single-edge removals) per round; paper: 10.
    keep_fraction: stop once at most ``round(max_edges * keep_fraction)``
      edges are left; official code: 0.01 (CNN), 0.25 (RNN).

  Returns:
    A `ShrinkStrategy`.

  Examples:
    >>> s = autoshrink(k=3, keep_fraction=0.5)
    >>> state = s.init(4)
    >>> p = s.propose(state, jax.random.key(0))
    >>> p.masks.shape
    (3, 4, 4)
    >>> state = s.update(state, p, [0.1, 0.3, 0.2])  # drops p.edges[1]
    >>> int(state.round), bool(state.mask[tuple(p.edges[1])])
    (1, False)
  """
  if not (isinstance(k, int) and k >= 1):
    raise ValueError(f"k: {k!r} is not allowed; allowed: an integer >= 1")
  if not 0.0 <= keep_fraction < 1.0:
    raise ValueError(
        f"keep_fraction: {keep_fraction!r} is not allowed; "
        "allowed: >= 0 and < 1"
    )

  def init_fn(num_nodes: int) -> ShrinkState:
    if num_nodes < 2:
      raise ValueError(
          f"num_nodes: {num_nodes!r} is not allowed; allowed: >= 2"
      )
    n = num_nodes
    mask = complete_dag(n)
    rounds = n * (n - 1) // 2
    return ShrinkState(
        mask=mask,
        round=np.asarray(0, np.int32),
        max_edges=np.asarray(int(mask.sum()), np.int32),
        snapshots=np.zeros((rounds, n, n), bool),
        scores=np.full((rounds,), np.nan, np.float32),
        removed=np.full((rounds, 2), -1, np.int32),
    )

  def done_fn(state: ShrinkState) -> bool:
    left = int(np.sum(state.mask))
    return (
        left <= edge_threshold(int(state.max_edges), keep_fraction) or left == 0
    )

  def propose_fn(state: ShrinkState, key: jax.Array) -> Proposal:
    mask = np.asarray(state.mask, bool)
    rows, cols = np.nonzero(mask)  # row-major: a fixed edge order
    m = min(k, len(rows))
    key = jax.random.fold_in(key, int(state.round))
    order = np.asarray(jax.random.permutation(key, len(rows)))[:m]
    edges = np.stack([rows[order], cols[order]], -1).astype(np.int32)
    masks = np.repeat(mask[None], m, axis=0)
    masks[np.arange(m), edges[:, 0], edges[:, 1]] = False
    masks = np.stack([optimize_mask(c) for c in masks]) if m else masks
    return Proposal(masks=masks, edges=edges.reshape(m, 2))

  def update_fn(
      state: ShrinkState, proposal: Proposal, scores: Sequence[float]
  ) -> ShrinkState:
    scores = np.asarray(scores, np.float64)
    if scores.shape != (len(proposal.edges),) or not len(scores):
      raise ValueError(
          f"scores: expected {len(proposal.edges)} values, got "
          f"shape {scores.shape}"
      )
    safe = np.where(np.isnan(scores), -np.inf, scores)
    c = int(np.argmax(safe))  # first of the highest
    i, j = (int(e) for e in proposal.edges[c])
    r = int(state.round)
    new_mask = np.asarray(state.mask, bool).copy()
    new_mask[i, j] = False
    new_mask = optimize_mask(new_mask)
    snapshots = np.array(state.snapshots)
    snapshots[r] = new_mask
    new_scores = np.array(state.scores)
    new_scores[r] = safe[c]
    removed = np.array(state.removed)
    removed[r] = (i, j)
    return state._replace(
        mask=new_mask,
        round=np.asarray(r + 1, np.int32),
        snapshots=snapshots,
        scores=new_scores,
        removed=removed,
    )

  return ShrinkStrategy(init_fn, propose_fn, update_fn, done_fn)


def cnn_score(factor: float = 0.1) -> ScoreFn:
  """AutoShrink's CNN metric ``acc - factor * (log10(MACs) - 6)``
  [AS: metagraph.py `metric_fn`]; reads ``acc`` and ``macs``."""

  def score(metrics: Metrics) -> float:
    acc, macs = metrics["acc"], metrics["macs"]
    if acc is None or not math.isfinite(acc):
      return math.nan
    return float(acc) - factor * (math.log10(max(float(macs), 1.0)) - 6.0)

  return score


def ask_tell(strategy: ShrinkStrategy) -> base.Strategy:
  """`strategy` as a `base.Strategy`: ``init(num_nodes, key)`` (the key is
  unused: the complete DAG), ``ask`` = ``propose``, ``tell`` = ``update``
  with the index of the chosen candidate as info, ``result`` =
  `best_snapshot`, ``rounds`` = rounds done. All on the host (numpy)."""

  def init_fn(num_nodes: int, key) -> ShrinkState:
    del key
    return strategy.init(num_nodes)

  def tell_fn(
      state: ShrinkState, proposal: Proposal, scores: Sequence[float]
  ) -> Tuple[ShrinkState, int]:
    new = strategy.update(state, proposal, scores)
    removed = new.removed[int(state.round)]
    chosen = np.flatnonzero(np.all(proposal.edges == removed, axis=-1))
    return new, int(chosen[0])

  def rounds_fn(state: ShrinkState) -> int:
    return int(state.round)

  return base.Strategy(
      init_fn,
      strategy.propose,
      tell_fn,
      strategy.done,
      best_snapshot,
      rounds_fn,
  )


class RoundResult(NamedTuple):
  state: ShrinkState
  records: List[Metrics]


def scorer(
    evaluate: Evaluator, score_fn: ScoreFn, key: jax.Array
) -> base.Evaluate:
  """`evaluate` and `score_fn` as the generic loop's ``evaluate(proposal,
  round) -> (scores, (metrics, seconds))``; round r trains with
  ``fold_in(fold_in(key, 1), r)``."""

  def fn(proposal: Proposal, r: int):
    t0 = time.perf_counter()
    metrics = evaluate(
        proposal.masks, jax.random.fold_in(jax.random.fold_in(key, 1), r)
    )
    if len(metrics) != len(proposal.edges):
      raise ValueError(
          f"evaluate returned {len(metrics)} results for "
          f"{len(proposal.edges)} candidates"
      )
    elapsed = time.perf_counter() - t0
    return [float(score_fn(m)) for m in metrics], (metrics, elapsed)

  return fn


def round_records(rnd: base.Round) -> List[Metrics]:
  """The log lines of one round of `ask_tell` driven with a `scorer`: the
  metrics dicts plus ``round``, ``candidate``, ``removed`` (the candidate's
  edge), ``edges`` (its edges left), ``cell``, ``score`` and ``chosen``."""
  proposal, (metrics, elapsed) = rnd.proposal, rnd.aux
  records = []
  for c, (m, s) in enumerate(zip(metrics, rnd.rewards)):
    rec = {
        "round": rnd.round,
        "candidate": c,
        "removed": [int(e) for e in proposal.edges[c]],
        "edges": int(proposal.masks[c].sum()),
        "cell": encode_mask(proposal.masks[c]),
        "score": None if math.isnan(s) else s,
        "chosen": c == rnd.info,
    }
    rec.update(m)
    rec.setdefault("seconds", elapsed / len(metrics))
    records.append(rec)
  return records


def shrink_round(
    strategy: ShrinkStrategy,
    state: ShrinkState,
    evaluate: Evaluator,
    score_fn: ScoreFn,
    key: jax.Array,
) -> RoundResult:
  """One round: propose, evaluate through `evaluate`, score, remove.

  The proposal draws from ``fold_in(fold_in(key, 0), round)``;
  `evaluate(masks, key)` receives ``bool[m, n, n]`` and
  ``fold_in(fold_in(key, 1), round)`` and returns one metrics dict per
  candidate.
  The records are those dicts plus ``round``, ``candidate``, ``removed``
  (the candidate's edge), ``edges`` (its edges left), ``score`` and
  ``chosen`` (`round_records`).
  """
  rnd = base.play_round(
      ask_tell(strategy),
      state,
      jax.random.fold_in(key, 0),
      scorer(evaluate, score_fn, key),
  )
  return RoundResult(rnd.new, round_records(rnd))


def run(
    strategy: ShrinkStrategy,
    num_nodes: int,
    evaluate: Evaluator,
    score_fn: ScoreFn,
    key: jax.Array,
    *,
    state: Optional[ShrinkState] = None,
    on_round: Optional[Callable[[RoundResult], None]] = None,
) -> ShrinkState:
  """Shrinks from the complete DAG (or `state`) until `strategy.done`
  (`base.run_rounds` over `ask_tell`)."""
  contract = ask_tell(strategy)
  if state is None:
    state = contract.init(num_nodes, key)

  def report(rnd: base.Round):
    if on_round is not None:
      on_round(RoundResult(rnd.new, round_records(rnd)))

  return base.run_rounds(
      contract,
      state,
      jax.random.fold_in(key, 0),
      scorer(evaluate, score_fn, key),
      on_round=report,
  )
