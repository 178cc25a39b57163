"""The run kernel: what every resumable command does with its workdir.

A run is a directory (DESIGN.md decision 7). Every command that resumes one
(``search``, ``single-path``, ``train``, ``autoshrink``, ``train-rnn``, and
``sweep`` through ``search``) goes through these pieces:

  * `prepare_workdir`: creates the workdir and its ``config.json``, or checks
    that the run it holds has the same config; which fields may differ on
    resume (the length of a run, say) is the caller's argument.
  * `Checkpoints`: one orbax `CheckpointManager` over one pytree, restored
    against a target the caller builds (``jax.eval_shape`` or an init), with
    one policy for a checkpoint that does not restore: warn in one line, move
    that step aside (``checkpoints_corrupt/<step>-<ns>``, next to
    ``checkpoints/``) and try the previous step; if none restores, start
    fresh (the last warning says so).
  * `JsonlLog`: a JSONL log rewound to the restored step (records at or past
    it are dropped, so a resumed run writes each line once), then appended
    to, one line per record, optionally mirrored to TensorBoard.
  * `progress_bar`: the tqdm bar, shown from where the run resumed.

Only process 0 (`is_primary`) writes: under `jax.distributed` the others
read nothing from the workdir and get process 0's restored state by a
broadcast. Files are JSON and orbax checkpoints only (no pickle).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp

from gram_jax import io
from gram_jax.config import diff
from gram_jax.errors import GramJaxError
from gram_jax.scale import distributed

CONFIG = "config.json"


def is_primary() -> bool:
  """Process 0: the one process that writes the workdir."""
  return jax.process_index() == 0


def _plain_json(x: Any) -> Any:
  return json.loads(json.dumps(x))


def _pop_path(d: Dict[str, Any], dotted: str) -> None:
  *parents, last = dotted.split(".")
  for key in parents:
    d = d.get(key)
    if not isinstance(d, dict):
      return
  d.pop(last, None)


def prepare_workdir(workdir: str, config: Dict[str, Any], *,
                    may_change: Sequence[str] = (),
                    upgrade: Optional[Callable[[Dict[str, Any]],
                                               Dict[str, Any]]] = None,
                    prefix: str = "config.",
                    error: type = GramJaxError) -> bool:
  """Creates `workdir` with ``config.json``, or checks it holds this run.

  Args:
    workdir: the run directory (created if missing).
    config: the run's resolved config, a JSON-able dict (tuples become
      lists).
    may_change: dotted fields that may differ on resume (e.g.
      ``"search.iterations"``, to extend a run); a resumed run rewrites
      ``config.json`` with the new values.
    upgrade: applied to the stored config before comparing, e.g. to give a
      run written before a field existed that field's default.
    prefix: what the error puts before a field's dotted name.
    error: the exception type of a mismatch or an unreadable config.json.

  Returns:
    True when the workdir already held the run (resume), False when new
    (and on every process but 0, which neither reads nor writes it).

  Raises:
    error: ``config.json`` is unreadable, or differs in a field outside
      `may_change`; the workdir is left untouched.
  """
  if not is_primary():
    return False
  path = os.path.join(workdir, CONFIG)
  new = _plain_json(config)
  if not os.path.exists(path):
    os.makedirs(workdir, exist_ok=True)
    io.write_json_atomic(path, new)
    return False
  try:
    with open(path) as f:
      old = json.load(f)
    if not isinstance(old, dict):
      raise ValueError("not a JSON object")
  except (OSError, ValueError) as e:
    raise error(f"{path}: unreadable ({e}); use a new --workdir") from None
  old_cmp = _plain_json(upgrade(_plain_json(old)) if upgrade else old)
  new_cmp = _plain_json(new)
  for d in (old_cmp, new_cmp):
    for field in may_change:
      _pop_path(d, field)
  d = diff(old_cmp, new_cmp)
  if d:
    field, was, now = d
    may = (f" (only {', '.join(prefix + f for f in may_change)} may "
           "differ)" if may_change else "")
    raise error(f"{prefix}{field}: the workdir {workdir} holds a run with "
                f"{field}={was!r}, this one has {now!r}; use a new "
                f"--workdir or the same config{may}")
  if old != new:
    io.write_json_atomic(path, new)
  return True


class Restored(NamedTuple):
  """A restored checkpoint: its step and the tree (the target's structure)."""
  step: int
  tree: Any


def _shapes(tree) -> List[tuple]:
  return [tuple(np.shape(x) if not hasattr(x, "shape") else x.shape)
          for x in jax.tree.leaves(tree)]


def _one_line(e: BaseException) -> str:
  text = str(e).splitlines()[0][:200] if str(e) else ""
  return f"{type(e).__name__}: {text}" if text else type(e).__name__


class Checkpoints:
  """One orbax `CheckpointManager` over one pytree, on process 0 only.

  Example::

    ckpt = Checkpoints(workdir, max_to_keep=3)
    got = ckpt.restore(jax.eval_shape(init, key))   # or a fresh init
    state, start = (got.tree, got.step) if got else (init(key), 0)
    ...
    ckpt.save(step, state)
    ckpt.close()

  Args:
    workdir: the run directory; checkpoints go to ``workdir/name``.
    max_to_keep: how many steps orbax keeps.
    name: the checkpoint directory's name inside `workdir`.
  """

  def __init__(self, workdir: str, *, max_to_keep: int,
               name: str = "checkpoints"):
    self.workdir = workdir
    self.directory = os.path.abspath(os.path.join(workdir, name))
    self.aside = self.directory + "_corrupt"
    self.manager = None
    if not is_primary():
      return
    opts = {"max_to_keep": max_to_keep, "create": True}
    if jax.process_count() > 1:
      # Only process 0 checkpoints: the state is the same everywhere.
      os.makedirs(self.directory, exist_ok=True)
      opts.update(create=False,
                  multiprocessing_options=ocp.options.MultiprocessingOptions(
                      primary_host=0, active_processes={0}))
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(**opts))

  def restore(self, target: Any) -> Optional[Restored]:
    """The newest checkpoint that restores against `target`, or None.

    `target` gives the structure, shapes and dtypes (``jax.eval_shape`` of
    the init, or the init itself; numpy leaves restore as numpy arrays). A
    step that fails to restore, or restores other shapes, is reported in one
    warning, moved to ``<name>_corrupt/<step>-<ns>`` and the previous step is
    tried; when none restores, None (the run starts fresh). Under
    `jax.distributed`, call it on every process: process 0 reads and the
    others receive its result.
    """
    found = None
    if self.manager is not None:
      found = self._restore_primary(target)
    if jax.process_count() == 1:
      return found
    return self._broadcast(found, target)

  def _restore_primary(self, target: Any) -> Optional[Restored]:
    steps = sorted(self.manager.all_steps(), reverse=True)
    want = _shapes(target)
    for i, step in enumerate(steps):
      try:
        tree = self.manager.restore(step,
                                    args=ocp.args.StandardRestore(target))
        got = _shapes(tree)
        if got != want:
          raise ValueError(f"restored shapes {got} differ from the "
                           f"run's {want}")
        return Restored(int(step), tree)
      except Exception as e:  # any unreadable checkpoint: fall back  # pylint: disable=broad-except
        src = os.path.join(self.directory, str(step))
        then = (f"resuming from an earlier one (step {steps[i + 1]})"
                if i + 1 < len(steps) else
                "no earlier one: starting the run from the beginning")
        warnings.warn(f"checkpoint {src} is unreadable ({_one_line(e)}); "
                      f"moved to {self.aside}; {then}", stacklevel=3)
        if os.path.exists(src):
          os.makedirs(self.aside, exist_ok=True)
          shutil.move(src, os.path.join(self.aside,
                                        f"{step}-{time.time_ns()}"))
        self.manager.reload()
    return None

  def _broadcast(self, found: Optional[Restored],
                 target: Any) -> Optional[Restored]:
    zeros = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), target)
    step, tree = (found.step, found.tree) if found is not None else (-1, zeros)
    step, tree = distributed.broadcast_from_primary(
        (np.int64(step), jax.tree.map(np.asarray, tree)))
    return None if int(step) < 0 else Restored(int(step), tree)

  def save(self, step: int, tree: Any) -> None:
    """Saves `tree` as `step` (asynchronously; process 0 only)."""
    if self.manager is not None:
      self.manager.save(step, args=ocp.args.StandardSave(tree))

  def wait(self) -> None:
    """Blocks until the saves started so far are on disk."""
    if self.manager is not None:
      self.manager.wait_until_finished()

  def close(self) -> None:
    if self.manager is not None:
      self.manager.wait_until_finished()
      self.manager.close()
      self.manager = None


