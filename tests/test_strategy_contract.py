"""The strategy contract (`gram_jax.search.base`): one table, one battery.

Every strategy that implements `base.Strategy` is a row of `CASES`, and its
claims say what the battery checks:

  * always: ``init`` is deterministic and its state is a pytree of arrays;
    ``ask`` and ``tell`` are pure (the same inputs give the same outputs
    and are not modified); ``tell`` keeps the state's tree structure,
    shapes and dtypes and counts one round; the state round-trips through
    `run.Checkpoints` (orbax), and a restored run continues bit for bit
    like the uninterrupted one; the generic loops drive it;
  * ``tell``: False means ``tell`` must raise NotImplementedError and say
    why. Single-Path is then driven by its gradient step instead;
  * ``stochastic``: ``ask`` depends on its key (True) or must ignore it
    (False);
  * ``jit`` / ``vmap``: ``ask`` and ``tell`` jit without retracing and equal
    the eager result / map over stacked states (S searches) and equal the
    searches one by one. False (AutoShrink is host numpy) means no check;
  * ``ends``: ``done`` becomes true by itself (AutoShrink's edge budget);
    otherwise the caller's ``until`` ends the run.

The behaviour checks (does a strategy learn?) are in
test_search_behaviour.py. That file also holds AutoShrink's planted-score
check and, below, Single-Path's runtime-pressure check.
"""

import functools
from typing import Any, Callable, Dict, NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gram_jax import metagraph as mg
from gram_jax import run as run_lib
from gram_jax.autoshrink import strategy as shrink
from gram_jax.search import base
from gram_jax.search import gram as gram_lib
from gram_jax.singlepath import config as sp_config
from gram_jax.singlepath import runtime as rt
from gram_jax.singlepath import search as sp_search
from gram_jax.singlepath import strategy as sp
from gram_jax.singlepath import superkernel as sk
from gram_jax.singlepath.space import Macro
from gram_jax.space import SearchSpace

SPACE = SearchSpace(hierarchies=1, dags_per_hierarchy=2, nodes=5)
ROUNDS = 4

SP_MACRO = Macro(
    stem_channels=4,
    stem_stride=2,
    first_channels=4,
    stages=("8x2/2",),
    last_channels=8,
    head_channels=16,
    dropout=0.0,
    bn_momentum=0.9,
)
SP_SHAPE = (8, 8, 1)


def _graph_reward(masks):
  """A deterministic, jittable reward per candidate of ``bool[m, K, n, n]``:
  it pays for edges out of node 0 and charges for the others."""
  out0 = jnp.sum(masks[:, :, 0, :], axis=(1, 2))
  return (0.5 + 0.02 * out0 - 0.01 * jnp.sum(masks, axis=(1, 2, 3))).astype(
      jnp.float32
  )


def _shrink_reward(proposal):
  """Host scores of AutoShrink's candidates (keeping 0 -> 4 pays)."""
  return [
      float(-m.sum() + 3.0 * m[0, 4] + 0.1 * i)
      for i, m in enumerate(proposal.masks)
  ]


@functools.lru_cache(maxsize=1)
def _sp_programs():
  """A tiny Single-Path supernet (compiled once per process)."""
  train = sp_config.TrainSettings(
      batch_size=8,
      learning_rate=3e-3,
      optimizer="adam",
      threshold_lr_scale=100.0,
  )
  return sp_search.programs(
      SP_MACRO, 10, SP_SHAPE, (False, True, False), train, 4.0
  )


@functools.lru_cache(maxsize=4)
def _sp_hyper(runtime_lambda: float) -> sp_search.Hyper:
  table = rt.macs_table(SP_MACRO, SP_SHAPE, 10)
  return sp_search.Hyper(
      jnp.float32(runtime_lambda),
      jnp.float32(1.0),
      jnp.int32(0),
      jnp.float32(1.0),
      jnp.asarray(table.entries, jnp.float32),
      jnp.float32(table.constant),
  )


def _sp_batch(t: int):
  rng = np.random.default_rng(t)
  return (
      rng.standard_normal((8,) + SP_SHAPE).astype(np.float32),
      rng.integers(0, 10, 8).astype(np.int32),
  )


class Case(NamedTuple):
  name: str
  build: Callable[[], base.Strategy]
  problem: Callable[[], Any]
  reward: Optional[Callable[[Any], Any]]  # None: no tell
  claims: Dict[str, bool]


