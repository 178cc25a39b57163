"""`gram-jax train-rnn`: full language-model training of a ShrinkRNN cell.

  gram-jax train-rnn --config experiments/configs/shrinkrnn_ptb.py \\
      --data-dir ~/data/ptb --workdir runs/shrinkrnn_ptb

trains `RNNLM` with a fixed cell (``--cell released`` or a ``cell.json``
written by the RNN search) with the official PTB recipe
([AS: evaluation/rnn/test_final.py]; ALGORITHMS.md 2.5): SGD lr 20, batch 64,
clip 0.25, weight decay 8e-7, variable BPTT around 35, dropouts
0.75/0.25/0.75/0.2/0.1, TAR 1e-3, and the NT-ASGD switch (nonmono 5). Any
recipe field is overridden with ``--config.<field>=<value>``.

The workdir holds `config.json`, `metrics.jsonl` (one line per epoch),
orbax checkpoints of the training state (resumed at the last finished epoch;
keys are ``fold_in(key, epoch)``, so a resumed run equals an uninterrupted
one), `best/` (the parameters with the best validation loss: the averaged
ones after the switch), `cell.json` and, at the end, `result.json` with the
validation and test perplexity of the best parameters.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import time
from typing import Any, Dict, Optional

import jax
import jax.numpy as jnp

from gram_jax import config as config_lib
from gram_jax import io
from gram_jax import run as run_lib
from gram_jax.autoshrink import lm
from gram_jax.autoshrink import rnn
from gram_jax.config import in_range
from gram_jax.errors import GramJaxError

_rate = in_range(0, 0.99)


@dataclasses.dataclass(frozen=True)
class LMRecipe:
  """Everything a full LM training run depends on (besides the data)."""

  data_dir: str = ""  # PTB-format directory; "" = synthetic
  cell: str = "released"  # "released" or a cell.json path
  nhid: int = 745  # = emsize (tied weights)
  epochs: int = 3000
  batch_size: int = 64
  eval_batch_size: int = 10
  test_batch_size: int = 1
  bptt: int = 35
  jitter: bool = True  # seq_len ~ N(bptt, 5) as AWD-LSTM
  max_seq_len_delta: int = 20
  bucket: int = 5  # pad windows to a multiple (0: to max)
  learning_rate: float = 20.0
  clip: float = 0.25
  weight_decay: float = 8e-7
  dropout: float = 0.75  # output (locked)
  dropouth: float = 0.25  # hidden state (variational)
  dropoutx: float = 0.75  # cell input (variational)
  dropouti: float = 0.2  # embedding output (locked)
  dropoute: float = 0.1  # word (embedding rows)
  alpha: float = 0.0  # AR
  beta: float = 1e-3  # TAR
  asgd: bool = True
  nonmono: int = 5
  init_range: float = 0.04
  seed: int = 1267
  _checks = {
      "nhid": in_range(1),
      "epochs": in_range(1),
      "batch_size": in_range(1),
      "eval_batch_size": in_range(1),
      "test_batch_size": in_range(1),
      "bptt": in_range(2),
      "max_seq_len_delta": in_range(0),
      "bucket": in_range(0),
      "learning_rate": in_range(0, lo_open=True),
      "clip": in_range(0),
      "weight_decay": in_range(0),
      "dropout": _rate,
      "dropouth": _rate,
      "dropoutx": _rate,
      "dropouti": _rate,
      "dropoute": _rate,
      "alpha": in_range(0),
      "beta": in_range(0),
      "nonmono": in_range(1),
      "init_range": in_range(0, lo_open=True),
      "seed": in_range(0),
  }

  @classmethod
  def from_dict(cls, d: Dict[str, Any]) -> "LMRecipe":
    return config_lib.build(cls, d, "config")


def load_cell(name: str) -> rnn.CellSpec:
  if name == "released":
    return rnn.released_cell()
  if not os.path.isfile(name):
    raise GramJaxError(
        f"config.cell: {name!r} is not a file; allowed: "
        "'released', a cell.json or an RNN search's best.json"
    )
  return rnn.CellSpec.load(name)


def run_lm_training(
    recipe: LMRecipe,
    workdir: str,
    *,
    progress: bool = True,
    stop_after_epochs: Optional[int] = None,
) -> Dict[str, Any]:
  """Trains the LM of `recipe.cell` in `workdir` (resuming) and tests it."""
  r = recipe
  cell = load_cell(r.cell)
  corpus = lm.corpus_from(r.data_dir)
  train_data = lm.batchify(corpus.train, r.batch_size)
  val_data = lm.batchify(corpus.valid, r.eval_batch_size)
  test_data = lm.batchify(corpus.test, r.test_batch_size)
  vocab = len(corpus.vocab)
  run_cfg = json.loads(
      json.dumps({
          "recipe": dataclasses.asdict(r),
          "cell": cell.to_dict(),
          "vocab_size": vocab,
      })
  )
  run_lib.prepare_workdir(workdir, run_cfg, prefix="")
  cell.save(os.path.join(workdir, "cell.json"))

  model = rnn.exact_lm(
      cell,
      vocab,
      r.nhid,
      dropout=r.dropout,
      dropouth=r.dropouth,
      dropoutx=r.dropoutx,
      dropouti=r.dropouti,
      dropoute=r.dropoute,
      init_range=r.init_range,
  )
  key = jax.random.key(r.seed)
  params = jax.jit(rnn.init_params, static_argnums=0)(
      model, jax.random.fold_in(key, 0)
  )
  num_params = int(sum(x.size for x in jax.tree.leaves(params)))
  target = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params
  )
  state = lm.init_state(params)
  step, eval_step = _programs(model, r.clip, r.weight_decay, r.alpha, r.beta)

  def evaluate(p, data):
    h = jnp.zeros((data.shape[1], r.nhid))
    return float(lm.evaluate(eval_step, p, data, bptt=r.bptt, hidden=h))

  ckpt = run_lib.Checkpoints(workdir, max_to_keep=2)
  best_ckpt = run_lib.Checkpoints(workdir, max_to_keep=1, name="best")
  start = 0
  restored = ckpt.restore(state)
  if restored is not None:
    state, start = restored.tree, restored.step
  # Epoch lines past the restored epoch are dropped.
  metrics = run_lib.JsonlLog(
      os.path.join(workdir, "metrics.jsonl"),
      key="epoch",
      before=start + 1,
      tensorboard=os.path.join(workdir, "tensorboard"),
  )
  records = metrics.records
  # NT-ASGD history: validation losses of the epochs before the switch.
  history = [x["val_loss"] for x in records if not x["averaging"]]
  stored = min([x["val_loss"] for x in records], default=math.inf)

  end = (
      r.epochs
      if stop_after_epochs is None
      else min(r.epochs, start + stop_after_epochs)
  )
  bar = run_lib.progress_bar(
      progress and start < end,
      total=r.epochs,
      initial=start,
      desc="train-rnn",
      unit="epoch",
  )
  max_len = r.bptt + (r.max_seq_len_delta if r.jitter else 0)
  with metrics:
    for epoch in range(start, end):
      t0 = time.perf_counter()
      averaging = bool(state.averaging)
      windows = lm.train_windows(
          len(train_data),
          r.bptt,
          lm.epoch_rng(r.seed, epoch),
          jitter=r.jitter,
          max_delta=r.max_seq_len_delta,
      )
      state, _, losses = lm.run_epoch(
          step,
          state,
          jnp.zeros((r.batch_size, r.nhid)),
          train_data,
          windows,
          lr=r.learning_rate,
          bptt=r.bptt,
          key=jax.random.fold_in(key, epoch + 1),
          bucket=r.bucket,
          max_len=max_len,
      )
      train_loss = float(jnp.mean(jnp.stack(losses)))
      if not math.isfinite(train_loss):
        raise GramJaxError(
            f"training diverged at epoch {epoch + 1} (loss "
            f"{train_loss}); lower config.learning_rate"
        )
      val_loss = evaluate(lm.eval_params(state), val_data)
      improved = val_loss < stored
      if improved:
        stored = val_loss
        best_ckpt.save(epoch + 1, jax.device_get(lm.eval_params(state)))
      switched = False
      if not averaging:
        if r.asgd and lm.nonmono_trigger(history, val_loss, r.nonmono):
          state, switched = lm.start_averaging(state), True
        history.append(val_loss)
      rec = {
          "epoch": epoch + 1,
          "train_loss": train_loss,
          "train_ppl": lm.ppl(train_loss),
          "val_loss": val_loss,
          "val_ppl": lm.ppl(val_loss),
          "best_val_ppl": lm.ppl(stored),
          "averaging": averaging,
          "switched_to_asgd": switched,
          "steps": len(windows),
          "seconds": time.perf_counter() - t0,
      }
      ckpt.save(epoch + 1, state)
      ckpt.wait()
      best_ckpt.wait()
      metrics.write(rec)
      if bar is not None:
        bar.set_postfix(
            val_ppl=f"{rec['val_ppl']:.2f}",
            asgd=int(averaging or switched),
            refresh=False,
        )
        bar.update(1)
  ckpt.close()
  if bar is not None:
    bar.close()
  if end < r.epochs:
    best_ckpt.close()
    return {"complete": False, "epoch": end}
  best = best_ckpt.restore(target)
  best_ckpt.close()
  if best is None:
    raise GramJaxError(
        f"{best_ckpt.directory}: no readable checkpoint of "
        "the best parameters; train again in a new --workdir"
    )
  best_epoch, best = best.step, best.tree
  val_loss, test_loss = evaluate(best, val_data), evaluate(best, test_data)
  result = {
      "complete": True,
      "val_ppl": lm.ppl(val_loss),
      "test_ppl": lm.ppl(test_loss),
      "val_loss": val_loss,
      "test_loss": test_loss,
      "params": num_params,
      "edges": cell.num_edges,
      "vocab_size": vocab,
      "epochs": r.epochs,
      "best_epoch": best_epoch,
      "cell": os.path.join(workdir, "cell.json"),
  }
  io.write_json_atomic(os.path.join(workdir, "result.json"), result)
  return result


@functools.lru_cache(maxsize=4)
def _programs(
    model: rnn.RNNLM,
    clip: float,
    weight_decay: float,
    alpha: float,
    beta: float,
):
  """The jitted train and eval steps, cached by (hashable) model and
  hyperparameters: a run resumed in the same process does not recompile."""
  step = jax.jit(
      lm.make_train_step(
          model, clip=clip, weight_decay=weight_decay, alpha=alpha, beta=beta
      ),
      donate_argnums=(0,),
  )
  return step, jax.jit(lm.make_eval_step(model))


def resolve(path: Optional[str], overrides) -> LMRecipe:
  """Config file (a ConfigDict of `LMRecipe` fields) + overrides."""
  d = dataclasses.asdict(LMRecipe())
  if path:
    raw = config_lib.load_config_file(path)
    d = raw.to_dict() if hasattr(raw, "to_dict") else dict(raw)
  d = {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
  return LMRecipe.from_dict(config_lib.apply_overrides(d, list(overrides)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
      "--config",
      help=(
          "Python config file (get_config) with "
          "LMRecipe fields; 'file.py:runlocal' passes an arg; "
          "default: the PTB recipe"
      ),
  )
  run_lib.add_arguments(parser, stop_after="--stop-after-epochs")
  parser.add_argument(
      "--cell",
      default=None,
      help="'released' or a cell.json (sets config.cell)",
  )
  parser.add_argument(
      "--data-dir",
      default=None,
      help=(
          "PTB-format corpus directory (sets "
          "config.data_dir; '' or 'synthetic': built-in corpus)"
      ),
  )
  parser.epilog = (
      "Override recipe fields with --config.<field>=<value>, "
      "e.g. --config.epochs=10"
  )


def run(args: argparse.Namespace, rest) -> int:
  rest = list(rest)
  if args.cell is not None:
    rest.append(f"--config.cell={args.cell}")
  if args.data_dir is not None:
    rest.append(f"--config.data_dir={args.data_dir}")
  recipe = resolve(args.config, rest)
  result = run_lm_training(
      recipe,
      args.workdir,
      progress=not args.no_progress,
      stop_after_epochs=args.stop_after_epochs,
  )
  if not result["complete"]:
    print(run_lib.stopped("epoch", result["epoch"]))
    return 0
  print(json.dumps(result, indent=1))
  return 0
