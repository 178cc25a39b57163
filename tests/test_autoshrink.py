"""AutoShrink: edge-shrinking strategy, CNN cell, ShrinkCNN, the command."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from gram_jax import cli
from gram_jax.autoshrink import cnn
from gram_jax.autoshrink import cnn_search
from gram_jax.autoshrink import command
from gram_jax.autoshrink import shrinkcnn
from gram_jax.autoshrink import strategy as st
import helpers
from helpers import file_digests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNLOCAL = helpers.AUTOSHRINK_CNN_RUNLOCAL
TINY = helpers.TINY_AUTOSHRINK_CNN


@pytest.fixture(autouse=True)
def _fast_compile():
  """XLA compile time dominates these tests: compile without most
  optimisations (as flax's example tests do); numbers are unaffected."""
  before = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", before)


# --- strategy, on fake evaluators -------------------------------------------------


def fake_evaluator(metric):
  """evaluate(masks, key) -> [{"value": metric(mask)}], counting calls."""
  calls = []

  def evaluate(masks, key):
    del key
    calls.append(np.array(masks))
    return [{"value": float(metric(m))} for m in masks]

  evaluate.calls = calls
  return evaluate


def by_value(m):
  return m["value"]


def test_proposals_are_distinct_edges_of_the_current_mask():
  s = st.autoshrink(k=4, keep_fraction=0.0)
  state = s.init(5)
  for r in range(3):
    p = s.propose(state, jax.random.key(7))
    assert p.masks.shape == (4, 5, 5)
    assert len({tuple(e) for e in p.edges}) == 4  # distinct
    for mask, (i, j) in zip(p.masks, p.edges):
      assert state.mask[i, j] and not mask[i, j]
      want = state.mask.copy()
      want[i, j] = False
      np.testing.assert_array_equal(mask, st.optimize_mask(want))
    state = s.update(state, p, [0.0, 1.0, 0.5, 0.2])
    assert int(state.round) == r + 1
  # fewer edges than k: every edge once
  s = st.autoshrink(k=10, keep_fraction=0.0)
  p = s.propose(s.init(4), jax.random.key(0))
  assert sorted(map(tuple, p.edges)) == sorted(
      zip(*np.nonzero(st.complete_dag(4)))
  )


def test_removes_the_best_scoring_edge_and_prunes_unreachable_nodes():
  s = st.autoshrink(k=6, keep_fraction=0.0)
  state = s.init(4)
  p = s.propose(state, jax.random.key(0))  # all 6 edges
  scores = [1.0 if tuple(e) == (0, 1) else 0.0 for e in p.edges]
  state = s.update(state, p, scores)
  # 0->1 gone: node 1 is unreachable, so 1->2 and 1->3 go too
  want = st.complete_dag(4)
  want[0, 1] = want[1, 2] = want[1, 3] = False
  np.testing.assert_array_equal(state.mask, want)
  assert list(state.removed[0]) == [0, 1]
  # argmax, not argmin; NaN (diverged) never wins
  p = s.propose(state, jax.random.key(1))
  scores = [math.nan] * len(p.edges)
  scores[-1] = -5.0
  state2 = s.update(state, p, scores)
  assert list(state2.removed[1]) == list(p.edges[-1])
  assert float(state2.scores[1]) == -5.0


def test_nodes_not_reaching_the_output_become_leaves():
  mask = st.complete_dag(4)
  mask[2, 3] = False
  mask[1, 2] = False
  mask[0, 2] = False
  # node 2 unreachable; node 1 -> 3, 0 -> 3; leaves: {3}
  np.testing.assert_array_equal(st.leaves(mask), [0, 0, 0, 1])
  mask = st.complete_dag(4)
  mask[2, 3] = False  # node 2 reachable, no output edge: a leaf
  np.testing.assert_array_equal(st.leaves(mask), [0, 0, 1, 1])


def test_stops_at_the_keep_fraction_and_returns_the_best_snapshot():
  # Fake score: peaks at 4 edges left; removing 0->2 is penalised.
  def metric(m):
    return -abs(int(m.sum()) - 4) - 10.0 * (not m[0, 2])

  s = st.autoshrink(k=3, keep_fraction=0.25)  # 10 edges -> stop at <= 2
  evaluate = fake_evaluator(metric)
  state = st.run(s, 5, evaluate, by_value, jax.random.key(3))
  r_done = int(state.round)
  edges_left = [int(state.snapshots[r].sum()) for r in range(r_done)]
  assert edges_left[-1] <= 2 < edges_left[-2]
  assert edges_left == sorted(edges_left, reverse=True)
  assert all(len(c) <= 3 for c in evaluate.calls)
  mask, score, r = st.best_snapshot(state)
  np.testing.assert_array_equal(mask, state.snapshots[r])
  assert score == max(float(x) for x in state.scores[:r_done])
  assert score == metric(mask)
  # the snapshot score is that of the chosen candidate
  for t in range(r_done):
    assert float(state.scores[t]) == metric(state.snapshots[t])
  # ties go to the later snapshot (fewer edges)
  tied = state._replace(scores=np.zeros_like(state.scores))
  assert st.best_snapshot(tied)[2] == r_done - 1


def test_keep_fraction_zero_runs_to_no_edges_and_threshold_rounds_like_python():
  s = st.autoshrink(k=2, keep_fraction=0.01)
  state = st.run(
      s, 4, fake_evaluator(lambda m: m.sum()), by_value, jax.random.key(0)
  )
  assert int(state.mask.sum()) == 0
  assert st.edge_threshold(28, 0.01) == 0
  assert st.edge_threshold(15, 0.25) == 4  # round(3.75)
  assert st.edge_threshold(10, 0.25) == 2  # banker's: round(2.5) == 2


def test_same_key_same_run_other_key_other_run(tmp_path):
  s = st.autoshrink(k=3, keep_fraction=0.0)

  def go(seed):
    return st.run(
        s,
        6,
        fake_evaluator(lambda m: -m.sum() + m[0, 5]),
        by_value,
        jax.random.key(seed),
    )

  a, b, c = go(1), go(1), go(2)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a.removed, c.removed)
  # the state is a pytree of arrays that orbax checkpoints as is
  tree = {k: np.asarray(v) for k, v in a._asdict().items()}
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(str(tmp_path / "ckpt"), tree)
  with ocp.StandardCheckpointer() as ckptr:
    back = ckptr.restore(str(tmp_path / "ckpt"), tree)
  for k, v in tree.items():
    np.testing.assert_array_equal(np.asarray(back[k]), v)