def tensorboard_writer(logdir: str) -> Optional[Callable[[int, Dict], None]]:
  """``write(step, record)``: a record's numbers as TensorBoard scalars
  (TF's summary API), or None where TensorFlow is not installed."""
  try:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  writer = tf.summary.create_file_writer(logdir)

  def write(step, rec):
    with writer.as_default():
      for key, value in rec.items():
        if isinstance(value, (int, float)):
          tf.summary.scalar(key, value, step=step)
    writer.flush()

  return write


class JsonlLog:
  """A JSONL log of a resumable run: rewound, then appended to.

  Opening it keeps the records whose `key` is below `before` (the restored
  step) and drops the rest, and a torn last line, so a resumed run writes
  each record once. `records` holds the kept and the written records. Only
  process 0 reads or writes the file (elsewhere `records` stays empty).

  Args:
    path: the ``.jsonl`` file.
    key: the record field the log is rewound by (``"step"``, ``"epoch"``).
    before: records with ``rec[key] < before`` are kept.
    tensorboard: a log directory: every written record's numbers also go to
      TensorBoard at step ``rec[key]``.
  """

  def __init__(self, path: str, *, key: str, before: float,
               tensorboard: Optional[str] = None):
    self.path, self.key = path, key
    self.records: List[Dict[str, Any]] = []
    self._file = self._tb = None
    if not is_primary():
      return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    self.records = io.read_jsonl(path, key, before)
    io.write_jsonl_atomic(path, self.records)
    self._file = open(path, "a")  # pylint: disable=consider-using-with
    if tensorboard:
      self._tb = tensorboard_writer(tensorboard)

  def write(self, rec: Dict[str, Any], *, flush: bool = True) -> None:
    """Appends one record (a line) to the file, `records` and TensorBoard."""
    if self._file is None:
      return
    self._file.write(json.dumps(rec) + "\n")
    if flush:
      self._file.flush()
    self.records.append(rec)
    if self._tb is not None:
      self._tb(rec[self.key], {k: v for k, v in rec.items() if k != self.key})

  def flush(self) -> None:
    if self._file is not None:
      self._file.flush()

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None

  def __enter__(self) -> "JsonlLog":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def progress_bar(enabled: bool, *, total: int, initial: int, desc: str,
                 unit: str):
  """A tqdm bar from `initial` (where the run resumed) to `total`, or None
  when not `enabled` (no bar asked for, or no work left) and on every
  process but 0."""
  if not (enabled and is_primary()):
    return None
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
  return tqdm(total=total, initial=initial, desc=desc, unit=unit,
              dynamic_ncols=True)
