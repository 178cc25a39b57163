"""ShrinkRNN: cell semantics, parameter count, corpus, NT-ASGD, proxy
evaluation, full training resume, and the rnn kind of `gram-jax autoshrink`."""

import functools
import hashlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import helpers
from gram_jax import cli
from gram_jax.autoshrink import command
from gram_jax.autoshrink import lm
from gram_jax.autoshrink import rnn
from gram_jax.autoshrink import rnn_search
from gram_jax.autoshrink import train_rnn
from gram_jax.errors import GramJaxError


def _jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


# --- the cell --------------------------------------------------------------


def _sig(x):
  return 1 / (1 + np.exp(-x))


_ACT = {
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": _sig,
    "tanh": np.tanh,
    "identity": lambda x: x,
}


def _reference_step(x, h_prev, w, mask, ops):
  """One step of the official `node_op`, transcribed with NumPy loops."""
  n = len(ops)
  nhid = h_prev.shape[-1]
  ch = np.concatenate([x, h_prev], -1) @ w["W0"]
  s0 = h_prev + _sig(ch[:, :nhid]) * (np.tanh(ch[:, nhid:]) - h_prev)
  state, count = [None] * n, [0] * n
  state[0], count[0] = s0, 1
  for i in range(n):
    if state[i] is None:
      continue
    state[i] = state[i] / count[i]
    for j in range(i + 1, n):
      if not mask[i][j]:
        continue
      ch = state[i] @ w[f"W_{i}_{j}"]
      s = state[i] + _sig(ch[:, :nhid]) * (
          _ACT[ops[j]](ch[:, nhid:]) - state[i]
      )
      state[j] = s if state[j] is None else state[j] + s
      count[j] += 1
  # get_leaf: reachable nodes without an outgoing mask edge.
  reach, leaf = {0}, []
  for i in range(n):
    if i not in reach:
      continue
    outs = [j for j in range(i + 1, n) if mask[i][j]]
    reach.update(outs)
    if not outs:
      leaf.append(i)
  return np.mean([state[i] for i in leaf], axis=0)


def _masks(n=6):
  node1_cut = rnn.complete_mask(n)
  node1_cut[0, 1] = False  # node 1 unreachable: its edges vanish
  only_highway = np.zeros((n, n), bool)
  rng = np.random.RandomState(3)
  rand = np.triu(rng.rand(n, n) < 0.6, 1)
  return [node1_cut, only_highway, rand]


def test_masked_cell_matches_official_node_op():
  ops = ("tanh", "relu", "sigmoid", "identity", "tanh", "relu")
  t, b, nhid = 3, 2, 5
  key = jax.random.key(0)
  x = np.asarray(jax.random.normal(key, (t, b, nhid)))
  h0 = np.asarray(jax.random.normal(jax.random.fold_in(key, 1), (b, nhid)))
  cell = rnn.ShrinkRNN(nhid, ops, None, init_range=0.5)
  params = jax.jit(cell.init)(key, x, h0, jnp.asarray(rnn.complete_mask(6)))[
      "params"
  ]
  w = {k: np.asarray(v) for k, v in params.items()}
  apply = jax.jit(cell.apply)  # one program for every mask
  for mask in _masks() + [rnn.complete_mask(6)]:
    out, last = apply({"params": params}, x, h0, jnp.asarray(mask))
    h = h0
    for step in range(t):
      h = _reference_step(x[step], h, w, mask, ops)
      np.testing.assert_allclose(out[step], h, atol=1e-5)
    np.testing.assert_allclose(last, h, atol=1e-5)


def test_masked_lm_equals_exact_lm():
  ops = ("tanh", "identity", "sigmoid", "relu", "tanh")
  vocab, nhid = 30, 8
  drop = dict(
      dropout=0.3, dropouth=0.2, dropoutx=0.3, dropouti=0.1, dropoute=0.1
  )
  masked = rnn.masked_lm(5, ops, vocab, nhid, **drop)
  key = jax.random.key(1)
  tokens = jax.random.randint(key, (4, 3), 0, vocab)
  hidden = jax.random.normal(key, (3, nhid))
  # One compiled program and one set of weights for every mask.
  apply_masked = jax.jit(
      lambda v, t, h, m, rngs: masked.apply(v, t, h, m, train=True, rngs=rngs)
  )
  v = jax.jit(masked.init)(
      key, tokens, hidden, jnp.asarray(rnn.complete_mask(5))
  )
  for mask in _masks(5):
    spec = rnn.CellSpec.from_mask(mask, ops)
    exact = rnn.exact_lm(spec, vocab, nhid, **drop)
    p = rnn.to_exact_params(v["params"], spec)
    # The exact model has weights for the live edges only.
    assert len(p["cell"]) == 1 + spec.num_edges
    # Same dropout draws in both (all dropouts on, so the variational
    # hidden mask on every edge is covered).
    rngs = {"dropout": jax.random.key(7)}
    a = apply_masked(v, tokens, hidden, jnp.asarray(mask), rngs)
    e = jax.jit(functools.partial(exact.apply, train=True))(
        {"params": p}, tokens, hidden, rngs=rngs
    )
    for x, y in zip(a, e):
      np.testing.assert_allclose(x, y, atol=1e-5)


