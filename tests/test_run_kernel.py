"""The run kernel (`gram_jax.run`): config guard, checkpoints, JSONL logs."""

import json
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gram_jax import run

import helpers
from gram_jax.errors import GramJaxError


def _tear(step_dir):
  """A torn write: every array data file of a checkpoint loses its second
  half. (All of them: orbax's OCDBT layout keeps files that a restore does
  not read, so tearing only one may leave the checkpoint readable.)"""
  files = [
      os.path.join(b, f)
      for b, _, fs in os.walk(step_dir)
      if os.path.basename(b) == "d"
      for f in fs
  ]
  assert files, f"no array data files in {step_dir}"
  for path in files:
    with open(path, "rb") as f:
      data = f.read()
    with open(path, "wb") as f:
      f.write(data[: len(data) // 2])


def _unreadable(caught):
  return [w for w in caught if "unreadable" in str(w.message)]


# --- prepare_workdir ---------------------------------------------------------


def test_config_guard_new_resume_may_change_and_mismatch(tmp_path):
  wd = str(tmp_path / "run")
  cfg = {"seed": 0, "train": {"epochs": 2, "lr": (0.1, 0.2)}}
  assert run.prepare_workdir(wd, cfg) is False
  path = os.path.join(wd, "config.json")
  assert json.load(open(path))["train"]["lr"] == [0.1, 0.2]
  assert run.prepare_workdir(wd, cfg) is True
  # a field the caller allows to change: resumes and records the new value
  longer = {"seed": 0, "train": {"epochs": 5, "lr": (0.1, 0.2)}}
  assert run.prepare_workdir(wd, longer, may_change=("train.epochs",))
  assert json.load(open(path))["train"]["epochs"] == 5
  before = open(path).read()
  with pytest.raises(
      GramJaxError,
      match=r"config\.train\.epochs: the "
      r"workdir .* holds a run with train\.epochs=5, this "
      r"one has 7; use a new --workdir",
  ):
    run.prepare_workdir(
        wd, {"seed": 0, "train": {"epochs": 7, "lr": (0.1, 0.2)}}
    )

  class Mine(GramJaxError):
    pass

  with pytest.raises(
      Mine,
      match=r"^seed: .*seed=0, this one has 1.*"
      r"only train\.epochs may differ",
  ):
    run.prepare_workdir(
        wd,
        {"seed": 1, "train": {"epochs": 5, "lr": (0.1, 0.2)}},
        may_change=("train.epochs",),
        prefix="",
        error=Mine,
    )
  assert open(path).read() == before


def test_config_guard_upgrades_old_runs_and_rejects_unreadable(tmp_path):
  wd = tmp_path / "run"
  wd.mkdir()
  (wd / "config.json").write_text(json.dumps({"a": 1}))
  new = {"a": 1, "added_later": 0}
  with pytest.raises(GramJaxError, match="config.added_later"):
    run.prepare_workdir(str(wd), new)
  assert run.prepare_workdir(
      str(wd), new, upgrade=lambda old: {"added_later": 0, **old}
  )
  assert json.loads((wd / "config.json").read_text()) == new
  (wd / "config.json").write_text("{not json")
  with pytest.raises(GramJaxError, match="unreadable.*use a new --workdir"):
    run.prepare_workdir(str(wd), new)


# --- Checkpoints ---------------------------------------------------------------


def _tree(step):
  return {
      "w": np.full((3, 4), step, np.float32),
      "opt": (np.arange(5, dtype=np.int32) * step,),
      "step": np.asarray(step, np.int64),
  }


def _saved(wd, steps, keep=5):
  ckpt = run.Checkpoints(wd, max_to_keep=keep)
  for s in steps:
    ckpt.save(s, _tree(s))
  ckpt.close()


def test_restore_newest_against_an_eval_shape_target(tmp_path):
  wd = str(tmp_path)
  ckpt = run.Checkpoints(wd, max_to_keep=5)
  assert ckpt.restore(_tree(0)) is None  # a fresh run: nothing, quietly
  ckpt.close()
  _saved(wd, [1, 2])
  ckpt = run.Checkpoints(wd, max_to_keep=5)
  target = jax.eval_shape(lambda: jax.tree.map(jnp.asarray, _tree(0)))
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    got = ckpt.restore(target)
  assert not _unreadable(caught)
  assert got.step == 2
  np.testing.assert_array_equal(got.tree["w"], _tree(2)["w"])
  np.testing.assert_array_equal(got.tree["opt"][0], _tree(2)["opt"][0])
  ckpt.close()


def test_corrupt_newest_is_moved_aside_and_the_previous_restored(tmp_path):
  wd = str(tmp_path)
  _saved(wd, [1, 2, 3])
  _tear(os.path.join(wd, "checkpoints", "3"))
  ckpt = run.Checkpoints(wd, max_to_keep=5)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    got = ckpt.restore(_tree(0))
  bad = _unreadable(caught)
  assert len(bad) == 1, [str(w.message) for w in caught]
  msg = str(bad[0].message)
  assert len(msg.splitlines()) == 1 and "step 2" in msg
  assert got.step == 2 and int(got.tree["step"]) == 2
  assert sorted(os.listdir(os.path.join(wd, "checkpoints"))) == ["1", "2"]
  aside = os.listdir(os.path.join(wd, "checkpoints_corrupt"))
  assert len(aside) == 1 and aside[0].startswith("3-")
  # the run goes on: step 3 is written again
  ckpt.save(3, _tree(3))
  ckpt.close()
  ckpt = run.Checkpoints(wd, max_to_keep=5)
  assert ckpt.restore(_tree(0)).step == 3
  ckpt.close()


def test_wrong_shapes_count_as_unreadable(tmp_path):
  wd = str(tmp_path)
  _saved(wd, [1])
  other = {**_tree(0), "w": np.zeros((2, 2), np.float32)}
  ckpt = run.Checkpoints(wd, max_to_keep=5)
  with pytest.warns(
      UserWarning, match="unreadable.*starting the run from the beginning"
  ):
    assert ckpt.restore(other) is None
  ckpt.close()


def test_no_readable_checkpoint_starts_fresh(tmp_path):
  wd = str(tmp_path)
  _saved(wd, [1, 2])
  for s in ("1", "2"):
    _tear(os.path.join(wd, "checkpoints", s))
  ckpt = run.Checkpoints(wd, max_to_keep=5)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    assert ckpt.restore(_tree(0)) is None
  msgs = [str(w.message) for w in _unreadable(caught)]
  assert len(msgs) == 2 and "from the beginning" in msgs[-1]
  assert os.listdir(os.path.join(wd, "checkpoints")) == []
  assert len(os.listdir(os.path.join(wd, "checkpoints_corrupt"))) == 2
  ckpt.close()


_WORKER = r"""
import json, os, sys, warnings
sys.path.insert(0, sys.argv[4])
from gram_jax.scale import distributed
pid, port, base = int(sys.argv[1]), sys.argv[2], sys.argv[3]
distributed.initialize(f"127.0.0.1:{port}", 2, pid, initialization_timeout=60)
import jax
import numpy as np
from gram_jax import run
from test_run_kernel import _tree, _tear
wd = os.path.join(base, f"work{pid}")
ckpt = run.Checkpoints(wd, max_to_keep=3)
for s in (1, 2):
  ckpt.save(s, _tree(s))
ckpt.close()
if pid == 0:
  _tear(os.path.join(wd, "checkpoints", "2"))
ckpt = run.Checkpoints(wd, max_to_keep=3)
with warnings.catch_warnings(record=True) as caught:
  warnings.simplefilter("always")
  got = ckpt.restore(_tree(0))
ckpt.close()
with open(os.path.join(base, f"result{pid}.json"), "w") as f:
  json.dump({"step": got.step, "w": np.asarray(got.tree["w"]).tolist(),
             "warned": sum("unreadable" in str(w.message) for w in caught)}, f)
jax.distributed.shutdown()
"""


def test_two_processes_restore_on_process_0_and_broadcast(tmp_path):
  import socket  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel

  script = tmp_path / "worker.py"
  script.write_text(_WORKER)
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    port = str(sock.getsockname()[1])
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  procs = [
      subprocess.Popen(
          [
              sys.executable,
              str(script),
              str(p),
              port,
              str(tmp_path),
              os.path.join(ROOT, "tests"),
          ],
          env=env,
          stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT,
      )
      for p in (0, 1)
  ]
  logs = [p.communicate(timeout=180)[0].decode()[-3000:] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], logs
  res = [json.loads((tmp_path / f"result{p}.json").read_text()) for p in (0, 1)]
  # process 0 fell back to step 1 and process 1 received it
  assert [r["step"] for r in res] == [1, 1]
  assert res[0]["w"] == res[1]["w"] == _tree(1)["w"].tolist()
  assert [r["warned"] for r in res] == [1, 0]
  assert not (tmp_path / "work1").exists()  # only process 0 writes


# --- JsonlLog and progress -------------------------------------------------------


def test_jsonl_log_rewinds_drops_a_torn_line_and_appends(tmp_path):
  path = str(tmp_path / "sub" / "log.jsonl")
  with run.JsonlLog(path, key="step", before=0) as log:
    for t in range(4):
      log.write({"step": t, "loss": 1.0 / (t + 1)})
  with open(path, "a") as f:
    f.write('{"step": 4, "lo')  # killed mid-write
  with run.JsonlLog(path, key="step", before=2) as log:
    assert [r["step"] for r in log.records] == [0, 1]
    log.write({"step": 2, "loss": 0.3})
    assert [r["step"] for r in log.records] == [0, 1, 2]
  assert [json.loads(l)["step"] for l in open(path)] == [0, 1, 2]


def test_crc32c_matches_the_castagnoli_check_value():
  assert run.crc32c(b"123456789") == 0xE3069283
  assert run.crc32c(b"") == 0


def _read_events(logdir):
  """``[(step, tag, value)]`` of every scalar under `logdir`, as
  TensorFlow's own reader sees them (it checks each record's CRCs)."""
  tf = pytest.importorskip("tensorflow")
  out = []
  for name in sorted(os.listdir(logdir)):
    for event in tf.compat.v1.train.summary_iterator(
        os.path.join(logdir, name)
    ):
      for v in event.summary.value:
        out.append((event.step, v.tag, round(v.simple_value, 6)))
  return out


def test_jsonl_log_mirrors_numbers_to_tensorboard(tmp_path):
  tb = str(tmp_path / "tb")
  with run.JsonlLog(
      str(tmp_path / "m.jsonl"), key="epoch", before=1, tensorboard=tb
  ) as log:
    assert not os.path.exists(tb)  # nothing written: no file yet
    log.write({
        "epoch": 1,
        "loss": 0.5,
        "note": "text",
        "ok": True,
        "nan": float("nan"),
    })
    log.write({"epoch": 2, "loss": 0.25, "macs": 1234567})
  assert _read_events(tb) == [
      (1, "loss", 0.5),
      (2, "loss", 0.25),
      (2, "macs", 1234567.0),
  ]


def test_tensorboard_step_by_index_for_logs_with_repeated_keys(tmp_path):
  tb = str(tmp_path / "tb")
  path = str(tmp_path / "r.jsonl")
  with run.JsonlLog(
      path, key="round", before=0, tensorboard=tb, tensorboard_step="index"
  ) as log:
    for r, score in [(0, 0.1), (0, 0.2), (1, 0.3)]:
      log.write({"round": r, "score": score})
  assert [(s, v) for s, _, v in _read_events(tb)] == [
      (0, 0.1),
      (1, 0.2),
      (2, 0.3),
  ]
  with pytest.raises(ValueError, match="tensorboard_step"):
    run.JsonlLog(path, key="round", before=0, tensorboard_step="round")


def test_progress_bar_only_when_asked():
  assert (
      run.progress_bar(False, total=3, initial=0, desc="x", unit="it") is None
  )
  bar = run.progress_bar(True, total=3, initial=1, desc="x", unit="it")
  assert bar.n == 1 and bar.total == 3
  bar.close()


# --- every ported command: a corrupt newest checkpoint ---------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _search_command(tmp_path):
  from gram_jax.search import config as config_lib  # pylint: disable=import-outside-toplevel
  from gram_jax.search import loop  # pylint: disable=import-outside-toplevel

  cfg = config_lib.resolve(
      os.path.join(ROOT, "experiments", "configs", "quickstart.py"),
      [
          "--config.space.hierarchies=1",
          "--config.space.dags_per_hierarchy=2",
          "--config.space.nodes=4",
          "--config.proxy.num_train=60",
          "--config.proxy.num_val=40",
          "--config.train.epochs=1",
          "--config.train.batch_size=20",
          "--config.search.iterations=6",
          "--config.checkpoint_every=2",
      ],
  )

  def run_it(wd, stop_after):
    loop.run_search(cfg, wd, progress=False, stop_after=stop_after)

  def result(wd):
    return (
        open(os.path.join(wd, "metagraph.json")).read(),
        [
            (r["step"], r["reward"], r["baseline"])
            for r in map(json.loads, open(os.path.join(wd, "candidates.jsonl")))
        ],
    )

  return run_it, result, 4, [2, 4], ("candidates.jsonl", "step")


def _single_path_command(tmp_path):
  from gram_jax.singlepath import config as sp_config  # pylint: disable=import-outside-toplevel
  from gram_jax.singlepath import search as sp_search  # pylint: disable=import-outside-toplevel

  d = helpers.tiny_single_path_config()
  cfg = sp_config.SinglePathConfig.from_dict(d)

  def run_it(wd, stop_after):
    sp_search.run_search(
        cfg, wd, progress=False, stop_after=stop_after, log=lambda m: None
    )

  def result(wd):
    steps = [
        (r["step"], r["loss"], r["decisions"])
        for r in map(json.loads, open(os.path.join(wd, "steps.jsonl")))
    ]
    res = json.load(open(os.path.join(wd, "result.json")))
    return (
        steps,
        res["thresholds"],
        res["decisions"],
        open(os.path.join(wd, "spec.json")).read(),
    )

  # 8 steps an epoch; checkpoints at 4, 8 (an epoch) and 12
  return run_it, result, 12, [4, 8, 12], ("steps.jsonl", "step")


def _train_command(tmp_path):
  from gram_jax import arch  # pylint: disable=import-outside-toplevel
  from gram_jax import fulltrain  # pylint: disable=import-outside-toplevel
  from gram_jax import metagraph as mg  # pylint: disable=import-outside-toplevel
  from gram_jax.space import SearchSpace  # pylint: disable=import-outside-toplevel

  space = SearchSpace(hierarchies=2, dags_per_hierarchy=2, nodes=4, width=0.25)
  g = mg.init(space, jax.random.key(0), init_weight=0.6)
  spec = arch.from_masks(
      space, g.ops, mg.sample(g, jax.random.key(1)), num_classes=10
  )
  recipe = fulltrain.Recipe(epochs=3, batch_size=128, max_examples=512)

  def run_it(wd, stop_after):
    fulltrain.run_training(
        spec,
        "digits",
        wd,
        recipe=recipe,
        progress=False,
        stop_after_epochs=stop_after,
    )

  def result(wd):
    res = json.load(open(os.path.join(wd, "result.json")))
    epochs = [
        (r["epoch"], r["train_loss"], r["top1"])
        for r in map(json.loads, open(os.path.join(wd, "metrics.jsonl")))
    ]
    return epochs, res["top1"], res["top5"], res["test_loss"]

  return run_it, result, 2, [1, 2], ("metrics.jsonl", "epoch")


def _autoshrink_command(tmp_path):
  from gram_jax.autoshrink import command  # pylint: disable=import-outside-toplevel

  config = command.resolve(
      helpers.AUTOSHRINK_CNN_RUNLOCAL, helpers.TINY_AUTOSHRINK_CNN
  )

  def run_it(wd, stop_after):
    command.run_autoshrink(config, wd, progress=False, stop_after=stop_after)

  def result(wd):
    rounds = [
        {k: v for k, v in r.items() if k != "seconds"}
        for r in map(json.loads, open(os.path.join(wd, "rounds.jsonl")))
    ]
    return open(os.path.join(wd, "best.json")).read(), rounds

  # a checkpoint after every round
  return run_it, result, 2, [1, 2], ("rounds.jsonl", "round")


def _train_rnn_command(tmp_path):
  from gram_jax.autoshrink import rnn  # pylint: disable=import-outside-toplevel
  from gram_jax.autoshrink import train_rnn  # pylint: disable=import-outside-toplevel

  cell_path = str(tmp_path / "cell.json")
  rnn.CellSpec(
      4, ((0, 1), (0, 2), (1, 3)), ("tanh", "sigmoid", "tanh", "identity")
  ).save(cell_path)
  recipe = helpers.tiny_lm_recipe(cell_path)

  def run_it(wd, stop_after):
    train_rnn.run_lm_training(
        recipe, wd, progress=False, stop_after_epochs=stop_after
    )

  def result(wd):
    res = json.load(open(os.path.join(wd, "result.json")))
    epochs = [
        (r["epoch"], r["train_loss"], r["val_loss"])
        for r in map(json.loads, open(os.path.join(wd, "metrics.jsonl")))
    ]
    return epochs, res["val_ppl"], res["test_ppl"], res["best_epoch"]

  # the last 2 epochs are kept
  return run_it, result, 2, [1, 2], ("metrics.jsonl", "epoch")


@pytest.mark.parametrize(
    "command",
    [
        _search_command,
        _single_path_command,
        _train_command,
        _autoshrink_command,
        _train_rnn_command,
    ],
    ids=["search", "single-path", "train", "autoshrink", "train-rnn"],
)
def test_command_resumes_past_a_corrupt_newest_checkpoint(
    tmp_path, command, monkeypatch
):
  """Each resumable command: a few steps, a torn newest checkpoint, resume:
  one warning, the bad step moved aside, training continued from the step
  before, and the same logs and result as an uninterrupted run (these runs
  are deterministic: the exact comparison below holds)."""
  run_it, result, stop_after, saved, (log_name, key) = command(tmp_path)
  ref, wd = str(tmp_path / "ref"), str(tmp_path / "run")
  run_it(ref, None)
  run_it(wd, stop_after)
  ckpts = os.path.join(wd, "checkpoints")
  assert sorted(int(s) for s in os.listdir(ckpts)) == saved
  _tear(os.path.join(ckpts, str(saved[-1])))

  restored_steps = []
  original = run.Checkpoints.restore

  def spy(self, target):
    got = original(self, target)
    if self.directory == os.path.abspath(ckpts):
      restored_steps.append(None if got is None else got.step)
    return got

  monkeypatch.setattr(run.Checkpoints, "restore", spy)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    run_it(wd, None)
  bad = _unreadable(caught)
  assert len(bad) == 1, [str(w.message) for w in caught]
  assert f"step {saved[-2]}" in str(bad[0].message)
  # the bad step was moved aside, and training went on from the one before
  aside = os.listdir(os.path.join(wd, "checkpoints_corrupt"))
  assert len(aside) == 1 and aside[0].startswith(f"{saved[-1]}-")
  assert restored_steps == [saved[-2]]

  # each log line once, and the same result as the uninterrupted run
  def keys(d):
    return [json.loads(l)[key] for l in open(os.path.join(d, log_name))]

  assert keys(wd) == keys(ref) and keys(ref) == sorted(keys(ref))
  assert result(wd) == result(ref)
