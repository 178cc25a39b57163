"""One fault harness: every resumable command, killed, misconfigured, resumed.

`COMMANDS` holds one row per resumable command (search, autoshrink CNN and
RNN, single-path, train, train-rnn, experiment, compare, sweep): the argv of
a tiny config, the files that are its final outputs, the wall-clock fields
the comparison ignores, and a config override with a value out of range.
`test_kill_resume_and_bad_config` runs each one as ``python -m gram_jax.cli
<command>`` in subprocesses:

  1. the reference: one uninterrupted run to the end;
  2. in a second workdir, `KILLS` runs, each SIGKILLed as soon as the
     command's progress reaches a kill point. Progress is the number of
     lines of every JSONL log under the workdir plus the number of its final
     output files (other than logs) that exist, so a kill may also fall
     just after a stage wrote its result. The points are distinct, drawn
     with ``np.random.default_rng(zlib.crc32(name))`` from the progress
     values the reference run passes through (1 .. its final progress - 1).
     A run that resumes a workdir whose progress is already at or past its
     point is killed at the first step past where it started. At least one
     run must die by the signal;
  3. after the first kill, once: the same command with one config value out
     of range on the partly run workdir: exit status 2, stderr exactly one
     line naming the field, every file of the workdir byte-identical;
  4. the newest step of the command's own checkpoint directory torn (as
     tests/test_run_kernel.py tears one), then a resume to the end: exactly
     one warning, naming that step (the run goes on from the previous one,
     or from the start when there is none), and final outputs equal to the
     reference's after `_normalise` (the numbers of wall-clock fields
     replaced by a marker that keeps their presence, the two workdir paths
     made one). The comparison is exact: on CPU these runs are
     deterministic, and a resumed run replays the same keys and data order
     as an uninterrupted one.

No killed run may leave a checkpoint that does not restore (no warning
before the tear). The subprocesses share one XLA compilation cache
(``GRAM_JAX_COMPILATION_CACHE``, one per test worker), so a resumed run loads
its programs instead of compiling them again, and compile with
``JAX_DISABLE_MOST_OPTIMIZATIONS`` (compile time dominates these tiny runs;
every run of a command uses the same setting).

experiment, compare and sweep have no checkpoints of their own: they resume
stage by stage, each search and each training from its own checkpoints in
its own run directory, and skip a stage whose result says it is finished.
For them step 4 tears the newest step of the nested run that the kills left
unfinished (the one whose checkpoints changed last, when several are), so
the resumed command must read that run's checkpoints, warn once and fall
back inside the nested run; when the kills left no nested run unfinished,
nothing is torn and no warning may appear. `test_torn_checkpoint_of_a_nested_run`
makes sure the fallback is exercised: it kills each of the three as soon as
its first nested run has a checkpoint, tears that, and resumes. In-process, with a spy on the
restored step, tests/test_run_kernel.py
(`test_command_resumes_past_a_corrupt_newest_checkpoint`) tests the same
fallback for search, single-path, train, autoshrink and train-rnn.
"""

import glob
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from typing import Callable, List, NamedTuple, Tuple

import numpy as np
import pytest

import helpers
from test_run_kernel import _tear

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "experiments", "configs")
KILLS = 3
TIMEOUT = 600  # seconds for one run of a command (a loaded machine)

SEARCH_TINY = [
    "--config.space.hierarchies=1",
    "--config.space.dags_per_hierarchy=2",
    "--config.space.nodes=4",
    "--config.proxy.num_train=60",
    "--config.proxy.num_val=40",
    "--config.train.epochs=1",
    "--config.train.batch_size=20",
]


