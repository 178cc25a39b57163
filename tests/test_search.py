"""GRAM strategy conformance, the search command, resume and bad input."""

import json
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gram_jax import cli
from gram_jax import metagraph as mg
from gram_jax.search import config as config_lib
from gram_jax.search import loop
from gram_jax.search.gram import gram, random_search
from gram_jax.space import SearchSpace
from helpers import file_digests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "experiments", "configs", "quickstart.py")
TINY = [
    "--config.space.hierarchies=1",
    "--config.space.dags_per_hierarchy=2",
    "--config.space.nodes=4",
    "--config.proxy.num_train=60",
    "--config.proxy.num_val=40",
    "--config.train.epochs=1",
    "--config.train.batch_size=20",
    "--config.search.iterations=6",
    "--config.checkpoint_every=2",
]

STRATEGIES = [
    ("gram", gram()),
    ("gram_clip", gram(normalization="clip")),
    ("gram_max", gram(normalization="max")),
    ("random", random_search()),
]


@pytest.mark.parametrize("name, strategy", STRATEGIES)
def test_strategy_conformance(name, strategy):
  del name
  chex.clear_trace_counter()
  graph = mg.init(
      SearchSpace(hierarchies=1, dags_per_hierarchy=2, nodes=5),
      jax.random.key(0),
      init_weight=0.5,
  )
  state = jax.jit(strategy.init)(graph, jax.random.key(1))
  sample = jax.jit(chex.assert_max_traces(strategy.sample, n=1))
  update = jax.jit(chex.assert_max_traces(strategy.update, n=1))
  masks = sample(state, jax.random.key(2))
  np.testing.assert_array_equal(masks, sample(state, jax.random.key(2)))
  # a valid encoding: effective edges of the graph's shape
  chex.assert_shape(masks, graph.weights.shape)
  np.testing.assert_array_equal(masks, mg.effective(masks))
  new = update(state, masks, jnp.float32(0.7))
  chex.assert_trees_all_equal_shapes_and_dtypes(state, new)
  for t in range(3):  # no recompilation on later calls
    new = update(new, sample(new, jax.random.key(t)), jnp.float32(0.1 * t))
  assert int(new.step) == 4


def test_gram_update_is_algorithm_1():
  strategy = gram(alpha=0.9, beta0=0.4, beta_momentum=0.9)
  graph = mg.init(
      SearchSpace(hierarchies=1, dags_per_hierarchy=2, nodes=5),
      jax.random.key(0),
      init_weight=0.5,
  )
  state = strategy.init(graph, jax.random.key(0))
  masks = strategy.sample(state, jax.random.key(3))
  new = strategy.update(state, masks, 0.75)
  want = mg.update(graph, masks, 0.75 - 0.4, alpha=0.9)
  np.testing.assert_allclose(new.graph.weights, want.weights, rtol=1e-6)
  assert float(new.baseline) == pytest.approx(0.9 * 0.4 + 0.1 * 0.75)


