"""Scale: seeds and candidates batched, 1 vs 8 devices, 2 processes, sweeps.

Tolerances (float32): a batched (vmapped) candidate is trained by grouped
convs whose sums run in another order than the single-candidate program, so
losses agree to ~1e-4 relative, not bit for bit. Accuracies (counts of
argmax hits) and hence rewards and meta-graph weights agree exactly on these
tiny problems; weights are compared with atol 1e-6.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gram_jax import cli
from gram_jax import metagraph as mg
from gram_jax.search import config as config_lib
from gram_jax.search import loop
from gram_jax.search.gram import gram
from gram_jax.space import SearchSpace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "experiments", "configs", "quickstart.py")
TINY = [
    "--config.space.hierarchies=1",
    "--config.space.dags_per_hierarchy=2",
    "--config.space.nodes=4",
    "--config.proxy.num_train=40",
    "--config.proxy.num_val=20",
    "--config.train.epochs=1",
    "--config.train.batch_size=20",
    "--config.search.iterations=2",
    "--config.checkpoint_every=1",
]
BATCHED = TINY + [
    "--config.search.num_seeds=2",
    "--config.search.candidates_per_iteration=2",
    "--config.search.batch_candidates=vmap",
]


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
  """Identical programs of the module's many tiny runs compile once."""
  names = (
      "jax_compilation_cache_dir",
      "jax_persistent_cache_min_compile_time_secs",
  )
  old = {n: getattr(jax.config, n) for n in names}
  cli.enable_compilation_cache(str(tmp_path_factory.mktemp("xla_cache")))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  yield
  for n, v in old.items():
    jax.config.update(n, v)


_RUNS = {}


def _run(tmp_path_factory, name, overrides):
  if name not in _RUNS:
    cfg = config_lib.resolve(QUICKSTART, overrides)
    _RUNS[name] = loop.run_search(
        cfg, str(tmp_path_factory.mktemp(name)), progress=False
    )
  return _RUNS[name]


def _assert_same(a, b, weights_atol=1e-6):
  ra, rb = a.records, b.records
  assert [r["edges"] for r in ra] == [r["edges"] for r in rb]
  assert [r["accuracy"] for r in ra] == [r["accuracy"] for r in rb]
  np.testing.assert_allclose(
      [r["val_loss"] for r in ra], [r["val_loss"] for r in rb], rtol=1e-4
  )
  np.testing.assert_allclose(
      a.state.graph.weights, b.state.graph.weights, atol=weights_atol
  )
  assert a.spec == b.spec


def test_seeds_and_candidates_equal_separate_runs(tmp_path_factory):
  """2 seeds x 2 candidates in one vmapped program == 2 separate runs."""
  both = _run(tmp_path_factory, "batched", BATCHED)
  assert both.complete and len(both.seeds) == 2 and both.spec is None
  for i, seed in enumerate((0, 1)):
    alone = _run(
        tmp_path_factory,
        f"alone{seed}",
        TINY
        + [
            f"--config.seed={seed}",
            "--config.search.shared_seed=0",
            "--config.search.candidates_per_iteration=2",
        ],
    )
    one = both.seeds[i]
    _assert_same(one, alone)
    assert [r["seed"] for r in one.records] == [seed] * 4
    assert [(r["step"], r["candidate"]) for r in one.records] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]
    for name in ("candidates.jsonl", "metagraph.json", "arch.json"):
      assert os.path.exists(os.path.join(one.workdir, name))
  assert int(both.state.step[0]) == 4  # one update per candidate


def test_threads_equal_loop_exactly(tmp_path_factory):
  """2 seeds x 2 candidates from a thread pool == the same run as a loop:
  each thread runs the loop's own single-candidate program."""
  base = TINY + [
      "--config.search.num_seeds=2",
      "--config.search.candidates_per_iteration=2",
  ]
  looped = _run(
      tmp_path_factory,
      "looped",
      base + ["--config.search.batch_candidates=loop"],
  )
  threaded = _run(
      tmp_path_factory,
      "threaded",
      base + ["--config.search.batch_candidates=threads"],
  )

  def timeless(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]

  for a, b in zip(looped.seeds, threaded.seeds):
    assert timeless(a.records) == timeless(b.records)
    np.testing.assert_array_equal(a.state.graph.weights, b.state.graph.weights)
    assert a.spec == b.spec