class Command(NamedTuple):
  """A resumable command on a tiny config.

  name: the test id.
  argv: ``base_dir -> argv`` after ``gram_jax.cli`` (no ``--workdir``); it
    may write input files (an arch.json, a config file) into `base_dir`.
  outputs: paths or glob patterns, relative to the workdir, of the final
    outputs (JSON, JSONL or CSV files).
  wall: names of wall-clock fields (seconds, latencies): every key that
    contains one, and everything under it, is a measurement.
  bad: an override with a value out of range, and the field the error names.
  checkpoints: the command's own orbax checkpoint directory in the workdir
    ("" where it has none: it resumes through the nested runs' own).
  nested: where it has none, ``(pattern, finished)`` pairs: a glob, relative
    to the workdir, of nested run directories (each with its own
    ``checkpoints``), and ``run_dir -> bool``, whether the command, resumed,
    skips that run without reading its checkpoints.
  """

  name: str
  argv: Callable[[str], List[str]]
  outputs: Tuple[str, ...]
  wall: Tuple[str, ...]
  bad: Tuple[str, str]
  checkpoints: str = "checkpoints"
  nested: Tuple[Tuple[str, Callable[[str], bool]], ...] = ()


def _finished_by(name, key=""):
  """``run_dir -> bool``: the file `name` exists there (and, given `key`,
  is a JSON object whose `key` is truthy)."""

  def finished(run_dir):
    path = os.path.join(run_dir, name)
    if not os.path.isfile(path):
      return False
    if not key:
      return True
    with open(path) as f:
      return bool(json.load(f).get(key))

  return finished


def _never(run_dir):
  del run_dir
  return False


def _search(base):
  del base
  return (
      [
          "search",
          "--config",
          os.path.join(CONFIGS, "quickstart.py"),
          "--no-progress",
      ]
      + SEARCH_TINY
      + ["--config.search.iterations=6", "--config.checkpoint_every=2"]
  )


def _autoshrink_cnn(base):
  del base
  return [
      "autoshrink",
      "--config",
      helpers.AUTOSHRINK_CNN_RUNLOCAL,
      "--no-progress",
  ] + helpers.TINY_AUTOSHRINK_CNN


def _autoshrink_rnn(base):
  del base
  rnn = {
      "nodes": 4,
      "nhid": 8,
      "bptt": 8,
      "epochs": 2,
      "batch_size": 64,
      "eval_batch_size": 32,
  }
  return [
      "autoshrink",
      "--config",
      os.path.join(CONFIGS, "autoshrink_rnn_runlocal.py"),
      "--no-progress",
      "--config.search.k=2",
      "--config.search.keep_fraction=0.0",
  ] + [f"--config.rnn.{k}={v}" for k, v in rnn.items()]


def _single_path(base):
  d = helpers.tiny_single_path_config()
  path = os.path.join(base, "singlepath_config.py")
  with open(path, "w") as f:
    f.write(
        "import json\n\n\ndef get_config():\n  return json.loads("
        f"{json.dumps(json.dumps(d))})\n"
    )
  return ["single-path", "--config", path, "--no-progress"]


def _arch_file(base, nodes):
  import jax  # pylint: disable=import-outside-toplevel
  from gram_jax import arch  # pylint: disable=import-outside-toplevel
  from gram_jax import metagraph as mg  # pylint: disable=import-outside-toplevel
  from gram_jax.space import SearchSpace  # pylint: disable=import-outside-toplevel

  space = SearchSpace(
      hierarchies=1 if nodes == 3 else 2,
      dags_per_hierarchy=2,
      nodes=nodes,
      width=0.25,
  )
  g = mg.init(space, jax.random.key(0), init_weight=0.8)
  spec = arch.from_masks(
      space, g.ops, mg.sample(g, jax.random.key(1)), num_classes=10
  )
  path = os.path.join(base, "arch.json")
  spec.save(path)
  return path


def _train(base):
  return [
      "train",
      "--arch",
      _arch_file(base, 4),
      "--dataset",
      "digits",
      "--no-progress",
      "--recipe.epochs=4",
      "--recipe.batch_size=128",
      "--recipe.max_examples=512",
  ]


def _train_rnn(base):
  from gram_jax.autoshrink import rnn  # pylint: disable=import-outside-toplevel

  path = os.path.join(base, "cell.json")
  rnn.CellSpec(
      4, ((0, 1), (0, 2), (1, 3)), ("tanh", "sigmoid", "tanh", "identity")
  ).save(path)
  return [
      "train-rnn",
      "--cell",
      path,
      "--data-dir",
      "synthetic",
      "--no-progress",
      "--config.nhid=8",
      "--config.epochs=4",
      "--config.batch_size=64",
      "--config.eval_batch_size=32",
      "--config.test_batch_size=32",
      "--config.bptt=8",
      "--config.max_seq_len_delta=4",
      "--config.bucket=0",
      "--config.nonmono=1",
  ]