@pytest.mark.parametrize(
    "override, field",
    [
        ("--config.search.bogus=1", "config.search.bogus: unknown field"),
        (
            "--config.train.epochs=many",
            "config.train.epochs: 'many' is not allowed",
        ),
        (
            "--config.search.alpha=-1",
            "config.search.alpha: -1.0 is not allowed",
        ),
        ("--config.space.nodes=1", "config.space.nodes: 1 is not allowed"),
        ("--config.space.ops=conv3x3_32,pool", "config.space.ops: unknown op"),
        (
            "--config.dataset=cifar100",
            "config.dataset: 'cifar100' is not allowed",
        ),
        ("--config.search.cost=flops", "config.search.cost: 'flops' is not"),
        (
            "--config.train.schedule=linear",
            "config.train.schedule: 'linear' is not allowed",
        ),
        (
            "--config.search.normalization=sum",
            "config.search.normalization: 'sum' is not allowed",
        ),
        ("--workers=3", "--workers: unknown argument"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, override, field):
  code = cli.main([
      "search",
      "--config",
      QUICKSTART,
      "--workdir",
      str(tmp_path / "run"),
      override,
  ])
  err = capsys.readouterr().err.strip()
  assert code == 2
  assert err.startswith(f"gram-jax search: error: {field}"), err
  assert "allowed" in err or "unknown" in err
  assert len(err.splitlines()) == 1
  assert not (tmp_path / "run").exists()


def test_search_writes_outputs_resumes_and_guards_its_config(tmp_path, capsys):
  work = str(tmp_path / "run")
  assert (
      cli.main(
          ["search", "--config", QUICKSTART, "--workdir", work, "--no-progress"]
          + TINY
      )
      == 0
  )
  for name in [
      "config.json",
      "candidates.jsonl",
      "metagraph.json",
      "arch.json",
      "search_curves.png",
      "edge_weights.png",
  ]:
    assert os.path.getsize(os.path.join(work, name)) > 0, name
  lines = [json.loads(l) for l in open(os.path.join(work, "candidates.jsonl"))]
  assert [r["step"] for r in lines] == list(range(6))
  for key in [
      "step",
      "accuracy",
      "macs",
      "reward",
      "baseline",
      "seconds",
      "live_edges",
  ]:
    assert key in lines[0]
  meta = json.load(open(os.path.join(work, "metagraph.json")))
  assert len(meta["dags"]) == 2 and meta["step"] == 6
  # a different config on the same workdir: exit 2, nothing changed
  before = file_digests(work)
  capsys.readouterr()
  code = cli.main(
      ["search", "--config", QUICKSTART, "--workdir", work]
      + TINY
      + ["--config.search.alpha=0.5"]
  )
  err = capsys.readouterr().err
  assert code == 2 and "config.search.alpha" in err and "--workdir" in err
  assert file_digests(work) == before
  # the same config again: already complete, nothing retrained
  assert (
      cli.main(
          ["search", "--config", QUICKSTART, "--workdir", work, "--no-progress"]
          + TINY
      )
      == 0
  )
  assert file_digests(work)["metagraph.json"] == before["metagraph.json"]


def test_corrupt_latest_checkpoint_falls_back(tmp_path):
  cfg = config_lib.resolve(QUICKSTART, TINY)
  ref = loop.run_search(cfg, str(tmp_path / "ref"), progress=False)
  work = str(tmp_path / "run")
  loop.run_search(cfg, work, progress=False, stop_after=4)
  ckpts = os.path.join(work, "checkpoints")
  assert sorted(os.listdir(ckpts)) == ["2", "4"]
  for base, _, files in os.walk(os.path.join(ckpts, "4")):
    for f in files:
      with open(os.path.join(base, f), "wb") as fh:
        fh.write(b"garbage")
  with pytest.warns(UserWarning, match="unreadable"):
    out = loop.run_search(cfg, work, progress=False)
  assert out.complete
  np.testing.assert_array_equal(
      out.state.graph.weights, ref.state.graph.weights
  )
  assert (
      open(os.path.join(work, "metagraph.json")).read()
      == open(os.path.join(tmp_path / "ref", "metagraph.json")).read()
  )
  steps = [
      json.loads(l)["step"]
      for l in open(os.path.join(work, "candidates.jsonl"))
  ]
  assert steps == list(range(6))


def test_edge_encoding_round_trip():
  g = mg.init(
      SearchSpace(hierarchies=2, dags_per_hierarchy=2, nodes=7),
      jax.random.key(0),
      init_weight=0.5,
  )
  masks = np.asarray(mg.sample(g, jax.random.key(1)))
  hexes = loop.encode_edges(masks)
  np.testing.assert_array_equal(loop.decode_edges(hexes, 7), masks)


def test_measured_latency_cost_is_logged(tmp_path):
  cfg = config_lib.resolve(
      QUICKSTART,
      TINY
      + [
          "--config.search.iterations=2",
          "--config.search.cost=measured",
          "--config.search.gamma=1.0",
          "--config.search.latency_runs=5",
      ],
  )
  out = loop.run_search(cfg, str(tmp_path / "run"), progress=False)
  for rec in out.records:
    assert rec["latency_ms"] > 0
    assert rec["cost"] == rec["latency_ms"]
    assert rec["reward"] == pytest.approx(rec["accuracy"] - rec["latency_ms"])


def test_compilation_cache_flag(tmp_path):
  cache = str(tmp_path / "cache")
  code = (
      "import jax, jax.numpy as jnp; from gram_jax import cli; "
      "rest = cli.compilation_cache(['search', '--compilation-cache', "
      f"{cache!r}]); assert rest == ['search'], rest; "
      "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0);"
      " jax.jit(lambda x: jnp.sin(x) @ x)(jnp.ones((8, 8))).block_until_ready()"
  )
  subprocess.run([sys.executable, "-c", code], check=True)
  assert os.listdir(cache)


def test_list_overrides_keep_their_element_type():
  d = {"levels": (0.3, 0.5), "sizes": (96,), "names": ("a",), "empty": ()}
  out = config_lib.apply_overrides(
      dict(d),
      [
          "--config.levels=0.2,0.7",
          "--config.sizes=96,128",
          "--config.names=x,y",
          "--config.empty=p,q",
      ],
  )
  assert out["levels"] == (0.2, 0.7) and out["sizes"] == (96, 128)
  assert out["names"] == ("x", "y") and out["empty"] == ("p", "q")
  with pytest.raises(config_lib.ConfigError, match="config.sizes: 'big'"):
    config_lib.apply_overrides(dict(d), ["--config.sizes=96,big"])


def test_quickstart_config_ships_inside_the_package():
  # found by `gram-jax quickstart` without the repository (wheel installs);
  # experiments/configs/quickstart.py is the same config
  import gram_jax  # pylint: disable=import-outside-toplevel
  from gram_jax.commands import quickstart  # pylint: disable=import-outside-toplevel

  pkg = os.path.dirname(os.path.abspath(gram_jax.__file__))
  assert quickstart.DEFAULT_CONFIG.startswith(pkg + os.sep)
  assert os.path.exists(quickstart.DEFAULT_CONFIG)
  assert (
      config_lib.resolve(quickstart.DEFAULT_CONFIG, []).to_dict()
      == config_lib.resolve(QUICKSTART, []).to_dict()
  )