def test_mask_encoding_round_trip():
  rng = np.random.default_rng(0)
  for n in (2, 5, 8):
    m = st.optimize_mask(rng.random((n, n)) < 0.5)
    np.testing.assert_array_equal(st.decode_mask(st.encode_mask(m), n), m)


# --- CNN cell ----------------------------------------------------------------------


def test_masked_net_equals_exact_net_with_one_compiled_program():
  cfg = cnn.NetConfig(
      ops=(0, 0, 1, 0, 1),
      base_filters=4,
      scales=(1, 2),
      pools=(1, 2),
      replicate=(2, 1),
      stem_channels=8,
  )
  net = cnn.MaskedNet(cfg)
  x = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
  init = jax.jit(lambda k, m: cnn.init_candidate(net, k, x, m))
  fwd = jax.jit(lambda v, m: net.apply(v, x, m, train=False))
  train = jax.jit(
      lambda v, m: net.apply(v, x, m, train=True, mutable=["batch_stats"])
  )
  rng = np.random.default_rng(0)
  masks = [np.zeros((5, 5), bool), st.complete_dag(5)] + [
      st.optimize_mask(rng.random((5, 5)) < p) for p in (0.3, 0.7)
  ]
  for t, m in enumerate(masks):
    v = init(jax.random.key(t), m)
    # random BN parameters and statistics: nothing may hide behind 0 and 1
    v = jax.tree_util.tree_map(
        lambda a: np.asarray(a)
        + 0.2 * rng.standard_normal(a.shape).astype(np.float32),
        v,
    )
    v["batch_stats"] = jax.tree_util.tree_map(np.abs, v["batch_stats"])
    exact = cnn.ExactCellNet(cfg, cnn.static_mask(m))
    ve = cnn.to_exact_variables(cfg, m, v)
    np.testing.assert_allclose(
        fwd(v, m), exact.apply(ve, x, train=False), atol=1e-5, rtol=1e-5
    )
    (a, _), (b, _) = train(v, m), exact.apply(
        ve, x, train=True, mutable=["batch_stats"]
    )
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
    # analytic params == the exact module's kernels (+ classifier bias)
    n_params = sum(
        int(np.prod(l.shape))
        for p, l in jax.tree_util.tree_flatten_with_path(ve["params"])[0]
        if p[-1].key == "kernel" or p[0].key == "logits"
    )
    assert n_params == cnn.count(cfg, m, (8, 8, 1)).params
  assert fwd._cache_size() == init._cache_size() == train._cache_size() == 1  # pylint: disable=protected-access