def _experiment(base):
  del base
  return (
      [
          "experiment",
          "--config",
          os.path.join(CONFIGS, "table1_cifar10.py") + ":runlocal",
          "--no-progress",
          "--config.levels=0.2,0.7",
          "--config.recipe.epochs=2",
      ]
      + [f"--config.search.{a[len('--config.'):]}" for a in SEARCH_TINY]
      + [
          "--config.search.search.iterations=3",
          "--config.search.checkpoint_every=1",
      ]
  )


def _compare(base):
  cfg = {
      "dataset": "digits",
      "data_dir": "",
      "recipe": {
          "epochs": 2,
          "batch_size": 64,
          "optimizer": "adam",
          "learning_rate": 4e-3,
          "schedule": "constant",
          "weight_decay": 0.0,
          "augment": "crop_flip",
          "augment_pad": 1,
          "val_examples": 128,
          "train_examples": 256,
          "split_seed": 0,
      },
      "seeds": [0, 1],
      "swiftnet": {
          "sw": {
              "role": "searched",
              "searched_on": "digits",
              "archs": [_arch_file(base, 3)],
          }
      },
      "baselines": ["mbconv_tiny@1.0"],
      "latency": {"threads": 1, "runs": 3, "warmup": 1},
      "int8": {"calibration": 32},
      "similar_points": 100.0,
  }
  path = os.path.join(base, "compare_config.py")
  with open(path, "w") as f:
    f.write(
        "import json\n\n\ndef get_config():\n  return json.loads("
        f"{json.dumps(json.dumps(cfg))})\n"
    )
  return ["compare", "--config", path, "--no-progress"]


def _sweep(base):
  del base
  return (
      [
          "sweep",
          "--config",
          os.path.join(CONFIGS, "quickstart.py"),
          "--no-progress",
          "--grid",
          "gamma=0.05,0.1",
      ]
      + SEARCH_TINY
      + ["--config.search.iterations=2", "--config.checkpoint_every=1"]
  )


SEARCH_OUT = ("config.json", "candidates.jsonl", "metagraph.json", "arch.json")
COMMANDS = [
    Command(
        "search",
        _search,
        SEARCH_OUT,
        ("seconds",),
        ("--config.search.alpha=-1", "config.search.alpha"),
    ),
    Command(
        "autoshrink-cnn",
        _autoshrink_cnn,
        ("config.json", "rounds.jsonl", "best.json"),
        ("seconds",),
        ("--config.search.k=0", "config.search.k"),
    ),
    Command(
        "autoshrink-rnn",
        _autoshrink_rnn,
        ("config.json", "rounds.jsonl", "best.json"),
        ("seconds",),
        ("--config.rnn.nhid=0", "config.rnn.nhid"),
    ),
    Command(
        "single-path",
        _single_path,
        (
            "config.json",
            "steps.jsonl",
            "epochs.jsonl",
            "result.json",
            "spec.json",
        ),
        ("seconds",),
        ("--config.runtime.runtime_lambda=-1", "config.runtime.runtime_lambda"),
    ),
    Command(
        "train",
        _train,
        ("config.json", "metrics.jsonl", "result.json"),
        ("seconds",),
        ("--recipe.epochs=0", "recipe.epochs"),
    ),
    Command(
        "train-rnn",
        _train_rnn,
        ("config.json", "metrics.jsonl", "result.json", "cell.json"),
        ("seconds",),
        ("--config.dropout=1.5", "config.dropout"),
    ),
    Command(
        "experiment",
        _experiment,
        ("results.json", "results.csv")
        + tuple("search/" + p for p in SEARCH_OUT)
        + tuple(
            f"digits/*/{p}"
            for p in ("config.json", "metrics.jsonl", "result.json")
        ),
        ("seconds", "latency"),
        ("--config.levels=0.3,1.5", "config.levels"),
        "",
        (
            ("search", _never),  # a finished search restores its last step
            ("digits/*", _finished_by("result.json", "train_seconds")),
        ),
    ),
    Command(
        "compare",
        _compare,
        (
            "config.json",
            "results.json",
            "results.csv",
            "release/*.json",
            "models/*/seed*/config.json",
            "models/*/seed*/metrics.jsonl",
            "models/*/seed*/result.json",
            "models/*/seed*/int8.json",
        ),
        ("seconds", "latency"),
        ("--config.int8.calibration=0", "config.int8.calibration"),
        "",
        (("models/*/seed*", _finished_by("result.json", "complete")),),
    ),
    Command(
        "sweep",
        _sweep,
        ("sweep.json", "sweep.csv")
        + tuple("runs/*/" + p for p in SEARCH_OUT + ("points.json",)),
        ("seconds",),
        ("--config.search.alpha=-1", "config.search.alpha"),
        "",
        (("runs/*", _finished_by("points.json")),),
    ),
]