GRAM_CLAIMS = {
    "tell": True,
    "stochastic": True,
    "jit": True,
    "vmap": True,
    "ends": False,
}
CASES = [
    Case(
        "gram",
        lambda: gram_lib.ask_tell(gram_lib.gram()),
        lambda: mg.init(SPACE, jax.random.key(0), init_weight=0.5),
        _graph_reward,
        GRAM_CLAIMS,
    ),
    Case(
        "gram_k3",
        lambda: gram_lib.ask_tell(
            gram_lib.gram(normalization="clip"), candidates=3
        ),
        lambda: mg.init(SPACE, jax.random.key(0), init_weight=0.5),
        _graph_reward,
        GRAM_CLAIMS,
    ),
    Case(
        "random",
        lambda: gram_lib.ask_tell(gram_lib.random_search()),
        lambda: mg.init(SPACE, jax.random.key(0), init_weight=0.5),
        _graph_reward,
        GRAM_CLAIMS,
    ),
    Case(
        "autoshrink",
        lambda: shrink.ask_tell(shrink.autoshrink(k=3, keep_fraction=0.0)),
        lambda: 5,
        _shrink_reward,
        {
            "tell": True,
            "stochastic": True,
            "jit": False,
            "vmap": False,
            "ends": True,
        },
    ),
    Case(
        "single_path",
        lambda: sp.single_path(_sp_programs(), steps=2 * ROUNDS),
        lambda: None,
        None,
        {
            "tell": False,
            "stochastic": False,
            "jit": True,
            "vmap": True,
            "ends": True,
        },
    ),
]
IDS = [c.name for c in CASES]


def _with(name):
  return [c for c in CASES if c.claims[name]]


def _advance(case: Case, strategy: base.Strategy, state, key):
  """One round: ask/tell, or Single-Path's gradient step where it has no
  tell."""
  if case.claims["tell"]:
    return base.play_round(
        strategy, state, key, lambda p, t: (case.reward(p), None)
    ).new
  x, y = _sp_batch(int(state.step))
  return sp.train_step(_sp_programs())(state, x, y, key, _sp_hyper(3.0))[0]


def _copy(tree):
  return jax.tree.map(np.array, tree)


def _assert_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_init_is_deterministic_and_a_pytree_of_arrays(case):
  strategy = case.build()
  a = strategy.init(case.problem(), jax.random.key(1))
  b = strategy.init(case.problem(), jax.random.key(1))
  _assert_equal(a, b)
  assert jax.tree.leaves(a)
  for leaf in jax.tree.leaves(a):
    assert isinstance(leaf, (np.ndarray, jax.Array)), type(leaf)
  assert int(strategy.rounds(a)) == 0
  assert not bool(strategy.done(a))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_ask_and_tell_are_pure(case):
  strategy = case.build()
  state = strategy.init(case.problem(), jax.random.key(1))
  before = _copy(state)
  proposal = strategy.ask(state, jax.random.key(2))
  _assert_equal(proposal, strategy.ask(state, jax.random.key(2)))
  _assert_equal(state, before)
  if not case.claims["tell"]:
    with pytest.raises(NotImplementedError, match="gradient step"):
      strategy.tell(state, proposal, jnp.zeros((1,), jnp.float32))
    return
  proposal_before = _copy(proposal)
  rewards = case.reward(proposal)
  new, info = strategy.tell(state, proposal, rewards)
  again, info_again = strategy.tell(state, proposal, rewards)
  _assert_equal(new, again)
  _assert_equal(info, info_again)
  _assert_equal(state, before)
  _assert_equal(proposal, proposal_before)
  chex.assert_trees_all_equal_shapes_and_dtypes(_copy(state), _copy(new))
  assert int(strategy.rounds(new)) == 1


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_ask_depends_on_its_key_as_claimed(case):
  strategy = case.build()
  state = strategy.init(case.problem(), jax.random.key(1))
  asks = [_copy(strategy.ask(state, jax.random.key(k))) for k in range(4)]
  differ = any(
      not np.array_equal(
          np.asarray(jax.tree.leaves(asks[0])[0]),
          np.asarray(jax.tree.leaves(a)[0]),
      )
      for a in asks[1:]
  )
  assert differ == case.claims["stochastic"]
  if case.claims["stochastic"]:
    # the round count is folded into the key: the next round asks anew
    key = jax.random.key(5)
    new = _advance(case, strategy, state, key)
    first = np.asarray(jax.tree.leaves(strategy.ask(state, key))[0])
    second = np.asarray(jax.tree.leaves(strategy.ask(new, key))[0])
    assert first.shape != second.shape or not np.array_equal(first, second)


