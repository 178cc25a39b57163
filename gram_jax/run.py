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
    to, one line per record, mirrored to TensorBoard events (`EventWriter`,
    which needs no TensorFlow) where the command asks.
  * `progress_bar`: the tqdm bar, shown from where the run resumed.

Only process 0 (`is_primary`) writes: under `jax.distributed` the others
read nothing from the workdir and get process 0's restored state by a
broadcast. Files are JSON and orbax checkpoints only (no pickle).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import struct
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


def prepare_workdir(
    workdir: str,
    config: Dict[str, Any],
    *,
    may_change: Sequence[str] = (),
    upgrade: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None,
    prefix: str = "config.",
    error: type = GramJaxError,
) -> bool:
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
    may = (
        f" (only {', '.join(prefix + f for f in may_change)} may differ)"
        if may_change
        else ""
    )
    raise error(
        f"{prefix}{field}: the workdir {workdir} holds a run with "
        f"{field}={was!r}, this one has {now!r}; use a new "
        f"--workdir or the same config{may}"
    )
  if old != new:
    io.write_json_atomic(path, new)
  return True


class Restored(NamedTuple):
  """A restored checkpoint: its step and the tree (the target's structure)."""

  step: int
  tree: Any


def _shapes(tree) -> List[tuple]:
  return [
      tuple(np.shape(x) if not hasattr(x, "shape") else x.shape)
      for x in jax.tree.leaves(tree)
  ]


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

  def __init__(
      self, workdir: str, *, max_to_keep: int, name: str = "checkpoints"
  ):
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
      opts.update(
          create=False,
          multiprocessing_options=ocp.options.MultiprocessingOptions(
              primary_host=0, active_processes={0}
          ),
      )
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(**opts)
    )

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
        tree = self.manager.restore(step, args=ocp.args.StandardRestore(target))
        got = _shapes(tree)
        if got != want:
          raise ValueError(
              f"restored shapes {got} differ from the run's {want}"
          )
        return Restored(int(step), tree)
      except Exception as e:  # any unreadable checkpoint: fall back  # pylint: disable=broad-except
        src = os.path.join(self.directory, str(step))
        then = (
            f"resuming from an earlier one (step {steps[i + 1]})"
            if i + 1 < len(steps)
            else "no earlier one: starting the run from the beginning"
        )
        warnings.warn(
            f"checkpoint {src} is unreadable ({_one_line(e)}); "
            f"moved to {self.aside}; {then}",
            stacklevel=3,
        )
        if os.path.exists(src):
          os.makedirs(self.aside, exist_ok=True)
          shutil.move(src, os.path.join(self.aside, f"{step}-{time.time_ns()}"))
        self.manager.reload()
    return None

  def _broadcast(
      self, found: Optional[Restored], target: Any
  ) -> Optional[Restored]:
    zeros = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), target)
    step, tree = (found.step, found.tree) if found is not None else (-1, zeros)
    step, tree = distributed.broadcast_from_primary(
        (np.int64(step), jax.tree.map(np.asarray, tree))
    )
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


# --- TensorBoard events, without TensorFlow ------------------------------------
#
# An events file is a TFRecord file of `Event` protocol buffers. The few
# fields a scalar needs are encoded here by hand, so that every run writes
# events and none pays TensorFlow's import (seconds, and most of a search's
# memory) for it: Event {wall_time = 1 (double), step = 2 (int64),
# file_version = 3 (string), summary = 5 {value = 1 {tag = 1 (string),
# simple_value = 2 (float)}}}; each record is framed as ``uint64 length,
# uint32 masked crc32c(length), data, uint32 masked crc32c(data)``.