@pytest.fixture(scope="module")
def xla_cache(tmp_path_factory):
  """One compilation cache for every subprocess of this module (and worker)."""
  return str(tmp_path_factory.mktemp("xla_cache"))


def _env(cache):
  env = dict(
      os.environ,
      JAX_PLATFORMS="cpu",
      JAX_DISABLE_MOST_OPTIMIZATIONS="1",
      GRAM_JAX_COMPILATION_CACHE=cache,
      PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
  )
  env.pop("XLA_FLAGS", None)  # one CPU device, as a user runs them
  return env


def _progress(workdir, outputs):
  """How far a run is: the lines (newline-terminated) of every JSONL log
  under `workdir`, not counting the hidden temporary file of a log being
  rewritten, plus the files of `outputs` (patterns) other than logs that
  exist (so a kill may also fall just after a stage wrote its result)."""
  n = 0
  for base, _, files in os.walk(workdir):
    for f in files:
      if f.endswith(".jsonl") and not f.startswith("."):
        try:
          with open(os.path.join(base, f), "rb") as fh:
            n += fh.read().count(b"\n")
        except FileNotFoundError:  # replaced while we looked
          pass
  return n + sum(
      len(glob.glob(os.path.join(workdir, p)))
      for p in outputs
      if not p.endswith(".jsonl")
  )


class Run(NamedTuple):
  code: int
  progress: int  # when it ended (was killed)
  stderr: str


def _start(argv, workdir, env, log):
  with open(log, "wb") as err:
    return subprocess.Popen(
        [sys.executable, "-m", "gram_jax.cli"] + argv + ["--workdir", workdir],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )


def _run(argv, workdir, env, log, outputs, kill_at=None, kill_when=None):
  """Runs the command to its end, or SIGKILLs it once the progress of
  `workdir` reaches `kill_at` (or, when it starts at or past `kill_at`, the
  first step past where it started), or once ``kill_when(workdir)``."""
  at = (
      None if kill_at is None else max(kill_at, _progress(workdir, outputs) + 1)
  )
  proc = _start(argv, workdir, env, log)
  deadline = time.monotonic() + TIMEOUT
  try:
    while proc.poll() is None:
      if (at is not None and _progress(workdir, outputs) >= at) or (
          kill_when is not None and kill_when(workdir)
      ):
        proc.send_signal(signal.SIGKILL)
        break
      if time.monotonic() > deadline:
        raise AssertionError(f"{argv[0]}: no end after {TIMEOUT} s")
      time.sleep(0.02)
    proc.wait(timeout=60)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  with open(log) as f:
    return Run(proc.returncode, _progress(workdir, outputs), f.read())


def _outputs(workdir, patterns):
  found = set()
  for p in patterns:
    hits = glob.glob(os.path.join(workdir, p))
    assert hits, f"{p}: no such output in {workdir}"
    found.update(os.path.relpath(h, workdir) for h in hits)
  return sorted(found)


