"""The Single-Path NAS search: train the supernet, read off the decisions.

ALGORITHMS.md 3.4. One jitted train step serves the whole run: the runtime
weight ``lambda`` and the indicator keep probability are functions of the
step inside the program (0 and ``indicator_keep`` during the warm-up,
``runtime_lambda`` and 1 after), so nothing recompiles at the switch.

  loss = CE(label smoothing) + weight_decay * 1/2 sum w^2 (non-BN, thresholds
         included, as tf.nn.l2_loss over the trainable variables)
         + lambda_t * scale * ln(R)

The workdir holds ``config.json``, ``steps.jsonl`` (one line per step:
loss, CE, batch accuracy, R, lambda, lr, decisions), ``epochs.jsonl`` (one
line per epoch: test accuracy, R of the hard decisions, thresholds,
decisions), orbax checkpoints, and at the end ``spec.json`` (the decoded
network), ``result.json`` and ``progress.png``. Starting again on the same
workdir resumes from the newest checkpoint; batches and dropout keys are
functions of (seed, step), so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from typing import Any, Dict, List, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gram_jax import data as data_lib
from gram_jax import io
from gram_jax import run as run_lib
from gram_jax.singlepath import runtime as rt
from gram_jax.singlepath import spec as spec_lib
from gram_jax.singlepath import superkernel as sk
from gram_jax.singlepath.config import ConfigError, SinglePathConfig

CONFIG = "config.json"
STEPS = "steps.jsonl"
EPOCHS = "epochs.jsonl"
SPEC = "spec.json"
RESULT = "result.json"
PLOT = "progress.png"


class SearchResult(NamedTuple):
  complete: bool
  step: int
  spec: Optional[spec_lib.SinglePathSpec]
  decisions: Optional[np.ndarray]
  runtime: Optional[float]
  epochs: List[Dict[str, Any]]
  unit: str = "ms"


# --- pieces (importable, testable) -----------------------------------------


def make_optimizer(t, steps_per_epoch: float) -> optax.GradientTransformation:
  """RMSProp with TF1 semantics (or adam/sgd) and the staircase decay."""
  decay_steps = steps_per_epoch * t.lr_decay_epochs

  def schedule(step):
    return t.learning_rate * t.lr_decay ** jnp.floor(step / decay_steps)

  if t.optimizer == "rmsprop":
    # TF1 RMSPropOptimizer: accumulator starts at 1, eps inside the sqrt,
    # lr inside the momentum buffer (ALGORITHMS.md 4).
    tx = optax.rmsprop(
        schedule,
        decay=t.rms_decay,
        eps=t.epsilon,
        initial_scale=1.0,
        eps_in_sqrt=True,
        momentum=t.momentum,
    )
  elif t.optimizer == "adam":
    tx = optax.adam(schedule)
  else:
    tx = optax.sgd(schedule, momentum=t.momentum or None)
  if t.threshold_lr_scale == 1.0:
    return tx
  # Every optimizer here is linear in its learning rate, so scaling the
  # thresholds' updates is a per-parameter learning rate.
  return optax.chain(
      tx, optax.masked(optax.scale(t.threshold_lr_scale), _threshold_mask)
  )


def _threshold_mask(params):
  return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], "key", "") in ("t_k5", "t_e3", "t_e6"),
      params,
  )


def l2_half(params) -> jax.Array:
  """``1/2 sum v^2`` over every parameter outside BatchNorm layers."""
  total = 0.0
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    keys = [getattr(p, "key", "") for p in path]
    if any(k == "bn" or str(k).endswith("_bn") for k in keys):
      continue
    total = total + 0.5 * jnp.sum(jnp.square(leaf))
  return total


class Hyper(NamedTuple):
  """Per-run scalars of the train step, passed as traced arguments so runs
  that differ only in them (a lambda sweep) share one compiled program."""

  runtime_lambda: jax.Array
  scale: jax.Array
  warmup_steps: jax.Array
  indicator_keep: jax.Array
  entries: jax.Array  # the table's [L, 4]
  constant: jax.Array


def make_hyper(r, table: rt.RuntimeTable, warmup_steps: int) -> Hyper:
  return Hyper(
      jnp.float32(r.runtime_lambda),
      jnp.float32(r.scale),
      jnp.int32(warmup_steps),
      jnp.float32(r.indicator_keep),
      jnp.asarray(table.entries, jnp.float32),
      jnp.float32(table.constant),
  )


def make_train_step(
    net: sk.SinglePathSuperNet,
    tx,
    *,
    weight_decay: float,
    label_smoothing: float,
    num_classes: int,
):
  """``step(state, x, y, t, key, hyper) -> (state, metrics)`` (jit it).

  `state` is ``{"params", "batch_stats", "opt_state"}``; `t` the global
  step (an int32 scalar); the per-step keys are ``fold_in(key, t)``.
  Before ``hyper.warmup_steps`` the runtime weight is 0 and indicators
  are dropped out with ``hyper.indicator_keep``; after, lambda is on and
  the keep probability is 1 (identity).
  """

  def step(state, x, y, t, key, hyper: Hyper):
    warm = t < hyper.warmup_steps
    lam = jnp.where(warm, 0.0, hyper.runtime_lambda)
    keep = jnp.where(warm, hyper.indicator_keep, 1.0)
    labels = optax.smooth_labels(
        jax.nn.one_hot(y, num_classes), label_smoothing
    )
    ind_key = jax.random.fold_in(jax.random.fold_in(key, 0), t)
    drop_key = jax.random.fold_in(jax.random.fold_in(key, 1), t)

    def loss_fn(params):
      (logits, d), new = net.apply(
          {"params": params, "batch_stats": state["batch_stats"]},
          x,
          train=True,
          key=ind_key,
          keep=keep,
          rngs={"dropout": drop_key},
          mutable=["batch_stats"],
      )
      ce = optax.softmax_cross_entropy(logits, labels).mean()
      r = rt.model_runtime(d, hyper.entries, hyper.constant)
      loss = (
          ce + weight_decay * l2_half(params) + lam * hyper.scale * jnp.log(r)
      )
      acc = jnp.mean(jnp.argmax(logits, -1) == y)
      return loss, (new["batch_stats"], ce, acc, r, d)

    (loss, (bs, ce, acc, r, d)), grads = jax.value_and_grad(
        loss_fn, has_aux=True
    )(state["params"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = {
        "loss": loss,
        "ce": ce,
        "acc": acc,
        "runtime": r,
        "lambda": lam,
        "decisions": d,
    }
    return {
        "params": params,
        "batch_stats": bs,
        "opt_state": opt_state,
    }, metrics

  return step


class Programs(NamedTuple):
  net: sk.SinglePathSuperNet
  tx: optax.GradientTransformation
  init: Any
  step: Any
  evaluate: Any


@functools.lru_cache(maxsize=8)
def programs(
    macro,
    num_classes: int,
    image_shape: tuple,
    runtime_flags: tuple,
    train,
    steps_per_epoch: float,
) -> Programs:
  """The jitted init, train and eval functions, cached by their settings
  (all hashable), so runs in one process that differ only in `Hyper`
  values reuse the compiled programs."""
  exact_masks, rescale, squared = runtime_flags
  net = sk.SinglePathSuperNet(
      macro,
      num_classes,
      exact_masks=exact_masks,
      rescale_dropout=rescale,
      squared_norm=squared,
  )
  tx = make_optimizer(train, steps_per_epoch)

  def init(key):
    v = net.init(key, jnp.zeros((1,) + image_shape, jnp.float32))
    return {
        "params": v["params"],
        "batch_stats": v["batch_stats"],
        "opt_state": tx.init(v["params"]),
    }

  step = make_train_step(
      net,
      tx,
      weight_decay=train.weight_decay,
      label_smoothing=train.label_smoothing,
      num_classes=num_classes,
  )
  return Programs(
      net, tx, jax.jit(init), jax.jit(step), jax.jit(make_eval_step(net))
  )


def make_eval_step(net: sk.SinglePathSuperNet):
  def evaluate(variables, x, y, weight):
    logits, d = net.apply(variables, x, train=False)
    correct = (jnp.argmax(logits, -1) == y).astype(jnp.float32)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return jnp.sum(correct * weight), jnp.sum(loss * weight), d

  return evaluate


def _evaluate(eval_fn, variables, x, y, batch):
  correct = loss = 0.0
  d = None
  for start in range(0, len(x), batch):
    idx = np.minimum(np.arange(start, start + batch), len(x) - 1)
    w = (np.arange(start, start + batch) < len(x)).astype(np.float32)
    c, l, d = eval_fn(variables, x[idx], y[idx], w)
    correct += float(c)
    loss += float(l)
  return correct / len(x), loss / len(x), np.asarray(d)


class _Data(NamedTuple):
  x_train: Optional[np.ndarray]
  y_train: Optional[np.ndarray]
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  image_shape: tuple
  num_train: int


def load_data(c: SinglePathConfig) -> _Data:
  """The dataset (held in memory; the test split only when streaming)."""
  size = c.image_size or None
  if c.streaming:
    shape = (
        (size, size, data_lib.INFO[c.dataset][0][2])
        if size
        else data_lib.INFO[c.dataset][0]
    )
    n_eval = c.eval_examples or None
    x, y = [], []
    split = "validation" if c.dataset == "imagenet2012" else "test"
    ds = data_lib.tfds_pipeline(
        c.dataset,
        split,
        batch_size=256,
        data_dir=c.data_dir or None,
        image_size=size,
        train=False,
    )
    for xb, yb in ds.as_numpy_iterator():
      x.append(xb)
      y.append(yb)
      if n_eval and sum(len(v) for v in y) >= n_eval:
        break
    x, y = np.concatenate(x)[:n_eval], np.concatenate(y)[:n_eval]
    return _Data(
        None,
        None,
        x,
        y,
        data_lib.INFO[c.dataset][1],
        tuple(shape),
        c.num_train_examples,
    )
  ds = data_lib.load(
      c.dataset,
      data_dir=c.data_dir or None,
      image_size=size,
      max_examples=c.max_examples or None,
      seed=c.seed,
  )
  xt, yt = ds.x_test, ds.y_test
  if c.eval_examples:
    xt, yt = xt[: c.eval_examples], yt[: c.eval_examples]
  return _Data(
      ds.x_train,
      ds.y_train,
      xt,
      yt,
      ds.num_classes,
      tuple(int(v) for v in ds.image_shape),
      len(ds.x_train),
  )


def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(n)


def _stream(c: SinglePathConfig, epoch: int, skip: int):
  ds = data_lib.tfds_pipeline(
      c.dataset,
      "train",
      batch_size=c.train.batch_size,
      data_dir=c.data_dir or None,
      image_size=c.image_size or None,
      train=True,
      seed=c.seed * 100003 + epoch,
      augment="crop_flip",
  )
  return ds.skip(skip).as_numpy_iterator()


def prepare_workdir(config: SinglePathConfig, workdir: str) -> bool:
  """Creates `workdir` or checks it holds the same config (True: resume).

  Only ``train.epochs`` may differ (to extend a run). Any other difference
  is a `ConfigError` and nothing in the workdir is touched.
  """
  return run_lib.prepare_workdir(
      workdir, config.to_dict(), may_change=("train.epochs",), error=ConfigError
  )


def _ckpt_tree(state, step):
  return {
      "params": state["params"],
      "batch_stats": state["batch_stats"],
      "opt_state": jax.tree_util.tree_leaves(state["opt_state"]),
      "step": np.asarray(step, np.int64),
  }


def _restore(ckpt: run_lib.Checkpoints, state):
  """``(state, step)`` of the newest readable checkpoint, or ``(None, 0)``."""
  treedef = jax.tree_util.tree_structure(state["opt_state"])
  got = ckpt.restore(jax.tree.map(np.asarray, _ckpt_tree(state, 0)))
  if got is None:
    return None, 0
  got = got.tree
  opt = jax.tree_util.tree_unflatten(
      treedef, [jnp.asarray(v) for v in got["opt_state"]]
  )
  return {
      "params": jax.tree.map(jnp.asarray, got["params"]),
      "batch_stats": jax.tree.map(jnp.asarray, got["batch_stats"]),
      "opt_state": opt,
  }, int(got["step"])


def _names(d) -> str:
  return ",".join(sk.describe(d))


# --- the run -----------------------------------------------------------------


def run_search(
    config: SinglePathConfig,
    workdir: str,
    *,
    progress: bool = True,
    stop_after: Optional[int] = None,
    log=print,
) -> SearchResult:
  """Runs (or resumes) a Single-Path NAS search in `workdir`.

  Everything that can be wrong with the input (config, dataset, table) is
  checked before the workdir is created or touched.

  Args:
    config: validated settings.
    workdir: the run directory.
    progress: show a progress bar.
    stop_after: stop after this many steps of this call (tests); resumable.
    log: where one-line messages go.

  Returns:
    A `SearchResult` (``spec`` once the run is complete).
  """
  c = config
  macro = c.macro.build()
  data = load_data(c)
  table = rt.load_table(
      c.runtime.table,
      macro,
      data.image_shape,
      data.num_classes,
      where="config.runtime.table",
  )
  b = c.train.batch_size
  if not c.streaming and data.num_train < b:
    raise ConfigError(
        f"config.train.batch_size: {b} is not allowed; "
        f"allowed: <= {data.num_train} (training examples)"
    )
  steps_per_epoch = data.num_train // b
  total = c.train.epochs * steps_per_epoch
  warmup = int(c.runtime.warmup_epochs * data.num_train / b)
  prepare_workdir(c, workdir)

  progs = programs(
      macro,
      data.num_classes,
      data.image_shape,
      (
          c.runtime.exact_masks,
          c.runtime.rescale_dropout,
          c.runtime.squared_norm,
      ),
      # the programs do not depend on the number of epochs
      dataclasses.replace(c.train, epochs=1),
      data.num_train / b,
  )
  root = jax.random.key(c.seed)
  step_key = jax.random.fold_in(root, 1)
  hyper = make_hyper(c.runtime, table, warmup)
  state = progs.init(jax.random.fold_in(root, 0))
  entries = jnp.asarray(table.entries, jnp.float32)

  ckpt = run_lib.Checkpoints(workdir, max_to_keep=c.keep_checkpoints)
  restored, start = _restore(ckpt, state)
  if restored is not None:
    state = restored

  end = total if stop_after is None else min(total, start + stop_after)
  bar = run_lib.progress_bar(
      progress and start < end,
      total=total,
      initial=start,
      desc="Single-Path search",
      unit="step",
  )
  stream, stream_epoch = None, -1
  sums = {"loss": 0.0, "ce": 0.0, "acc": 0.0, "n": 0}
  t_epoch = time.perf_counter()
  # Log lines past the restored step are dropped (an epoch line belongs to
  # the step that ends the epoch).
  steps_log = run_lib.JsonlLog(
      os.path.join(workdir, STEPS), key="step", before=start
  )
  epochs_log = run_lib.JsonlLog(
      os.path.join(workdir, EPOCHS),
      key="step",
      before=start + 1,
      tensorboard=os.path.join(workdir, "tensorboard"),
  )
  epochs = epochs_log.records
  with steps_log, epochs_log:
    for t in range(start, end):
      epoch, i = divmod(t, steps_per_epoch)
      if c.streaming:
        if stream_epoch != epoch:
          stream, stream_epoch = _stream(c, epoch, i), epoch
        x, y = next(stream)
      else:
        idx = _epoch_order(c.seed, epoch, data.num_train)[i * b : (i + 1) * b]
        x, y = data.x_train[idx], data.y_train[idx]
      state, m = progs.step(state, x, y, jnp.int32(t), step_key, hyper)
      m = jax.device_get(m)
      if not math.isfinite(float(m["loss"])):
        raise FloatingPointError(f"step {t}: loss became {m['loss']}")
      rec = {
          "step": t,
          "epoch": epoch,
          "loss": float(m["loss"]),
          "ce": float(m["ce"]),
          "acc": float(m["acc"]),
          "runtime": float(m["runtime"]),
          "lambda": float(m["lambda"]),
          "lr": float(tx_lr(c.train, data.num_train / b, t)),
          "decisions": _names(m["decisions"]),
      }
      steps_log.write(rec)
      for k in ("loss", "ce", "acc"):
        sums[k] += rec[k]
      sums["n"] += 1
      done = t + 1
      if done % steps_per_epoch == 0:
        variables = {
            "params": state["params"],
            "batch_stats": state["batch_stats"],
        }
        # the eval program also returns the raw (no dropout) decisions
        acc, loss, d_eval = _evaluate(
            progs.evaluate,
            variables,
            data.x_test,
            data.y_test,
            c.eval_batch_size,
        )
        hard = d_eval > 0.5
        r_hard = float(
            rt.model_runtime(
                jnp.asarray(hard, jnp.float32), entries, table.constant
            )
        )
        n = max(sums["n"], 1)
        erec = {
            "step": done,
            "epoch": epoch,
            "test_acc": acc,
            "test_loss": loss,
            "train_loss": sums["loss"] / n,
            "train_ce": sums["ce"] / n,
            "train_acc": sums["acc"] / n,
            "runtime": r_hard,
            "unit": table.unit,
            "warmup": done <= warmup,
            "decisions": sk.describe(hard),
            "thresholds": sk.thresholds(state["params"]).tolist(),
            "seconds": time.perf_counter() - t_epoch,
        }
        epochs_log.write(erec)
        sums = {"loss": 0.0, "ce": 0.0, "acc": 0.0, "n": 0}
        t_epoch = time.perf_counter()
        log_line = (
            f"epoch {epoch + 1}/{c.train.epochs}: test acc {acc:.4f}"
            f", R {r_hard:.3f} {table.unit}"
        )
        if bar is not None:
          bar.write(log_line)
        else:
          log(log_line)
      if done % steps_per_epoch == 0 or (
          c.checkpoint_every and done % c.checkpoint_every == 0
      ):
        ckpt.save(done, jax.device_get(_ckpt_tree(state, done)))
      if bar is not None:
        bar.set_postfix(
            loss=f"{rec['loss']:.3f}",
            acc=f"{rec['acc']:.3f}",
            R=f"{rec['runtime']:.2f}",
            refresh=False,
        )
        bar.update(1)
  ckpt.close()
  if bar is not None:
    bar.close()
  if end < total:
    return SearchResult(False, end, None, None, None, epochs)
  variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
  _, _, d_eval = _evaluate(
      progs.evaluate,
      variables,
      data.x_test[: c.eval_batch_size],
      data.y_test[: c.eval_batch_size],
      c.eval_batch_size,
  )
  return finish(
      config, macro, table, state, epochs, workdir, data, d_eval > 0.5
  )


def tx_lr(t, steps_per_epoch: float, step: int) -> float:
  """The learning rate at `step` (for the log)."""
  return t.learning_rate * t.lr_decay ** math.floor(
      step / (steps_per_epoch * t.lr_decay_epochs)
  )


def finish(
    c: SinglePathConfig,
    macro,
    table: rt.RuntimeTable,
    state,
    epochs: List[Dict[str, Any]],
    workdir: str,
    data: _Data,
    hard: np.ndarray,
) -> SearchResult:
  """Decodes the last raw decisions `hard` (``bool[L, 3]`` of the final
  weights), writes spec.json, result.json and the plot."""
  spec = spec_lib.decode(
      hard,
      macro,
      data.num_classes,
      replicate_encoder_bug=c.replicate_encoder_bug,
  )
  spec.save(os.path.join(workdir, SPEC))
  r = float(
      rt.model_runtime(
          jnp.asarray(hard, jnp.float32),
          jnp.asarray(table.entries, jnp.float32),
          table.constant,
      )
  )
  cost = spec_lib.count(spec, data.image_shape)
  result = {
      "runtime": r,
      "unit": table.unit,
      "table": c.runtime.table,
      "table_all_k5e6": table.uniform("k5e6"),
      "decisions": list(spec.decisions),
      "thresholds": sk.thresholds(state["params"]).tolist(),
      "test_acc_supernet": epochs[-1]["test_acc"] if epochs else None,
      "macs": cost.macs,
      "params": cost.params,
      "input_shape": list(data.image_shape),
      "replicate_encoder_bug": c.replicate_encoder_bug,
  }
  io.write_json_atomic(os.path.join(workdir, RESULT), result)
  plot_progress(epochs, os.path.join(workdir, PLOT), unit=table.unit)
  return SearchResult(True, len(epochs), spec, hard, r, epochs, table.unit)


def plot_progress(
    epochs: List[Dict[str, Any]], path: str, *, unit: str = "ms"
) -> None:
  """R (hard decisions) and test accuracy per epoch, warm-up shaded."""
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
  ep = [e["epoch"] + 1 for e in epochs]
  ax.plot(ep, [e["runtime"] for e in epochs], "o-", color="tab:green")
  ax.set_xlabel("epoch")
  ax.set_ylabel(f"runtime model R ({unit})", color="tab:green")
  warm = [e["epoch"] + 1 for e in epochs if e.get("warmup")]
  if warm:
    ax.axvspan(0.5, max(warm) + 0.5, color="0.9", label="warm-up (lambda=0)")
    ax.legend(loc="center left", fontsize=8)
  ax2 = ax.twinx()
  ax2.plot(ep, [e["test_acc"] for e in epochs], "s-", color="tab:blue")
  ax2.set_ylabel("test accuracy (supernet)", color="tab:blue")
  ax.set_title("Single-Path NAS search")
  fig.savefig(path, dpi=110)
  plt.close(fig)
