"""The run kernel (`gram_jax.run`): config guard, checkpoints, JSONL logs."""

import json
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gram_jax import run
from gram_jax.errors import GramJaxError


def _truncate_largest_file(step_dir):
  """A torn write: the largest file of a checkpoint loses its second half."""
  files = [os.path.join(b, f) for b, _, fs in os.walk(step_dir) for f in fs]
  path = max(files, key=os.path.getsize)
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:len(data) // 2])


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
  with pytest.raises(GramJaxError, match=r"config\.train\.epochs: the "
                     r"workdir .* holds a run with train\.epochs=5, this "
                     r"one has 7; use a new --workdir"):
    run.prepare_workdir(wd, {"seed": 0, "train": {"epochs": 7,
                                                  "lr": (0.1, 0.2)}})

  class Mine(GramJaxError):
    pass

  with pytest.raises(Mine, match=r"^seed: .*seed=0, this one has 1.*"
                     r"only train\.epochs may differ"):
    run.prepare_workdir(wd, {"seed": 1, "train": {"epochs": 5,
                                                  "lr": (0.1, 0.2)}},
                        may_change=("train.epochs",), prefix="", error=Mine)
  assert open(path).read() == before


def test_config_guard_upgrades_old_runs_and_rejects_unreadable(tmp_path):
  wd = tmp_path / "run"
  wd.mkdir()
  (wd / "config.json").write_text(json.dumps({"a": 1}))
  new = {"a": 1, "added_later": 0}
  with pytest.raises(GramJaxError, match="config.added_later"):
    run.prepare_workdir(str(wd), new)
  assert run.prepare_workdir(str(wd), new,
                             upgrade=lambda old: {"added_later": 0, **old})
  assert json.loads((wd / "config.json").read_text()) == new
  (wd / "config.json").write_text("{not json")
  with pytest.raises(GramJaxError, match="unreadable.*use a new --workdir"):
    run.prepare_workdir(str(wd), new)


# --- Checkpoints ---------------------------------------------------------------


def _tree(step):
  return {"w": np.full((3, 4), step, np.float32),
          "opt": (np.arange(5, dtype=np.int32) * step,),
          "step": np.asarray(step, np.int64)}


def _saved(wd, steps, keep=5):
  ckpt = run.Checkpoints(wd, max_to_keep=keep)
  for s in steps:
    ckpt.save(s, _tree(s))
  ckpt.close()


def test_restore_newest_against_an_eval_shape_target(tmp_path):
  wd = str(tmp_path)
  ckpt = run.Checkpoints(wd, max_to_keep=5)
  assert ckpt.restore(_tree(0)) is None       # a fresh run: nothing, quietly
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
  _truncate_largest_file(os.path.join(wd, "checkpoints", "3"))
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
  with pytest.warns(UserWarning, match="unreadable.*starting the run from "
                    "the beginning"):
    assert ckpt.restore(other) is None
  ckpt.close()


def test_no_readable_checkpoint_starts_fresh(tmp_path):
  wd = str(tmp_path)
  _saved(wd, [1, 2])
  for s in ("1", "2"):
    _truncate_largest_file(os.path.join(wd, "checkpoints", s))
  ckpt = run.Checkpoints(wd, max_to_keep=5)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    assert ckpt.restore(_tree(0)) is None
  msgs = [str(w.message) for w in _unreadable(caught)]
  assert len(msgs) == 2 and "from the beginning" in msgs[-1]
  assert os.listdir(os.path.join(wd, "checkpoints")) == []
  assert len(os.listdir(os.path.join(wd, "checkpoints_corrupt"))) == 2
  ckpt.close()


# --- JsonlLog and progress -------------------------------------------------------


def test_jsonl_log_rewinds_drops_a_torn_line_and_appends(tmp_path):
  path = str(tmp_path / "sub" / "log.jsonl")
  with run.JsonlLog(path, key="step", before=0) as log:
    for t in range(4):
      log.write({"step": t, "loss": 1.0 / (t + 1)})
  with open(path, "a") as f:
    f.write('{"step": 4, "lo')                # killed mid-write
  with run.JsonlLog(path, key="step", before=2) as log:
    assert [r["step"] for r in log.records] == [0, 1]
    log.write({"step": 2, "loss": 0.3})
    assert [r["step"] for r in log.records] == [0, 1, 2]
  assert [json.loads(l)["step"] for l in open(path)] == [0, 1, 2]


def test_jsonl_log_mirrors_numbers_to_tensorboard(tmp_path):
  pytest.importorskip("tensorflow")
  tb = str(tmp_path / "tb")
  with run.JsonlLog(str(tmp_path / "m.jsonl"), key="epoch", before=1,
                    tensorboard=tb) as log:
    log.write({"epoch": 1, "loss": 0.5, "note": "text"})
  assert os.listdir(tb)


def test_progress_bar_only_when_asked():
  assert run.progress_bar(False, total=3, initial=0, desc="x",
                          unit="it") is None
  bar = run.progress_bar(True, total=3, initial=1, desc="x", unit="it")
  assert bar.n == 1 and bar.total == 3
  bar.close()