def test_released_cell_has_23m_parameters():
  cell = rnn.released_cell()
  assert cell.num_edges == 12 and cell.leaves == (4, 5)
  # PTB: 10,000 words; emsize = nhid = 745, tied [AS: test_final.py].
  n = rnn.count_params(rnn.exact_lm(cell, 10000, 745))
  assert n == rnn.lm_params(10000, 745, 12)
  assert abs(n - 23.0e6) / 23.0e6 < 0.01, n
  # The masked model holds all 15 edge matrices.
  masked = rnn.masked_lm(6, cell.ops, 10000, 745)
  assert rnn.count_params(masked, cell.mask()) == rnn.lm_params(10000, 745, 15)


def test_graph_helpers_and_cell_json(tmp_path):
  m = rnn.complete_mask(6)
  m[0, 1] = False
  assert rnn.num_edges(m) == 10  # 1->* dropped
  assert rnn.leaves(m) == (5,)
  assert rnn.leaves(np.zeros((6, 6), bool)) == (0,)
  cell = rnn.CellSpec.from_mask(m, ("tanh",) * 6)
  assert len(cell.edges) == 10
  path = str(tmp_path / "cell.json")
  cell.save(path)
  assert rnn.CellSpec.load(path) == cell
  with pytest.raises(GramJaxError, match="cell.ops"):
    rnn.CellSpec(3, ((0, 1),), ("tanh", "gelu", "relu"))
  with pytest.raises(GramJaxError, match="cell.edges"):
    rnn.CellSpec(3, ((2, 1),), ("tanh",) * 3)


# --- corpus and training pieces --------------------------------------------


def test_corpus_files_and_synthetic(tmp_path):
  text = "".join(lm.synthetic_lines("train"))
  assert hashlib.sha256(text.encode()).hexdigest().startswith("48057bfd")
  d = lm.write_synthetic_corpus(str(tmp_path / "corpus"))
  c = lm.load_corpus(d)
  s = lm.synthetic_corpus()
  assert c.vocab == s.vocab and np.array_equal(c.train, s.train)
  assert len(s.vocab) == 73 and len(s.train) == 5662
  assert s.vocab[s.train[6]] == lm.EOS  # 6 words then <eos>
  few = lm.load_corpus(d, max_lines=(10, 3, 3))
  assert (few.train == few.vocab.index(lm.EOS)).sum() == 10
  os.remove(os.path.join(d, "ptb.valid.txt"))
  with pytest.raises(GramJaxError, match="ptb.valid.txt"):
    lm.load_corpus(d)


def test_batchify_and_windows():
  data = lm.batchify(np.arange(23), 4)
  assert data.shape == (5, 4) and list(data[:, 1]) == [5, 6, 7, 8, 9]
  rng = np.random.default_rng(0)
  w = lm.train_windows(1000, 35, rng)
  assert {n for _, n in w[:-1]} <= {35, 17}
  assert all(a + n == b for (a, n), (b, _) in zip(w, w[1:]))
  wj = lm.train_windows(1000, 35, rng, jitter=True, max_delta=20)
  assert all(n <= 55 for _, n in wj) and all(n >= 5 for _, n in wj[:-1])
  assert lm.eval_windows(10, 4) == [(0, 4), (4, 4), (8, 1)]
  x, y, valid = lm.window(data, 1, 2, 4)
  assert list(x[:, 0]) == [1, 2, 0, 0] and list(y[:, 0]) == [2, 3, 0, 0]
  assert list(valid) == [True, True, False, False]


def test_asgd_averages_iterates_and_nonmono_trigger():
  p = {"w": jnp.array([1.0, -2.0])}
  state = lm.init_state(p)
  g = {"w": jnp.array([3.0, 4.0])}  # norm 5
  s1 = lm.sgd_update(state, g, 0.1, clip=0.25, weight_decay=0.0)
  np.testing.assert_allclose(
      s1.params["w"], [1 - 0.1 * 0.15, -2 - 0.1 * 0.2], rtol=1e-5
  )  # clipped to norm 0.25
  assert not bool(s1.averaging)
  state = lm.start_averaging(s1)
  iterates = []
  for k in range(3):
    state = lm.sgd_update(
        state,
        {"w": jnp.array([1.0, 0.0]) * k},
        0.1,
        clip=0.0,
        weight_decay=0.01,
    )
    iterates.append(np.asarray(state.params["w"]))
  np.testing.assert_allclose(
      lm.eval_params(state)["w"], np.mean(iterates, 0), rtol=1e-6
  )
  assert int(state.avg_count) == 3
  assert not lm.nonmono_trigger([5, 4, 3], 6, 5)  # too few checks
  assert lm.nonmono_trigger([5, 4, 3, 3, 3, 3, 3], 4.5, 5)
  assert not lm.nonmono_trigger([5, 4, 3, 3, 3, 3, 3], 3.5, 5)