def _normalise(x, wall, workdir, masked=False):
  """`x` with the numbers under a wall-clock field (a key containing one of
  `wall`) replaced by "<wall-clock>" (None stays None: a measurement lost on
  resume is a difference), and `workdir` written "<workdir>" in strings."""
  if isinstance(x, dict):
    return {
        k: _normalise(v, wall, workdir, masked or any(w in k for w in wall))
        for k, v in x.items()
    }
  if isinstance(x, list):
    return [_normalise(v, wall, workdir, masked) for v in x]
  if isinstance(x, str):
    return x.replace(workdir, "<workdir>")
  if masked and isinstance(x, (int, float)) and not isinstance(x, bool):
    return "<wall-clock>"
  return x


def _read(path, wall, workdir):
  import csv  # pylint: disable=import-outside-toplevel

  with open(path) as f:
    if path.endswith(".jsonl"):
      data = [json.loads(line) for line in f]
    elif path.endswith(".csv"):
      data = [
          {
              k: v if v == "" else float(v) if _is_number(v) else v
              for k, v in row.items()
          }
          for row in csv.DictReader(f)
      ]
    else:
      data = json.load(f)
  return _normalise(data, wall, os.path.abspath(workdir))


def _is_number(text):
  try:
    float(text)
  except ValueError:
    return False
  return True


def _final(workdir, cmd):
  return {
      p: _read(os.path.join(workdir, p), cmd.wall, workdir)
      for p in _outputs(workdir, cmd.outputs)
  }


def _tear_newest(workdir, name):
  """Tears the newest step of the checkpoint directory `name` (see
  `test_run_kernel._tear`). Returns the step's directory and what the
  warning must say the run goes on from, or (None, None) when the run has no
  checkpoint yet."""
  directory = os.path.join(workdir, name)
  steps = (
      sorted(int(n) for n in os.listdir(directory) if n.isdigit())
      if os.path.isdir(directory)
      else []
  )
  if not steps:
    return None, None
  step_dir = os.path.join(directory, str(steps[-1]))
  _tear(step_dir)
  then = (
      f"earlier one (step {steps[-2]})"
      if len(steps) > 1
      else "from the beginning"
  )
  return step_dir, then


def _unfinished(workdir, nested):
  """``(time of the newest step, run_dir)`` of every nested run (of
  `Command.nested`) that is unfinished and has a checkpoint."""
  runs = []
  for pattern, finished in nested:
    for run_dir in glob.glob(os.path.join(workdir, pattern)):
      directory = os.path.join(run_dir, "checkpoints")
      if finished(run_dir) or not os.path.isdir(directory):
        continue
      steps = [n for n in os.listdir(directory) if n.isdigit()]
      if steps:
        newest = max(
            os.path.getmtime(os.path.join(directory, n)) for n in steps
        )
        runs.append((newest, run_dir))
  return runs


def _tear_nested(workdir, nested):
  """`_tear_newest` on the unfinished nested run whose checkpoints changed
  last; (None, None) when no nested run is unfinished and has one."""
  runs = _unfinished(workdir, nested)
  if not runs:
    return None, None
  return _tear_newest(max(runs)[1], "checkpoints")


def _unreadable(stderr):
  return [line for line in stderr.splitlines() if "is unreadable" in line]


class Setup(NamedTuple):
  argv: List[str]
  env: dict
  logs: str  # directory of the runs' stderr
  ref: str  # workdir of the uninterrupted reference run
  work: str  # workdir of the interrupted runs
  want: dict  # the reference's final outputs (`_final`)


def _reference(cmd, tmp_path, xla_cache) -> Setup:
  """The command's argv and environment, and one uninterrupted run of it."""
  logs = tmp_path / "logs"
  logs.mkdir()
  argv, env = cmd.argv(str(tmp_path)), _env(xla_cache)
  ref = str(tmp_path / "ref")
  done = _run(argv, ref, env, str(logs / "ref.err"), cmd.outputs)
  assert done.code == 0, done.stderr[-3000:]
  return Setup(
      argv, env, str(logs), ref, str(tmp_path / "run"), _final(ref, cmd)
  )