def test_threaded_evaluator_keeps_order(monkeypatch):
  """Results come back in candidate order whatever order threads finish."""
  import time  # pylint: disable=import-outside-toplevel
  from gram_jax.scale import batched  # pylint: disable=import-outside-toplevel

  monkeypatch.setattr(batched.os, "cpu_count", lambda: 4)

  def trainer(masks, key):
    del key
    time.sleep(0.05 * (4 - int(masks)))  # the first finishes last
    return int(masks)

  fn = batched.ThreadedEvaluator(trainer)
  assert fn(np.arange(4), [None] * 4) == [0, 1, 2, 3]
  assert fn._pool._max_workers == 4  # pylint: disable=protected-access
  assert batched.num_threads(1) == 1 and batched.num_threads(9) == 4


def test_one_and_eight_devices_agree(tmp_path_factory):
  """The 4 candidates sharded over 8 fake devices (4 are padding)."""
  assert jax.device_count() == 8
  one = _run(tmp_path_factory, "batched", BATCHED)
  eight = _run(
      tmp_path_factory, "devices8", BATCHED + ["--config.search.devices=8"]
  )
  for a, b in zip(one.seeds, eight.seeds):
    _assert_same(a, b)


def test_candidates_update_in_order():
  strategy = gram(alpha=0.9, beta0=0.4)
  graph = mg.init(
      SearchSpace(hierarchies=1, dags_per_hierarchy=2, nodes=5),
      jax.random.key(0),
      init_weight=0.5,
  )
  state = strategy.init(graph, jax.random.key(0))
  sample, update = loop.batched_steps(strategy)
  keys = loop.candidate_keys(jnp.stack([jax.random.key(1)]), 6, 3)
  # one candidate per iteration draws the keys it always drew
  np.testing.assert_array_equal(
      jax.random.key_data(keys[0, 1]),
      jax.random.key_data(jax.random.fold_in(jax.random.key(1), 7)),
  )
  stacked = jax.tree.map(lambda x: x[None], state)
  masks = sample(stacked, keys)
  rewards = jnp.asarray([[0.7, 0.2, 0.5]], jnp.float32)
  new, baselines = update(stacked, masks, rewards)
  want, seen = state, []
  for i in range(3):
    np.testing.assert_array_equal(
        masks[0, i], strategy.sample(state, keys[0, i])
    )
    seen.append(float(want.baseline))
    want = strategy.update(want, masks[0, i], rewards[0, i])
  np.testing.assert_allclose(
      new.graph.weights[0], want.graph.weights, rtol=1e-6
  )
  np.testing.assert_allclose(baselines[0], seen, rtol=1e-6)
  assert int(new.step[0]) == 3