@pytest.mark.parametrize(
    "case", _with("jit"), ids=[c.name for c in _with("jit")]
)
def test_jit_without_retracing_equals_eager(case):
  strategy = case.build()
  chex.clear_trace_counter()
  ask = jax.jit(chex.assert_max_traces(strategy.ask, n=1))
  tell = jax.jit(chex.assert_max_traces(strategy.tell, n=1))
  state = strategy.init(case.problem(), jax.random.key(1))
  for t in range(3):
    key = jax.random.key(10 + t)
    proposal = ask(state, key)
    _assert_equal(proposal, strategy.ask(state, key))
    if not case.claims["tell"]:
      state = _advance(case, strategy, state, key)
      continue
    rewards = case.reward(proposal)
    new, info = tell(state, proposal, rewards)
    want, want_info = strategy.tell(state, proposal, rewards)
    chex.assert_trees_all_close(new, want, rtol=1e-6)
    chex.assert_trees_all_close(info, want_info, rtol=1e-6)
    state = new


@pytest.mark.parametrize(
    "case", _with("vmap"), ids=[c.name for c in _with("vmap")]
)
def test_vmap_over_searches_equals_one_by_one(case):
  strategy = case.build()
  many = base.vmap_strategy(strategy)
  keys = jax.random.split(jax.random.key(3), 2)
  ask_keys = jax.random.split(jax.random.key(4), 2)
  states = many.init(case.problem(), keys)
  proposals = many.ask(states, ask_keys)
  ones = [strategy.init(case.problem(), k) for k in keys]
  for i, st in enumerate(ones):
    _assert_equal(
        jax.tree.map(lambda x, i=i: x[i], proposals),
        strategy.ask(st, ask_keys[i]),
    )
  if case.claims["tell"]:
    rewards = jax.vmap(case.reward)(proposals)
    new, info = many.tell(states, proposals, rewards)
    for i, st in enumerate(ones):
      want, want_info = strategy.tell(
          st, jax.tree.map(lambda x, i=i: x[i], proposals), rewards[i]
      )
      chex.assert_trees_all_close(
          jax.tree.map(lambda x, i=i: x[i], new), want, rtol=1e-6
      )
      chex.assert_trees_all_close(info[i], want_info, rtol=1e-6)
    assert int(many.rounds(new)) == 1
  assert not bool(many.done(states))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_checkpoint_round_trip_resumes_bit_for_bit(case, tmp_path):
  strategy = case.build()
  key = jax.random.key(6)
  init = strategy.init(case.problem(), jax.random.key(1))
  ref = init
  for _ in range(ROUNDS):
    ref = _advance(case, strategy, ref, key)
  state = init
  for _ in range(ROUNDS // 2):
    state = _advance(case, strategy, state, key)
  ckpt = run_lib.Checkpoints(str(tmp_path), max_to_keep=2)
  ckpt.save(ROUNDS // 2, state)
  ckpt.close()
  ckpt = run_lib.Checkpoints(str(tmp_path), max_to_keep=2)
  got = ckpt.restore(strategy.init(case.problem(), jax.random.key(1)))
  ckpt.close()
  assert got is not None and got.step == ROUNDS // 2
  restored = got.tree
  _assert_equal(restored, state)
  assert int(strategy.rounds(restored)) == ROUNDS // 2
  _assert_equal(strategy.ask(restored, key), strategy.ask(state, key))
  for _ in range(ROUNDS - ROUNDS // 2):
    restored = _advance(case, strategy, restored, key)
  _assert_equal(restored, ref)
  _assert_equal(strategy.result(restored), strategy.result(ref))


@pytest.mark.parametrize(
    "case", _with("tell"), ids=[c.name for c in _with("tell")]
)
def test_generic_loops_drive_it(case):
  strategy = case.build()
  key = jax.random.key(7)
  init = strategy.init(case.problem(), jax.random.key(1))
  seen = []
  state = base.run_rounds(
      strategy,
      init,
      key,
      lambda p, t: (case.reward(p), t),
      until=3,
      on_round=seen.append,
  )
  assert int(strategy.rounds(state)) == 3
  assert [r.round for r in seen] == [r.aux for r in seen] == [0, 1, 2]
  manual = init
  for _ in range(3):
    manual = _advance(case, strategy, manual, key)
  _assert_equal(state, manual)
  if case.claims["ends"]:
    end = base.run_rounds(
        strategy, state, key, lambda p, t: (case.reward(p), None)
    )
    assert bool(strategy.done(end))
    strategy.result(end)
  if case.claims["jit"]:
    scanned, (aux, info) = jax.jit(
        lambda s: base.scan_rounds(
            strategy, s, key, lambda p, t: (case.reward(p), t), rounds=3
        )
    )(init)
    chex.assert_trees_all_close(scanned, state, rtol=1e-6)
    np.testing.assert_array_equal(aux, [0, 1, 2])
    np.testing.assert_allclose(info[0], seen[0].info, rtol=1e-6)


def test_gram_ask_tell_is_the_per_candidate_triple():
  sampler = gram_lib.gram(alpha=0.9, beta0=0.4)
  strategy = gram_lib.ask_tell(sampler, candidates=3)
  graph = mg.init(SPACE, jax.random.key(0), init_weight=0.5)
  state = strategy.init(graph, jax.random.key(1))
  key = jax.random.key(2)
  masks = strategy.ask(state, key)
  rewards = jnp.asarray([0.7, 0.2, 0.5], jnp.float32)
  new, baselines = strategy.tell(state, masks, rewards)
  want = state
  for i in range(3):
    # every candidate is drawn from the weights before the round
    np.testing.assert_array_equal(
        masks[i], sampler.sample(state, jax.random.fold_in(key, i))
    )
    # (eager updates round differently from the compiled scan: 1 ulp)
    np.testing.assert_allclose(baselines[i], want.baseline, rtol=1e-6)
    want = sampler.update(want, masks[i], rewards[i])
  chex.assert_trees_all_close(new, want, rtol=1e-6)
  # the next round's candidates are numbered on: keys fold_in(key, 3 + i)
  np.testing.assert_array_equal(
      strategy.ask(new, key)[0], sampler.sample(new, jax.random.fold_in(key, 3))
  )
  with pytest.raises(ValueError, match="candidates"):
    gram_lib.ask_tell(sampler, candidates=0)


def test_autoshrink_info_is_the_chosen_candidate():
  strategy = shrink.ask_tell(shrink.autoshrink(k=4, keep_fraction=0.0))
  state = strategy.init(5, None)
  proposal = strategy.ask(state, jax.random.key(0))
  new, chosen = strategy.tell(state, proposal, [0.1, 0.9, 0.3, 0.2])
  assert chosen == 1
  assert tuple(new.removed[0]) == tuple(proposal.edges[1])
  mask, score, r = strategy.result(new)
  assert score == pytest.approx(0.9) and r == 0
  np.testing.assert_array_equal(mask, new.mask)


def test_single_path_ask_follows_the_thresholds_and_runtime_pressure():
  strategy = sp.single_path(_sp_programs(), steps=40)
  table = rt.macs_table(SP_MACRO, SP_SHAPE, 10)
  entries = jnp.asarray(table.entries, jnp.float32)

  def runtime(state):
    d = strategy.ask(state, None)[0].astype(jnp.float32)
    return float(rt.model_runtime(d, entries, table.constant))

  state = strategy.init(None, jax.random.key(0))
  # thresholds at 0: every indicator is on, the largest network
  assert sk.describe(strategy.result(state)) == ["k5e6", "k5e6"]
  assert runtime(state) == pytest.approx(table.uniform("k5e6"), rel=1e-6)
  # high thresholds switch the layers off: the smallest network
  params = jax.tree_util.tree_map_with_path(
      lambda p, a: jnp.full_like(a, 1e4)
      if p[-1].key in ("t_k5", "t_e3", "t_e6")
      else a,
      state.params,
  )
  small = strategy.ask(state._replace(params=params), None)[0]
  assert sk.describe(small) == ["k3e3", "skip"]
  # gradient steps under a strong runtime weight make the asked network
  # cheaper
  step = sp.train_step(_sp_programs())
  pressed = state
  for t in range(20):
    x, y = _sp_batch(t)
    pressed = step(pressed, x, y, jax.random.key(1), _sp_hyper(30.0))[0]
  assert int(strategy.rounds(pressed)) == 20 and not bool(
      strategy.done(pressed)
  )
  assert runtime(pressed) < runtime(state)
