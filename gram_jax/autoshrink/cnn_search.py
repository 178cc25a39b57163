"""Proxy evaluation of ShrinkCNN candidates (the ``kind = "cnn"`` search).

`make_evaluator(config)` returns ``(evaluate, score_fn, num_nodes)`` for the
`gram-jax autoshrink` command; `CNNEvaluator` trains every candidate of a
round from fresh weights on the proxy split through ONE compiled init, train
and eval program of the masked network (`cnn.MaskedNet`): the mask is an
argument. Two paths, the same numbers up to float rounding:

  * ``vmap = False`` (default): candidates one after another;
  * ``vmap = True``: the round's candidates side by side (`jax.vmap` over
    weights, optimizer states, batch orders and masks; a short last round
    is padded to k so the program never recompiles).

The per-candidate recipe follows the official proxy estimator
(ALGORITHMS.md 2.2, 1.3 #8): Adam 4e-3, batch 128, up to 20 epochs, the best
epoch's validation accuracy, Keras-style L2 ``1e-5 sum(w^2)`` on conv,
pointwise and dense kernels (not depthwise, not BN), and the early stops
(5 epochs without a better val accuracy; epoch 3 below 0.2; val loss above
3x the train loss). Differences: the train loss of the 3x rule is the epoch
mean (official: a 0.99 moving average), and the official cut of an epoch
once the moving train accuracy exceeds 0.98 is not done.
"""

from __future__ import annotations

import math
import time
from typing import Any, Dict, List

import jax
import jax.numpy as jnp
import numpy as np

from gram_jax import data as data_lib
from gram_jax import train as train_lib
from gram_jax.autoshrink import cnn
from gram_jax.autoshrink import fields as F
from gram_jax.autoshrink import strategy as strat
from gram_jax.errors import GramJaxError

SCHEMA = {
    "dataset": (
        "digits",
        str,
        F.one_of(*[d for d in data_lib.DATASETS if d != "imagenet2012"]),
    ),
    "data_dir": ("", str, None),
    "nodes": (8, int, F.between(2, 16)),
    "base_filters": (16, int, F.between(1)),
    "scales": ([1.0, 2.0, 4.0], "floats", F.between(0, lo_open=True)),
    "pools": ([1, 2, 2], "ints", F.between(1)),
    "replicate": ([1, 1, 1], "ints", F.between(1)),
    "stem_channels": (32, int, F.between(1)),
    "activation": ("relu", str, F.one_of(*cnn.ACTIVATIONS)),
    "use_residual": (True, bool, None),
    "score_factor": (0.1, float, F.between(0)),
    "vmap": (False, bool, None),
    "proxy": (
        {},
        {
            "num_train": (500, int, F.between(1)),
            "num_val": (400, int, F.between(1)),
            "per_class": (False, bool, None),
        },
        None,
    ),
    "train": (
        {},
        {
            "epochs": (20, int, F.between(1)),
            "batch_size": (128, int, F.between(1)),
            "learning_rate": (4e-3, float, F.between(0, lo_open=True)),
            "optimizer": ("adam", str, F.one_of(*train_lib.OPTIMIZERS)),
            "weight_decay": (1e-5, float, F.between(0)),
            "early_stop": (True, bool, None),
            "eval_batch_size": (100, int, F.between(1)),
        },
        None,
    ),
}


def l2_penalty(params) -> jax.Array:
  """Keras-style ``sum(w^2)`` over conv, pointwise and dense kernels;
  depthwise kernels and BN are not regularised (pitfall 12)."""
  return train_lib.l2_penalty(params, skip=("dw",))