_WORKER = r"""
import json, os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
from gram_jax.scale import distributed
pid, port, base = int(sys.argv[1]), sys.argv[2], sys.argv[3]
distributed.initialize(f"127.0.0.1:{port}", 2, pid, initialization_timeout=60)
import jax
from gram_jax.search import config as config_lib, loop
cfg = config_lib.resolve(sys.argv[4], sys.argv[5:])
out = loop.run_search(cfg, os.path.join(base, f"work{pid}"), progress=False)
with open(os.path.join(base, f"result{pid}.json"), "w") as f:
  json.dump({"devices": jax.device_count(), "processes": jax.process_count(),
             "weights": out.state.graph.weights.tolist(),
             "accuracy": [[r["accuracy"] for r in s.records] for s in out.seeds]
             if jax.process_index() == 0 else None}, f)
jax.distributed.shutdown()
"""


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_run_one_sharded_search(tmp_path, tmp_path_factory):
  script = tmp_path / "worker.py"
  script.write_text(_WORKER)
  port = str(_free_port())
  env = dict(os.environ, PYTHONPATH=ROOT)
  env.pop("XLA_FLAGS", None)
  args = BATCHED + ["--config.search.devices=0"]
  procs = [
      subprocess.Popen(
          [sys.executable, str(script), str(p), port, str(tmp_path), QUICKSTART]
          + args,
          env=env,
          stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT,
      )
      for p in (0, 1)
  ]
  logs = [
      "\n".join(
          l
          for l in p.communicate(timeout=240)[0].decode().splitlines()
          if "[Gloo]" not in l
      )[-3000:]
      for p in procs
  ]
  assert [p.returncode for p in procs] == [0, 0], logs
  res = [json.loads((tmp_path / f"result{p}.json").read_text()) for p in (0, 1)]
  assert res[0]["devices"] == 8 and res[0]["processes"] == 2
  assert res[0]["weights"] == res[1]["weights"]  # the processes agree
  # only process 0 wrote a workdir
  assert (tmp_path / "work0" / "seed_1" / "metagraph.json").exists()
  assert not (tmp_path / "work1").exists()
  # and the 2-process run equals the 1-process one
  one = _run(tmp_path_factory, "batched", BATCHED)
  np.testing.assert_allclose(
      res[0]["weights"], one.state.graph.weights, atol=1e-6
  )
  assert res[0]["accuracy"] == [
      [r["accuracy"] for r in s.records] for s in one.seeds
  ]


def test_sweep_final_eval_trains_each_point_with_the_final_recipe(
    tmp_path, monkeypatch
):
  from gram_jax.search import loop  # pylint: disable=import-outside-toplevel

  calls = []
  real = loop.fit_final

  def spy(config, spec, ds, **kw):
    fitted = real(config, spec, ds, **kw)
    calls.append((config.final.epochs, spec.num_edges, fitted.test_accuracy))
    return fitted

  monkeypatch.setattr(loop, "fit_final", spy)
  work = str(tmp_path / "sweep")
  argv = (
      [
          "sweep",
          "--config",
          QUICKSTART,
          "--workdir",
          work,
          "--no-progress",
          "--eval",
          "final",
          "--grid",
          "prune_level=0.3,0.6",
      ]
      + TINY
      + ["--config.search.iterations=1", "--config.final.epochs=1"]
  )
  assert cli.main(argv) == 0
  rows = json.load(open(os.path.join(work, "sweep.json")))
  # one final training per point, its test accuracy in the row
  assert [c[0] for c in calls] == [1, 1]
  assert [r["accuracy"] for r in rows] == [c[2] for c in calls]
  assert [r["edges"] for r in rows] == [c[1] for c in calls]


