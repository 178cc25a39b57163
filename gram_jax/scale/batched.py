"""Many candidates in one program: `vmap` (and a mesh) over proxy training.

`BatchedProxyTrainer` trains C candidates at once: the init, train and eval
steps of a `train.ProxyTrainer` are vmapped over a leading candidate axis
(fresh weights, optimizer state, masks and batch order per candidate), and,
given a mesh, that axis is sharded over its devices. Each candidate sees
exactly the batches and initial weights it would see alone, so the results
equal C separate `ProxyTrainer` calls up to float32 rounding (vmapped convs
over per-candidate weights become grouped convs, whose sums run in another
order; tests/test_scale.py states the tolerance).

On the CPU those grouped convs are slow, so one candidate after another
(`batch_candidates="loop"`) is usually faster there; on GPUs and TPUs the
batched program fills the device. A third mode, ``"threads"``, runs the
loop's single-candidate programs from a pool of Python threads (XLA
releases the GIL while a program runs), so that one candidate's
dispatch, data indexing and small ops overlap another's convolutions; each
candidate runs exactly the program it runs in the loop, so the results are
the loop's. `benchmarks/scaling.py` measures all three;
``batch_candidates="auto"`` (`resolve_mode`) picks by backend from those
measurements.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
from typing import List, Optional

import jax
import numpy as np
from jax import shard_map
from jax.sharding import Mesh, PartitionSpec

from gram_jax import train as train_lib
from gram_jax.scale import distributed

MODES = ("loop", "vmap", "threads", "auto")


def resolve_mode(
    mode: str, *, devices: int = 1, backend: Optional[str] = None
) -> str:
  """The concrete batching mode (``"loop"``, ``"vmap"`` or ``"threads"``).

  ``"auto"``: ``"vmap"`` when candidates are sharded over several devices
  (only it can), else ``"threads"`` on the CPU and ``"vmap"`` on
  accelerators. On the 2-core CPU `benchmarks/scaling.py` measured, per
  candidate at K = 2, 4, 8, threads 1.4x the loop and a vmapped batch
  0.4-0.5x (docs/scale.md); threads give the loop's results exactly, and
  with one candidate per call they are the loop.
  """
  if mode not in MODES:
    raise ValueError(
        f"batch_candidates: {mode!r} is not allowed; allowed: "
        f"{', '.join(MODES)}"
    )
  if mode != "auto":
    return mode
  if devices != 1:
    return "vmap"
  backend = backend or jax.default_backend()
  return "threads" if backend == "cpu" else "vmap"


class BatchedProxyTrainer:
  """Trains a batch of candidates of one supernet together.

  Args:
    trainer: the single-candidate trainer whose settings and steps are used.
    mesh: shard the candidate axis over this mesh (None: one device). A
      batch whose size does not divide the mesh is padded with copies of its
      first candidate, whose results are dropped.

  ``trainer(masks, keys)`` with ``masks: bool[C, K, n, n]`` and C typed keys
  returns C `train.ProxyResult`s, in order, on every process.
  """

  def __init__(
      self, trainer: train_lib.ProxyTrainer, *, mesh: Optional[Mesh] = None
  ):
    self.base, self.mesh = trainer, mesh
    self.size = 1 if mesh is None else mesh.size
    init = jax.vmap(
        lambda kd, m: trainer.init_fn(jax.random.wrap_key_data(kd), m)
    )
    step = jax.vmap(trainer.step_fn, in_axes=(0, 0, None, None, 0, 0))
    evaluate = jax.vmap(trainer.eval_fn, in_axes=(0, None, None, None, None, 0))
    if mesh is None:
      self.cand = self.rep = None
      self._init = jax.jit(init)
      self._step = jax.jit(step, donate_argnums=(0, 1))
      self._eval = jax.jit(evaluate)
    else:
      # shard_map, not jit with sharded inputs: each device runs the vmapped
      # program on its own candidates. Letting XLA's SPMD partitioner split
      # the vmapped (grouped) convs instead gave wrong numbers on XLA:CPU
      # (jax 0.10.2; 1x1 conv, batched input: errors of order 10).
      self.cand = distributed.sharded(mesh)
      self.rep = distributed.replicated(mesh)
      a, c, r = (
          distributed.AXIS,
          PartitionSpec(distributed.AXIS),
          PartitionSpec(),
      )

      def gather(x):  # every process reads every candidate's numbers
        return jax.lax.all_gather(x, a, tiled=True)

      def step_gather(*args):
        variables, opt_state, loss = step(*args)
        return variables, opt_state, gather(loss)

      def eval_gather(*args):
        return jax.tree.map(gather, evaluate(*args))

      self._init = jax.jit(
          shard_map(
              init, mesh=mesh, in_specs=(c, c), out_specs=c, check_vma=False
          )
      )
      self._step = jax.jit(
          shard_map(
              step_gather,
              mesh=mesh,
              in_specs=(c, c, r, r, c, c),
              out_specs=(c, c, r),
              check_vma=False,
          ),
          donate_argnums=(0, 1),
      )
      self._eval = jax.jit(
          shard_map(
              eval_gather,
              mesh=mesh,
              in_specs=(c, r, r, r, r, c),
              out_specs=r,
              check_vma=False,
          )
      )
    t = trainer
    self.x_train = distributed.put(t.x_train, self.rep)
    self.y_train = distributed.put(t.y_train, self.rep)
    self.x_val = distributed.put(t.x_val, self.rep)
    self.y_val = distributed.put(t.y_val, self.rep)

  def num_compilations(self) -> int:
    return sum(f._cache_size() for f in (self._init, self._step, self._eval))  # pylint: disable=protected-access

  def _evaluate(self, variables, masks):
    c = len(self.base.x_val)
    correct = loss = 0.0
    for idx, weight in train_lib.padded_chunks(c, self.base.eval_batch_size):
      a, _, l = self._eval(
          variables,
          self.x_val,
          self.y_val,
          distributed.put(idx, self.rep),
          distributed.put(weight, self.rep),
          masks,
      )
      correct, loss = correct + np.asarray(a), loss + np.asarray(l)
    # float32 sums, float64 division: what `ProxyTrainer.evaluate` does
    return correct.astype(np.float64) / c, loss.astype(np.float64) / c

  def __call__(self, masks, keys) -> List[train_lib.ProxyResult]:
    t = self.base
    masks = np.asarray(masks, bool)
    num = masks.shape[0]
    pad = -num % self.size
    pairs = jax.vmap(jax.random.split)(keys)  # [C, 2] keys
    init_kd = np.asarray(jax.random.key_data(pairs[:, 0]))
    rngs = [train_lib.data_rng(pairs[i, 1]) for i in range(num)]
    if pad:
      masks = np.concatenate([masks, np.repeat(masks[:1], pad, 0)])
      init_kd = np.concatenate([init_kd, np.repeat(init_kd[:1], pad, 0)])
      rngs += [train_lib.data_rng(pairs[0, 1]) for _ in range(pad)]
    dev_masks = distributed.put(masks, self.cand)
    variables, opt_state = self._init(
        distributed.put(init_kd, self.cand), dev_masks
    )
    results: List[Optional[train_lib.ProxyResult]] = [None] * num
    best_acc = np.full(num, -1.0)
    best_loss = np.full(num, math.nan)
    train_loss = np.full(num, math.nan)
    for epoch in range(t.epochs):
      variables, opt_state, loss = train_lib.lockstep_epoch(
          self._step,
          variables,
          opt_state,
          rngs,
          (self.x_train, self.y_train, dev_masks),
          batch_size=t.batch_size,
          steps=t.steps_per_epoch,
          index=lambda idx: distributed.put(idx, self.cand),
      )
      if t.select == "best" or epoch == t.epochs - 1:
        epoch_loss = np.asarray(loss)[:num]
        acc, val_loss = self._evaluate(variables, dev_masks)
        for i in range(num):
          if results[i] is not None:
            continue  # diverged at an earlier epoch
          train_loss[i] = epoch_loss[i]
          if not (math.isfinite(epoch_loss[i]) and math.isfinite(val_loss[i])):
            results[i] = train_lib.ProxyResult(
                0.0, math.nan, float(epoch_loss[i]), True
            )
          elif acc[i] > best_acc[i]:
            best_acc[i], best_loss[i] = acc[i], val_loss[i]
    return [
        r
        if r is not None
        else train_lib.ProxyResult(
            float(best_acc[i]), float(best_loss[i]), float(train_loss[i]), False
        )
        for i, r in enumerate(results)
    ]


def make_evaluator(
    trainer: train_lib.ProxyTrainer,
    mode: str = "loop",
    *,
    mesh: Optional[Mesh] = None,
):
  """``fn(masks[C], keys[C]) -> [ProxyResult] * C`` for a batching mode."""
  mode = resolve_mode(mode, devices=1 if mesh is None else mesh.size)
  if mode == "vmap":
    return BatchedProxyTrainer(trainer, mesh=mesh)
  if mesh is not None:
    raise ValueError(
        f"batch_candidates: {mode!r} runs on one device; use "
        "'vmap' to shard candidates over a mesh"
    )

  def loop(masks, keys):
    return [trainer(masks[i], keys[i]) for i in range(masks.shape[0])]

  if mode == "loop":
    return loop
  return ThreadedEvaluator(trainer)


def num_threads(candidates: int) -> int:
  """Threads of a ``"threads"`` batch: one per CPU core, at most one per
  candidate, at least 1."""
  return max(1, min(candidates, os.cpu_count() or 1))


class ThreadedEvaluator:
  """``fn(masks[C], keys[C])``: the loop's trainings from a thread pool.

  Each candidate is trained by the very `trainer` call the loop makes, so
  the results are the loop's, in order; only their overlap in time
  differs. The pool (`num_threads` workers) lives as long as the evaluator.
  """

  def __init__(self, trainer: train_lib.ProxyTrainer):
    self.trainer = trainer
    self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None

  def __call__(self, masks, keys) -> List[train_lib.ProxyResult]:
    c = int(masks.shape[0])
    if c == 1:
      return [self.trainer(masks[0], keys[0])]
    if self._pool is None:
      self._pool = concurrent.futures.ThreadPoolExecutor(
          num_threads(c), thread_name_prefix="gram_jax-candidate"
      )
    futures = [
        self._pool.submit(self.trainer, masks[i], keys[i]) for i in range(c)
    ]
    return [f.result() for f in futures]