class CNNEvaluator:
  """``evaluate(masks bool[m, n, n], key) -> [metrics]`` for the CNN cell.

  Metrics per candidate: ``acc`` (best epoch's val accuracy, 0 if
  diverged), ``val_loss``, ``epochs`` (trained), ``diverged``, ``macs`` and
  ``params`` (analytic, official counters) and ``seconds``.

  Args:
    net_cfg: the proxy network.
    x_train, y_train, x_val, y_val: the proxy split (host arrays).
    k: candidates per round (vmap pads to it).
    epochs, batch_size, learning_rate, optimizer, weight_decay,
    early_stop, eval_batch_size: the per-candidate recipe.
    vmap: train the candidates of a round side by side.
  """

  def __init__(
      self,
      net_cfg: cnn.NetConfig,
      *,
      x_train,
      y_train,
      x_val,
      y_val,
      k: int = 10,
      epochs: int = 20,
      batch_size: int = 128,
      learning_rate: float = 4e-3,
      optimizer: str = "adam",
      weight_decay: float = 1e-5,
      early_stop: bool = True,
      eval_batch_size: int = 100,
      vmap: bool = False,
  ):
    if not 1 <= batch_size <= len(x_train):
      raise ValueError(
          f"batch_size: {batch_size!r} is not allowed; allowed: "
          f"1 to the proxy training size {len(x_train)}"
      )
    self.cfg, self.k, self.vmap = net_cfg, k, vmap
    self.epochs, self.batch_size, self.early_stop = (
        epochs,
        batch_size,
        early_stop,
    )
    self.x_train = jnp.asarray(x_train)
    self.y_train = jnp.asarray(y_train, jnp.int32)
    self.x_val = jnp.asarray(x_val)
    self.y_val = jnp.asarray(y_val, jnp.int32)
    self.input_shape = tuple(int(d) for d in np.shape(x_train)[1:])
    self.eval_batch_size = min(eval_batch_size, len(x_val))
    self.steps_per_epoch = len(x_train) // batch_size
    net = self.net = cnn.MaskedNet(net_cfg)
    tx = train_lib.make_optimizer(optimizer, learning_rate)
    sample_x = self.x_train[:batch_size]

    def init(key, mask):
      variables = cnn.init_candidate(net, key, sample_x, mask)
      return variables, tx.init(variables["params"])

    train_step = train_lib.make_train_step(
        net.apply,
        tx,
        weight_decay=weight_decay,
        penalty=l2_penalty,
        report_penalty=False,
    )

    def step(variables, opt_state, x_all, y_all, idx, mask):
      return train_step(variables, opt_state, x_all[idx], y_all[idx], mask)

    eval_step = train_lib.make_eval_step(net.apply)

    def evaluate(variables, x_all, y_all, idx, weight, mask):
      return eval_step(variables, x_all[idx], y_all[idx], weight, mask)

    if vmap:
      init = jax.vmap(init)
      step = jax.vmap(step, in_axes=(0, 0, None, None, 0, 0))
      evaluate = jax.vmap(evaluate, in_axes=(0, None, None, None, None, 0))
    self._init = jax.jit(init)
    self._step = jax.jit(step, donate_argnums=(0, 1))
    self._eval = jax.jit(evaluate)

  def num_compilations(self) -> int:
    return sum(f._cache_size() for f in (self._init, self._step, self._eval))  # pylint: disable=protected-access

  def _keys(self, key, m):
    """Per-candidate (init key, numpy data rng): the same in both paths."""
    out = []
    for c in range(m):
      init_key, data_key = jax.random.split(jax.random.fold_in(key, c))
      seed = np.asarray(jax.random.key_data(data_key)).ravel()
      out.append((init_key, np.random.default_rng(seed)))
    return out

  def _val(self, variables, masks):
    correct = loss = 0.0
    for idx, weight in train_lib.padded_chunks(
        len(self.x_val), self.eval_batch_size
    ):
      c, _, l = self._eval(
          variables, self.x_val, self.y_val, idx, weight, masks
      )
      correct, loss = correct + np.asarray(c), loss + np.asarray(l)
    n = len(self.x_val)
    return np.asarray(correct) / n, np.asarray(loss) / n

  def _train(self, masks: np.ndarray, keys) -> List[Dict[str, Any]]:
    """Trains the candidates in `masks` (one, or k side by side)."""
    m = len(keys)
    init_keys = jnp.stack([k for k, _ in keys]) if self.vmap else keys[0][0]
    masks_in = jnp.asarray(masks if self.vmap else masks[0])
    variables, opt_state = self._init(init_keys, masks_in)
    best = np.full(m, -1.0)
    best_loss = np.full(m, math.nan)
    since = np.zeros(m, int)
    running = np.ones(m, bool)
    diverged = np.zeros(m, bool)
    trained = np.zeros(m, int)
    for epoch in range(self.epochs):
      variables, opt_state, loss = train_lib.lockstep_epoch(
          self._step,
          variables,
          opt_state,
          [rng for _, rng in keys],
          (self.x_train, self.y_train, masks_in),
          batch_size=self.batch_size,
          steps=self.steps_per_epoch,
          index=(lambda idx: idx) if self.vmap else (lambda idx: idx[0]),
      )
      train_loss = np.asarray(loss).reshape(m)
      acc, val_loss = (a.reshape(m) for a in self._val(variables, masks_in))
      for c in np.nonzero(running)[0]:
        trained[c] = epoch + 1
        if not (math.isfinite(train_loss[c]) and math.isfinite(val_loss[c])):
          running[c], diverged[c] = False, True
          continue
        if acc[c] > best[c]:
          best[c], best_loss[c], since[c] = acc[c], val_loss[c], 0
        else:
          since[c] += 1
        if self.early_stop and (
            since[c] >= 5
            or (epoch == 3 and acc[c] < 0.2)
            or val_loss[c] > 3.0 * train_loss[c]
        ):
          running[c] = False
      if not running.any():
        break
    out = []
    for c in range(m):
      out.append({
          "acc": 0.0 if diverged[c] else float(best[c]),
          "val_loss": None if diverged[c] else float(best_loss[c]),
          "epochs": int(trained[c]),
          "diverged": bool(diverged[c]),
      })
    return out

  def __call__(self, masks: np.ndarray, key: jax.Array) -> List[Dict]:
    masks = np.asarray(masks, bool)
    m = len(masks)
    keys = self._keys(key, m)
    results = []
    if self.vmap:
      t0 = time.perf_counter()
      pad = self.k - m
      if pad < 0:
        raise ValueError(
            f"{m} candidates for a vmapped evaluator of k={self.k}"
        )
      padded = np.concatenate([masks, np.repeat(masks[-1:], pad, 0)])
      keys_p = keys + [keys[-1]] * pad
      results = self._train(padded, keys_p)[:m]
      per = (time.perf_counter() - t0) / m
      for r in results:
        r["seconds"] = per
    else:
      for c in range(m):
        t0 = time.perf_counter()
        r = self._train(masks[c : c + 1], keys[c : c + 1])[0]
        r["seconds"] = time.perf_counter() - t0
        results.append(r)
    for r, mask in zip(results, masks):
      cost = cnn.count(self.cfg, mask, self.input_shape)
      r["macs"], r["params"] = cost.macs, cost.params
    return results

  def describe(self, mask) -> Dict[str, Any]:
    d = cnn.describe(self.cfg, mask)
    cost = cnn.count(self.cfg, mask, self.input_shape)
    d.update({
        "macs": cost.macs,
        "params": cost.params,
        "input_shape": list(self.input_shape),
        "network": {
            "base_filters": self.cfg.base_filters,
            "scales": list(self.cfg.scales),
            "pools": list(self.cfg.pools),
            "replicate": list(self.cfg.replicate),
            "stem_channels": self.cfg.stem_channels,
            "activation": self.cfg.activation,
            "num_classes": self.cfg.num_classes,
        },
    })
    return d