def test_empty_cell_is_input_plus_input_as_the_official_code():
  cfg = cnn.NetConfig(
      ops=(0, 1, 0),
      base_filters=4,
      scales=(1,),
      pools=(1,),
      replicate=(1,),
      stem_channels=4,
  )
  p = cnn.plan(cfg, np.zeros((3, 3), bool))[0]
  assert p.leaves == (0,) and not p.projection and p.width_out == 4
  full = cnn.plan(cfg, st.complete_dag(3))[0]
  assert full.leaves == (2,) and full.width_out == 4
  assert not full.projection  # 4 ch in, 4 out: id
  two = np.zeros((3, 3), bool)
  two[0, 1] = two[0, 2] = True
  p = cnn.plan(cfg, two)[0]
  assert p.leaves == (1, 2) and p.width_out == 8 and p.projection
  down = cnn.NetConfig(
      ops=(0, 1, 0),
      base_filters=4,
      scales=(1,),
      pools=(2,),
      replicate=(1,),
      stem_channels=4,
  )
  assert cnn.plan(down, np.zeros((3, 3), bool))[0].projection  # strided


def test_make_divisible_and_balanced_ops():
  widths = [cnn.make_divisible(int(16 * s * 1.4)) for s in (0.5, 1, 2, 4, 8)]
  assert widths == [12, 24, 44, 88, 180]
  assert cnn.make_divisible(10) == 8  # round(2.5) == 2 (banker's)
  ops = cnn.seed_group_ops(8, jax.random.key(0))
  assert sorted(ops) == [0] * 4 + [1] * 4


@pytest.mark.parametrize("activation", ["relu", "swish"])
def test_released_shrinkcnn_macs_and_params(activation):
  cfg = shrinkcnn.imagenet_config(activation=activation)
  assert cfg.stage_filters() == [12, 24, 44, 88, 180] and cfg.stem_width == 44
  c = shrinkcnn.cost(cfg)
  assert c.macs == pytest.approx(383.7e6, rel=0.01)
  assert c.params == pytest.approx(3.60e6, rel=0.01)
  # the Flax module holds exactly those kernels (BN aside), no allocation
  net = shrinkcnn.shrinkcnn(cfg)
  shapes = jax.eval_shape(
      net.init, jax.random.key(0), jnp.zeros((1, 224, 224, 3))
  )
  flat = jax.tree_util.tree_flatten_with_path(shapes["params"])[0]
  kernels = sum(
      int(np.prod(l.shape))
      for p, l in flat
      if p[-1].key == "kernel" or p[0].key == "logits"
  )
  assert kernels == c.params
  out = jax.eval_shape(
      lambda v, x: net.apply(v, x), shapes, jnp.zeros((2, 224, 224, 3))
  )
  assert out.shape == (2, 1001)


def test_evaluator_serial_equals_vmapped_and_compiles_once():
  config = command.resolve(RUNLOCAL, TINY)
  ev, score_fn, n = cnn_search.make_evaluator(config)
  config_v = command.resolve(RUNLOCAL, TINY + ["--config.cnn.vmap=true"])
  ev_v, _, _ = cnn_search.make_evaluator(config_v)
  s = st.autoshrink(k=3, keep_fraction=0.0)
  state = s.init(n)
  key = jax.random.key(0)
  for _ in range(2):
    p = s.propose(state, key)
    a = ev(p.masks, key)
    b = ev_v(p.masks[:2], key)  # a short round: padded
    for x, y in zip(a, b):
      assert x["acc"] == pytest.approx(y["acc"], abs=0.03)
      assert x["val_loss"] == pytest.approx(y["val_loss"], rel=1e-3)
      assert x["macs"] == y["macs"] and x["macs"] > 0
    state = s.update(state, p, [score_fn(m) for m in a])
  assert ev.num_compilations() == 3 and ev_v.num_compilations() == 3