def test_sweep_table_pareto_and_resume(tmp_path, capsys):
  work = str(tmp_path / "sweep")
  argv = (
      [
          "sweep",
          "--config",
          QUICKSTART,
          "--workdir",
          work,
          "--no-progress",
          "--grid",
          "gamma=0.05,0.1",
          "--grid",
          "prune_level=0.3,0.6",
          "--grid",
          "seed=0,1",
      ]
      + TINY
      + ["--config.search.iterations=1"]
  )
  assert cli.main(argv) == 0
  out = capsys.readouterr().out
  assert "| gamma | prune_level | seed |" in out
  rows = json.load(open(os.path.join(work, "sweep.json")))
  assert len(rows) == 8
  # seeds 0 and 1 ran as one batched search per gamma; levels shared it
  assert sorted(os.listdir(os.path.join(work, "runs"))) == [
      "gamma=0.05,seed=0-1",
      "gamma=0.1,seed=0-1",
  ]
  for r in rows:
    assert 0 <= r["accuracy"] <= 1 and r["macs"] > 0
  lines = open(os.path.join(work, "sweep.csv")).read().splitlines()
  assert len(lines) == 9 and lines[0].startswith("name,gamma,prune_level")
  assert "yes" in open(os.path.join(work, "sweep.md")).read()
  assert os.path.getsize(os.path.join(work, "pareto.png")) > 0
  # a lower prune level keeps at least the edges of a higher one
  by = {(r["gamma"], r["seed"], r["prune_level"]): r for r in rows}
  for g in ("0.05", "0.1"):
    for s in ("0", "1"):
      assert by[(g, s, "0.3")]["edges"] >= by[(g, s, "0.6")]["edges"]
  # a second call reads the finished points back
  before = open(os.path.join(work, "sweep.json")).read()
  assert cli.main(argv) == 0
  assert open(os.path.join(work, "sweep.json")).read() == before


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["sweep", "--grid", "bogus=1"], "--grid: 'bogus' is not allowed"),
        (["sweep", "--grid", "gamma"], "--grid: 'gamma' is not allowed"),
        (["search", "--process-id", "1"], "--coordinator-address/--num-proc"),
        (
            [
                "search",
                "--config.search.batch_candidates=loop",
                "--config.search.devices=4",
            ],
            "config.search.devices: 4 is not allowed",
        ),
        (
            [
                "search",
                "--config.search.batch_candidates=vmap",
                "--config.search.devices=16",
            ],
            "config.search.devices: 16 is not",
        ),
        (
            [
                "search",
                "--config.search.batch_candidates=threads",
                "--config.search.devices=2",
            ],
            "config.search.devices: 2 is not allowed",
        ),
        (
            ["search", "--config.search.batch_candidates=fibres"],
            "config.search.batch_candidates: 'fibres'",
        ),
    ],
)
def test_bad_scale_input_is_one_line(tmp_path, capsys, argv, msg):
  work = str(tmp_path / "w")
  code = cli.main(
      argv[:1] + ["--config", QUICKSTART, "--workdir", work] + argv[1:]
  )
  err = capsys.readouterr().err.strip()
  assert code == 2 and msg in err and len(err.splitlines()) == 1, err
  assert not os.path.exists(work)


_CACHED = r"""
import json, sys
import jax
from gram_jax import cli
from gram_jax.search import config as config_lib, loop
cli.enable_compilation_cache(sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
counts = {"hits": 0, "misses": 0}
def listener(event, **kw):
  for name in counts:
    if event == f"/jax/compilation_cache/cache_{name}":
      counts[name] += 1
jax.monitoring.register_event_listener(listener)
cfg = config_lib.resolve(sys.argv[3], sys.argv[4:])
loop.run_search(cfg, sys.argv[2], progress=False)
print(json.dumps(counts))
"""


def test_compilation_cache_second_run_does_not_compile(tmp_path):
  script = tmp_path / "cached.py"
  script.write_text(_CACHED)
  env = dict(os.environ, PYTHONPATH=ROOT)
  counts = []
  for i in range(2):
    out = subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "cache"),
            str(tmp_path / f"run{i}"),
            QUICKSTART,
        ]
        + TINY
        + ["--config.search.iterations=1"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    counts.append(json.loads(out.strip().splitlines()[-1]))
  # the first run compiles and stores; the second only loads
  assert counts[0]["misses"] > 0, counts
  assert counts[1]["misses"] == 0 and counts[1]["hits"] > 0, counts


def test_auto_batching_resolves_by_backend_and_devices():
  from gram_jax.scale import batched  # pylint: disable=import-outside-toplevel

  assert batched.resolve_mode("auto", backend="cpu") == "threads"
  assert batched.resolve_mode("auto", backend="gpu") == "vmap"
  assert batched.resolve_mode("auto", devices=4, backend="cpu") == "vmap"
  assert batched.resolve_mode("loop", backend="gpu") == "loop"
  with pytest.raises(ValueError, match="batch_candidates"):
    batched.resolve_mode("grouped")
  cfg = config_lib.SearchConfig.from_dict(
      {"search": {"batch_candidates": "auto"}}
  )
  assert cfg.search.batch_candidates == "auto"