def net_config(c: Dict[str, Any], ops, num_classes: int) -> cnn.NetConfig:
  return cnn.NetConfig(
      ops=tuple(ops),
      base_filters=c["base_filters"],
      scales=tuple(c["scales"]),
      pools=tuple(c["pools"]),
      replicate=tuple(c["replicate"]),
      stem_channels=c["stem_channels"],
      stem_stride=1,
      activation=c["activation"],
      use_residual=c["use_residual"],
      num_classes=num_classes,
  )


def validate(config: Dict[str, Any]) -> Dict[str, Any]:
  """The validated ``config["cnn"]`` group (defaults filled)."""
  c = F.check_group(config.get("cnn"), SCHEMA, "config.cnn")
  if not len(c["scales"]) == len(c["pools"]) == len(c["replicate"]):
    raise GramJaxError(
        "config.cnn.scales: scales, pools and replicate must have the same "
        f"length (one per stage), got {len(c['scales'])}, "
        f"{len(c['pools'])}, {len(c['replicate'])}"
    )
  if c["train"]["batch_size"] > c["proxy"]["num_train"]:
    raise GramJaxError(
        f"config.cnn.train.batch_size: {c['train']['batch_size']} is not "
        f"allowed; allowed: <= proxy.num_train ({c['proxy']['num_train']})"
    )
  return c


def make_evaluator(config: Dict[str, Any]):
  """``(evaluate, score_fn, num_nodes)`` for a validated run config.

  `config` is the whole run config (plain dict); this reads ``seed``,
  ``search.k`` and the ``cnn`` group. Node ops are drawn once from
  ``fold_in(key(seed), 0)`` (balanced, `cnn.seed_group_ops`).
  """
  c = validate(config)
  ds = data_lib.load(
      c["dataset"], data_dir=c["data_dir"] or None, seed=config["seed"]
  )
  split = data_lib.proxy_split(
      ds,
      seed=config["seed"],
      num_train=c["proxy"]["num_train"],
      num_val=c["proxy"]["num_val"],
      per_class=c["proxy"]["per_class"],
  )
  ops = cnn.seed_group_ops(
      c["nodes"], jax.random.fold_in(jax.random.key(config["seed"]), 0)
  )
  t = c["train"]
  evaluator = CNNEvaluator(
      net_config(c, ops, ds.num_classes),
      x_train=split.x_train,
      y_train=split.y_train,
      x_val=split.x_val,
      y_val=split.y_val,
      k=config["search"]["k"],
      epochs=t["epochs"],
      batch_size=t["batch_size"],
      learning_rate=t["learning_rate"],
      optimizer=t["optimizer"],
      weight_decay=t["weight_decay"],
      early_stop=t["early_stop"],
      eval_batch_size=t["eval_batch_size"],
      vmap=c["vmap"],
  )
  return evaluator, strat.cnn_score(c["score_factor"]), c["nodes"]