def _resume_and_compare(cmd, setup, torn, then, where):
  """Resumes `setup.work` to the end: one warning naming the torn step and
  what the run goes on from (none when nothing was torn), and the
  reference's outputs."""
  argv, env, work = setup.argv, setup.env, setup.work
  log = os.path.join(setup.logs, "resume.err")
  done = _run(argv, work, env, log, cmd.outputs)
  assert done.code == 0, done.stderr[-3000:]
  warned = _unreadable(done.stderr)
  assert len(warned) == (torn is not None), (torn, warned)
  if torn is not None:
    assert torn in warned[0] and then in warned[0], (torn, then, warned)
  got = _final(work, cmd)
  assert sorted(got) == sorted(setup.want)
  for path in setup.want:
    assert got[path] == setup.want[path], (path, where)


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.name for c in COMMANDS])
def test_kill_resume_and_bad_config(cmd, tmp_path, xla_cache):
  # 1. the reference, uninterrupted
  setup = _reference(cmd, tmp_path, xla_cache)
  argv, env, work = setup.argv, setup.env, setup.work
  logs = tmp_path / "logs"
  total = _progress(setup.ref, cmd.outputs)
  assert total > KILLS, f"progress {total}: too short to kill {KILLS} times"

  # 2. killed at seeded random progress points
  rng = np.random.default_rng(zlib.crc32(cmd.name.encode()))
  points = sorted(
      int(p) for p in rng.choice(np.arange(1, total), KILLS, replace=False)
  )
  runs = []
  for i, point in enumerate(points):
    r = _run(
        argv, work, env, str(logs / f"kill{i}.err"), cmd.outputs, kill_at=point
    )
    assert r.code in (0, -signal.SIGKILL), r.stderr[-3000:]
    # a kill never leaves a checkpoint that does not restore
    assert not _unreadable(r.stderr), r.stderr[-3000:]
    runs.append(r)
    # 3. once, on the partly run workdir: a value out of range
    if i == 0:
      before = helpers.file_digests(work, dirs=True)
      override, field = cmd.bad
      p = subprocess.run(
          [sys.executable, "-m", "gram_jax.cli"]
          + argv
          + ["--workdir", work, override],
          cwd=ROOT,
          env=env,
          capture_output=True,
          text=True,
          timeout=TIMEOUT,
          check=False,
      )
      err = p.stderr.strip()
      assert p.returncode == 2, p.stderr[-3000:]
      assert len(err.splitlines()) == 1, err
      assert err.startswith(f"gram-jax {argv[0]}: error: {field}"), err
      assert helpers.file_digests(work, dirs=True) == before
  where = (points, [(r.code, r.progress) for r in runs])
  assert any(r.code == -signal.SIGKILL for r in runs), where

  # 4. the newest checkpoint torn, then resumed to the end: one warning (the
  # previous step is used), and the reference's outputs
  torn, then = (
      _tear_newest(work, cmd.checkpoints)
      if cmd.checkpoints
      else _tear_nested(work, cmd.nested)
  )
  _resume_and_compare(cmd, setup, torn, then, where)


NESTED = [c for c in COMMANDS if c.nested]


@pytest.mark.parametrize("cmd", NESTED, ids=[c.name for c in NESTED])
def test_torn_checkpoint_of_a_nested_run(cmd, tmp_path, xla_cache):
  """For the commands without checkpoints of their own: SIGKILLed as soon as
  its first nested run has a checkpoint, that checkpoint torn, then resumed
  to the end: one warning, naming the step, and the outputs of an
  uninterrupted run (the random kills of `test_kill_resume_and_bad_config`
  may leave no nested run unfinished; this one always does)."""
  setup = _reference(cmd, tmp_path, xla_cache)
  r = _run(
      setup.argv,
      setup.work,
      setup.env,
      os.path.join(setup.logs, "kill.err"),
      cmd.outputs,
      kill_when=lambda w: bool(_unfinished(w, cmd.nested)),
  )
  assert r.code == -signal.SIGKILL, r.stderr[-3000:]
  assert not _unreadable(r.stderr), r.stderr[-3000:]
  torn, then = _tear_nested(setup.work, cmd.nested)
  assert torn is not None
  _resume_and_compare(cmd, setup, torn, then, "nested")