def _crc32c_table() -> List[int]:
  table = []
  for n in range(256):
    c = n
    for _ in range(8):
      c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    table.append(c)
  return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli) of `data`, as TFRecord frames use."""
  c = 0xFFFFFFFF
  for b in data:
    c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
  return c ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> bytes:
  c = crc32c(data)
  return struct.pack("<I", (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _varint(n: int) -> bytes:
  n &= (1 << 64) - 1  # int64 two's complement
  out = bytearray()
  while True:
    low, n = n & 0x7F, n >> 7
    out.append(low | (0x80 if n else 0))
    if not n:
      return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(
    step: int,
    *,
    wall_time: float,
    version: str = "",
    scalars: Optional[Dict[str, float]] = None,
) -> bytes:
  out = _varint(1 << 3 | 1) + struct.pack("<d", wall_time)
  out += _varint(2 << 3 | 0) + _varint(int(step))
  if version:
    out += _bytes_field(3, version.encode())
  if scalars:
    summary = b"".join(
        _bytes_field(
            1,
            _bytes_field(1, tag.encode())
            + _varint(2 << 3 | 5)
            + struct.pack("<f", value),
        )
        for tag, value in scalars.items()
    )
    out += _bytes_field(5, summary)
  return out


class EventWriter:
  """Scalars to a TensorBoard events file in `logdir` (no TensorFlow).

  The file (``events.out.tfevents.*``; TensorBoard reads every file of the
  directory) is created at the first `write`, so a run that has nothing
  left to do leaves its workdir as it was; each write is flushed, so a
  killed run keeps what it logged. A resumed run writes a new file; steps
  it repeats show twice, and the JSONL log stays the record.
  """

  def __init__(self, logdir: str):
    self.logdir, self.path, self._file = logdir, None, None

  def _record(self, data: bytes) -> None:
    length = struct.pack("<Q", len(data))
    self._file.write(length + _masked_crc(length) + data + _masked_crc(data))

  def write(self, step: int, record: Dict[str, Any]) -> None:
    """The record's numbers (not booleans, not non-finite) at `step`."""
    scalars = {
        k: float(v)
        for k, v in record.items()
        if isinstance(v, (int, float))
        and not isinstance(v, bool)
        and np.isfinite(v)
    }
    if not scalars:
      return
    if self._file is None:
      os.makedirs(self.logdir, exist_ok=True)
      name = (
          f"events.out.tfevents.{time.time():.6f}."
          f"{socket.gethostname()}.{os.getpid()}.gram_jax"
      )
      self.path = os.path.join(self.logdir, name)
      self._file = open(self.path, "ab")  # pylint: disable=consider-using-with
      self._record(_event(0, wall_time=time.time(), version="brain.Event:2"))
    self._record(_event(step, wall_time=time.time(), scalars=scalars))
    self._file.flush()

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None


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
      TensorBoard (`EventWriter`) at step ``rec[key]``.
    tensorboard_step: ``"key"`` (the default) or ``"index"``: the record's
      position in the log, for logs with several records per key value
      (AutoShrink's candidates of one round).
  """

  def __init__(
      self,
      path: str,
      *,
      key: str,
      before: float,
      tensorboard: Optional[str] = None,
      tensorboard_step: str = "key",
  ):
    if tensorboard_step not in ("key", "index"):
      raise ValueError(
          f"tensorboard_step: {tensorboard_step!r} is not "
          "allowed; allowed: key, index"
      )
    self.path, self.key, self._tb_step = path, key, tensorboard_step
    self.records: List[Dict[str, Any]] = []
    self._file = self._tb = None
    if not is_primary():
      return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    self.records = io.read_jsonl(path, key, before)
    io.write_jsonl_atomic(path, self.records)
    self._file = open(path, "a")  # pylint: disable=consider-using-with
    if tensorboard:
      self._tb = EventWriter(tensorboard)

  def write(self, rec: Dict[str, Any], *, flush: bool = True) -> None:
    """Appends one record (a line) to the file, `records` and TensorBoard."""
    if self._file is None:
      return
    self._file.write(json.dumps(rec) + "\n")
    if flush:
      self._file.flush()
    if self._tb is not None:
      step = rec[self.key] if self._tb_step == "key" else len(self.records)
      self._tb.write(step, {k: v for k, v in rec.items() if k != self.key})
    self.records.append(rec)

  def flush(self) -> None:
    if self._file is not None:
      self._file.flush()

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None
    if self._tb is not None:
      self._tb.close()
      self._tb = None

  def __enter__(self) -> "JsonlLog":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def progress_bar(
    enabled: bool, *, total: int, initial: int, desc: str, unit: str
):
  """A tqdm bar from `initial` (where the run resumed) to `total`, or None
  when not `enabled` (no bar asked for, or no work left) and on every
  process but 0."""
  if not (enabled and is_primary()):
    return None
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

  return tqdm(
      total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True
  )


# --- the command-line side of a resumable run --------------------------------


def add_arguments(
    parser,
    *,
    workdir_help: str = "run directory; an existing one is resumed",
    required: bool = True,
    default: Optional[str] = None,
    stop_after: Optional[str] = None,
) -> None:
  """The flags every resumable command shares: ``--workdir``,
  ``--no-progress`` and, where the fault tests stop the command part-way,
  the hidden `stop_after` flag (``--stop-after``: rounds, iterations or
  steps; ``--stop-after-epochs``)."""
  if required:
    parser.add_argument("--workdir", required=True, help=workdir_help)
  else:
    parser.add_argument(
        "--workdir",
        default=default,
        help=f"{workdir_help} (default: {default})"
        if default
        else workdir_help,
    )
  parser.add_argument(
      "--no-progress", action="store_true", help="no progress bar"
  )
  if stop_after:
    parser.add_argument(
        stop_after, type=int, default=None, help=argparse.SUPPRESS
    )


def stopped(unit: str, done: int, total: Optional[int] = None) -> str:
  """The line a command prints when it stopped before the end."""
  of = "" if total is None else f" of {total}"
  return f"stopped after {unit} {done}{of}; run the same command to resume"