# --- proxy evaluation and the search ---------------------------------------

TINY_RNN = {
    "nodes": 3,
    "nhid": 8,
    "bptt": 8,
    "epochs": 2,
    "batch_size": 64,
    "eval_batch_size": 32,
}


def test_evaluator_is_deterministic_and_scores():
  evaluate, score_fn, n = rnn_search.make_evaluator(
      {"seed": 0, "rnn": dict(TINY_RNN)}
  )
  assert n == 3
  full = rnn.complete_mask(3)
  cut = full.copy()
  cut[0, 1] = False  # node 1 unreachable: only 0->2 is left
  masks = np.stack([full, cut])
  a = evaluate(masks, jax.random.key(3))
  b = evaluate(masks, jax.random.key(3))  # same shape: no recompilation
  assert [r["ppl"] for r in a] == [r["ppl"] for r in b]
  assert a[1]["edges"] == 1 and a[0]["edges"] == 3
  vocab = len(evaluate.corpus.vocab)
  assert a[1]["params"] == rnn.count_params(
      rnn.exact_lm(evaluate.cell(cut), vocab, 8)
  )
  assert all(1 < r["ppl"] < vocab for r in a)
  r = {"ppl": 100.0, "edges": 10}
  expected = (200 - 100) * 0.25 - (np.log10(10 * 64) - 6)
  assert score_fn(r) == pytest.approx(expected)
  assert score_fn({"ppl": float("nan"), "edges": 3}) == float("-inf")
  assert evaluate.describe(cut)["edges"] == [[0, 2]]
  assert evaluate.describe(cut)["leaves"] == [2]


def test_rnn_search_command_resumes(tmp_path, capsys):
  cfg = "experiments/configs/autoshrink_rnn_runlocal.py"
  over = [f"--config.rnn.{k}={v}" for k, v in TINY_RNN.items()] + [
      "--config.search.k=2",
      "--config.search.keep_fraction=0.0",
  ]
  workdir = str(tmp_path / "run")
  config = command.resolve(cfg, over)
  first = command.run_autoshrink(config, workdir, progress=False, stop_after=1)
  assert not first["complete"]
  best = command.run_autoshrink(config, workdir, progress=False)
  assert best["complete"]
  rounds = _jsonl(os.path.join(workdir, "rounds.jsonl"))
  assert [r["round"] for r in rounds][:2] == [0, 0]
  assert all(r["edges"] <= 3 and "ppl" in r for r in rounds)
  cell = rnn.CellSpec.load(os.path.join(workdir, "best.json"))
  assert [list(e) for e in cell.edges] == best["edges"]
  # Bad input: one line, exit 2, nothing written.
  bad = str(tmp_path / "bad")
  assert (
      cli.main([
          "autoshrink",
          "--config",
          cfg,
          "--workdir",
          bad,
          "--config.rnn.nhid=0",
      ])
      == 2
  )
  assert "config.rnn.nhid" in capsys.readouterr().err
  assert not os.path.exists(bad)


# --- full training ---------------------------------------------------------


def test_train_rnn_resume_equals_uninterrupted(tmp_path):
  cell = rnn.CellSpec(
      4, ((0, 1), (0, 2), (1, 3)), ("tanh", "sigmoid", "tanh", "identity")
  )
  cell_path = str(tmp_path / "cell.json")
  cell.save(cell_path)
  recipe = helpers.tiny_lm_recipe(cell_path)
  a, b = str(tmp_path / "a"), str(tmp_path / "b")
  part = train_rnn.run_lm_training(
      recipe, a, progress=False, stop_after_epochs=1
  )
  assert not part["complete"]
  ra = train_rnn.run_lm_training(recipe, a, progress=False)
  rb = train_rnn.run_lm_training(recipe, b, progress=False)
  assert ra["val_ppl"] == rb["val_ppl"] and ra["test_ppl"] == rb["test_ppl"]
  la = [x["val_loss"] for x in _jsonl(os.path.join(a, "metrics.jsonl"))]
  lb = [x["val_loss"] for x in _jsonl(os.path.join(b, "metrics.jsonl"))]
  assert la == lb and len(la) == 3
  assert ra["params"] == rnn.lm_params(73, 8, 3)
  with pytest.raises(GramJaxError, match="holds a run"):
    train_rnn.run_lm_training(
        helpers.tiny_lm_recipe(cell_path, epochs=4), a, progress=False
    )


def test_train_rnn_bad_input(tmp_path, capsys):
  w = str(tmp_path / "w")
  assert (
      cli.main(
          ["train-rnn", "--workdir", w, "--data-dir", str(tmp_path / "nope")]
      )
      == 2
  )
  assert "nope" in capsys.readouterr().err
  assert cli.main(["train-rnn", "--workdir", w, "--config.dropout=1.5"]) == 2
  assert "config.dropout" in capsys.readouterr().err
  assert not os.path.exists(w)