# --- the command -------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, field",
    [
        ("--config.search.k=0", "config.search.k: 0 is not allowed"),
        ("--config.kind=gru", "config.kind: 'gru' is not allowed"),
        ("--config.cnn.bogus=1", "config.cnn.bogus: unknown field"),
        (
            "--config.cnn.train.epochs=many",
            "config.cnn.train.epochs: 'many' is not allowed",
        ),
        (
            "--config.cnn.activation=tanh",
            "config.cnn.activation: 'tanh' is not",
        ),
        (
            "--config.search.keep_fraction=1.5",
            "config.search.keep_fraction: 1.5 is not allowed",
        ),
        ("--config.cnn.pools=(1, 2)", "config.cnn.scales: scales, pools"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, override, field):
  code = cli.main([
      "autoshrink",
      "--config",
      RUNLOCAL,
      "--workdir",
      str(tmp_path / "run"),
      override,
  ])
  err = capsys.readouterr().err.strip()
  assert code == 2
  assert err.startswith(f"gram-jax autoshrink: error: {field}"), err
  assert len(err.splitlines()) == 1
  assert not (tmp_path / "run").exists()


def test_command_outputs_and_config_guard(tmp_path, capsys):
  """The files of a finished run and the config guard (killing and resuming
  it: tests/test_faults.py)."""
  ref = str(tmp_path / "ref")
  assert (
      cli.main(
          [
              "autoshrink",
              "--config",
              RUNLOCAL,
              "--workdir",
              ref,
              "--no-progress",
          ]
          + TINY
      )
      == 0
  )
  for name in ["config.json", "rounds.jsonl", "best.json", "autoshrink.png"]:
    assert os.path.getsize(os.path.join(ref, name)) > 0, name
  recs = [json.loads(l) for l in open(os.path.join(ref, "rounds.jsonl"))]
  for key in [
      "round",
      "removed",
      "acc",
      "macs",
      "params",
      "score",
      "seconds",
      "cell",
      "chosen",
  ]:
    assert key in recs[0], key
  rounds = sorted({r["round"] for r in recs})
  assert rounds == list(range(len(rounds)))
  assert all(
      sum(r["chosen"] for r in recs if r["round"] == t) == 1 for t in rounds
  )
  best = json.load(open(os.path.join(ref, "best.json")))
  chosen = [r for r in recs if r["chosen"]]
  assert best["score"] == pytest.approx(max(r["score"] for r in chosen))
  assert chosen[-1]["edges"] == 0  # keep_fraction 0.01: to 0 edges
  assert best["description"]["ops"][0] is None

  # a different config on the same workdir: exit 2, nothing changed
  before = file_digests(ref)
  capsys.readouterr()
  code = cli.main(
      ["autoshrink", "--config", RUNLOCAL, "--workdir", ref]
      + TINY
      + ["--config.seed=1"]
  )
  err = capsys.readouterr().err
  assert code == 2 and "config.seed" in err and "--workdir" in err
  assert file_digests(ref) == before


def test_imagenet_learning_rate_is_per_epoch_warmup_then_cosine():
  assert shrinkcnn.learning_rate(1) == pytest.approx(0.01)
  assert shrinkcnn.learning_rate(10) == pytest.approx(0.1)
  assert shrinkcnn.learning_rate(155) == pytest.approx(0.05)
  assert shrinkcnn.learning_rate(300) == pytest.approx(0.0, abs=1e-12)
  assert shrinkcnn.learning_rate(301) == 0.0
  fn = shrinkcnn.schedule(steps_per_epoch=5)
  # step 0..4 is epoch 1, constant within the epoch
  assert [float(fn(s)) for s in (0, 4, 5, 49, 50)] == pytest.approx(
      [0.01, 0.01, 0.02, 0.1, 0.1], rel=1e-4
  )
