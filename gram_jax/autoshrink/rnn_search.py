"""Proxy evaluation of ShrinkRNN candidates for the edge-shrinking search.

`make_evaluator(config)` returns ``(evaluate, score_fn, num_nodes)`` for the
`gram-jax autoshrink` command (``config.kind == "rnn"``):

  * ``evaluate(masks bool[k, n, n], key) -> list of dicts`` trains each
    candidate from fresh weights on the proxy corpus and returns its best
    validation perplexity (``ppl``), parameter count, cost and seconds;
  * ``score_fn(result) -> float`` is the official metric
    ``(200 - ppl) * 0.25 - (log10(FLOPs) - 6)`` with
    ``FLOPs = edges * nhid^2`` ([AS: searching/rnn/autoshrink_rnn.py
    `metric_fn`, model.py `compute_flops`]); a diverged candidate (NaN
    perplexity) scores -inf (ALGORITHMS.md 5, AutoShrink #14).

All k candidates of a round run through one compiled program: the edge masks
are array inputs and the candidates are `jax.vmap`-ed (or run in chunks of
``candidates_per_program`` through the same program). The proxy recipe is
the official one (ALGORITHMS.md 2.5): SGD lr 20, clip 0.25, batch 128,
bptt 35 (p = 0.05 of 17), no dropout, lr / 10 after epochs E-4 and E-2, early
stop after 4 epochs without improvement or when the validation loss exceeds
3x the running training loss; the result is the best epoch's perplexity, NaN
if its loss is >= 30. Every candidate starts from the same embedding matrix
(GloVe vectors when ``embedding_path`` is set, else a fixed uniform draw),
and fresh U(+-0.04) cell weights.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, Dict, List, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from gram_jax import config as config_lib
from gram_jax.autoshrink import lm
from gram_jax.autoshrink import rnn
from gram_jax.config import in_range
from gram_jax.errors import GramJaxError


@dataclasses.dataclass(frozen=True)
class RNNSearchSettings:
  """The ``rnn`` group of an autoshrink config (``kind = "rnn"``)."""

  data_dir: str = ""  # PTB-format directory; "" = synthetic
  train_lines: int = 4000  # official proxy: first 4000/300/300 lines
  valid_lines: int = 300
  test_lines: int = 300
  nodes: int = 6
  ops: tuple = ()  # one per node; () = drawn with the seed
  nhid: int = 100  # = emsize (tied weights)
  embedding_path: str = ""  # GloVe-format text file (word v1 .. vn)
  embedding_range: float = 0.5  # U(-r, r) for words without a vector
  init_range: float = 0.04
  epochs: int = 10
  batch_size: int = 128
  eval_batch_size: int = 256
  bptt: int = 35
  learning_rate: float = 20.0
  clip: float = 0.25
  weight_decay: float = 0.0
  patience: int = 4
  bucket: int = 0  # pad windows to a multiple; 0: to bptt
  candidates_per_program: int = 0  # 0: all k of a round vmapped together
  ppl_reference: float = 200.0
  ppl_weight: float = 0.25
  cost_weight: float = 1.0
  _checks = {
      "train_lines": in_range(0),
      "valid_lines": in_range(0),
      "test_lines": in_range(0),
      "nodes": in_range(2, 16),
      "nhid": in_range(1),
      "embedding_range": in_range(0),
      "init_range": in_range(0, lo_open=True),
      "epochs": in_range(1),
      "batch_size": in_range(1),
      "eval_batch_size": in_range(1),
      "bptt": in_range(2),
      "learning_rate": in_range(0, lo_open=True),
      "clip": in_range(0),
      "weight_decay": in_range(0),
      "patience": in_range(1),
      "bucket": in_range(0),
      "candidates_per_program": in_range(0),
      "ppl_weight": in_range(0),
      "cost_weight": in_range(0),
  }

  def __post_init__(self):
    if self.ops and len(self.ops) != self.nodes:
      raise GramJaxError(
          f"config.rnn.ops: {len(self.ops)} names for "
          f"{self.nodes} nodes; allowed: () or one per node"
      )
    for op in self.ops:
      if op not in rnn.ACTIVATIONS:
        raise GramJaxError(
            f"config.rnn.ops: {op!r} is not allowed; allowed:"
            f" {', '.join(rnn.ACTIVATIONS)}"
        )

  @classmethod
  def from_config(cls, config: Any) -> "RNNSearchSettings":
    """From a config (ConfigDict, dict or object) with an ``rnn`` group."""
    group = _get(config, "rnn")
    if group is None:
      return cls()
    if isinstance(group, cls):
      return group
    d = _plain(group.to_dict() if hasattr(group, "to_dict") else group)
    if dataclasses.is_dataclass(d):
      d = dataclasses.asdict(d)
    return config_lib.build(cls, d, "config.rnn")

  def to_dict(self) -> Dict[str, Any]:
    d = dataclasses.asdict(self)
    d["ops"] = list(self.ops)
    return d


def _get(config, name, default=None):
  if isinstance(config, dict):
    return config.get(name, default)
  try:
    return (
        config[name]
        if hasattr(config, "__getitem__") and not hasattr(config, name)
        else getattr(config, name)
    )
  except (AttributeError, KeyError):
    return default


def _plain(x):
  if isinstance(x, dict):
    return {k: _plain(v) for k, v in x.items()}
  if isinstance(x, tuple):
    return list(x)
  return x


def load_glove(path: str, vocab, dim: int, base: np.ndarray) -> np.ndarray:
  """`base` with the rows of words found in a GloVe text file replaced."""
  index = {w: i for i, w in enumerate(vocab)}
  out = base.copy()
  try:
    with open(path, encoding="utf-8") as f:
      for n, line in enumerate(f):
        parts = line.rstrip().split(" ")
        if parts[0] in index:
          if len(parts) != dim + 1:
            raise GramJaxError(
                f"{path}: line {n + 1} has {len(parts) - 1} "
                f"numbers; config.rnn.nhid is {dim}"
            )
          out[index[parts[0]]] = np.asarray(parts[1:], np.float32)
  except OSError as e:
    raise GramJaxError(
        f"config.rnn.embedding_path: {path}: cannot read ({e.strerror})"
    ) from None
  return out


def flops(mask: np.ndarray, nhid: int) -> int:
  """The official cost: live edges x nhid^2 (W0 and embeddings excluded)."""
  return rnn.num_edges(mask) * nhid * nhid


def make_score_fn(settings: RNNSearchSettings) -> Callable[[Dict], float]:
  """``(ref - ppl) * w - cost_weight * (log10(FLOPs) - 6)``; NaN -> -inf."""

  def score_fn(result: Dict[str, Any]) -> float:
    p = float(result["ppl"])
    if not math.isfinite(p):
      return float("-inf")
    # A cell with no edge left (only the highway node) costs as one edge:
    # the official code would take log10(0) and crash.
    cost = max(int(result.get("edges", 1)), 1) * settings.nhid**2
    return (
        settings.ppl_reference - p
    ) * settings.ppl_weight - settings.cost_weight * (math.log10(cost) - 6)

  return score_fn


class RNNEvaluator:
  """Proxy trainer of ShrinkRNN candidates (see the module docstring)."""

  def __init__(self, settings: RNNSearchSettings, seed: int = 0):
    self.settings = s = settings
    self.seed = seed
    self.corpus = lm.corpus_from(
        s.data_dir, max_lines=(s.train_lines, s.valid_lines, s.test_lines)
    )
    key = jax.random.key(seed)
    self.ops = tuple(s.ops) or rnn.random_ops(
        s.nodes, jax.random.fold_in(key, 1)
    )
    self.train_data = lm.batchify(self.corpus.train, s.batch_size)
    self.val_data = lm.batchify(self.corpus.valid, s.eval_batch_size)
    vocab = len(self.corpus.vocab)
    base = np.asarray(
        jax.random.uniform(
            jax.random.fold_in(key, 2),
            (vocab, s.nhid),
            jnp.float32,
            -s.embedding_range,
            s.embedding_range,
        )
    )
    self.embedding = (
        load_glove(s.embedding_path, self.corpus.vocab, s.nhid, base)
        if s.embedding_path
        else base
    )
    self.model = rnn.masked_lm(
        s.nodes, self.ops, vocab, s.nhid, init_range=s.init_range
    )
    step = lm.make_train_step(
        self.model, clip=s.clip, weight_decay=s.weight_decay
    )
    vstep = jax.vmap(step, in_axes=(0, 0, None, None, None, None, None, 0))

    def train_step(state, hidden, x, y, valid, lr, key, mask_active):
      masks, active = mask_active
      new_state, new_h, loss = vstep(state, hidden, x, y, valid, lr, key, masks)

      # Candidates that stopped early keep their weights.
      def keep(n, o):
        return jnp.where(active.reshape((-1,) + (1,) * (n.ndim - 1)), n, o)

      return jax.tree.map(keep, new_state, state), new_h, loss

    self._train_step = jax.jit(train_step, donate_argnums=(0,))
    self._eval_step = jax.jit(
        jax.vmap(
            lm.make_eval_step(self.model), in_axes=(0, 0, None, None, None, 0)
        )
    )

    def init(key):
      params = rnn.init_params(self.model, key)
      params["embedding"] = jnp.asarray(self.embedding)
      return lm.init_state(params)

    self._init = jax.jit(jax.vmap(init))

  def cell(self, mask) -> rnn.CellSpec:
    """The cell of a mask with this search's node activations."""
    return rnn.CellSpec.from_mask(mask, self.ops)

  def describe(self, mask) -> Dict[str, Any]:
    """The cell as JSON (`rnn.CellSpec`; `gram-jax train-rnn --cell` reads
    it, also inside best.json) with its leaves and proxy-size parameters."""
    cell = self.cell(mask)
    d = cell.to_dict()
    d.update(
        leaves=list(cell.leaves),
        nhid=self.settings.nhid,
        params=rnn.lm_params(
            len(self.corpus.vocab), self.settings.nhid, cell.num_edges
        ),
    )
    return d

  def __call__(self, masks: np.ndarray, key: jax.Array) -> List[Dict]:
    masks = np.asarray(masks, bool)
    if masks.ndim != 3 or masks.shape[1:] != (self.settings.nodes,) * 2:
      raise ValueError(
          f"masks: shape {masks.shape}; expected [k, "
          f"{self.settings.nodes}, {self.settings.nodes}]"
      )
    k = len(masks)
    chunk = self.settings.candidates_per_program or k
    out = []
    for start in range(0, k, chunk):
      sub = masks[start : start + chunk]
      real = len(sub)
      if real < chunk:  # pad to the compiled shape with copies
        sub = np.concatenate([sub, np.repeat(sub[-1:], chunk - real, 0)])
      keys = jnp.stack(
          [jax.random.fold_in(key, start + i) for i in range(chunk)]
      )
      t0 = time.perf_counter()
      res = self._train(sub, keys, key)
      seconds = (time.perf_counter() - t0) / real
      for i in range(real):
        r = {name: v[i] for name, v in res.items()}
        out.append(self._record(masks[start + i], r, seconds))
    return out

  def _record(self, mask, r, seconds) -> Dict[str, Any]:
    s = self.settings
    edges = rnn.num_edges(mask)
    loss = float(r["best_loss"])
    return {
        "ppl": math.exp(loss) if loss < 30 else float("nan"),
        "val_loss": loss,
        "train_loss": float(r["train_loss"]),
        "epochs": int(r["epochs"]),
        "edges": edges,
        "flops": edges * s.nhid * s.nhid,
        "params": rnn.lm_params(len(self.corpus.vocab), s.nhid, edges),
        "seconds": seconds,
        "ops": list(self.ops),
        "leaves": list(rnn.leaves(mask)),
    }

  def _train(self, masks: np.ndarray, keys: jax.Array, key: jax.Array):
    s = self.settings
    c = len(masks)
    state = self._init(keys)
    jmasks = jnp.asarray(masks)
    # Same window lengths for every candidate of the round.
    wseed = (
        np.asarray(jax.random.key_data(jax.random.fold_in(key, 1 << 20)))
        .ravel()
        .tolist()
    )
    active = np.ones(c, bool)
    best = np.full(c, np.inf)
    fails = np.zeros(c, int)
    epochs = np.zeros(c, int)
    train_loss = np.full(c, np.nan)
    lr = s.learning_rate
    h_train = jnp.zeros((c, s.batch_size, s.nhid))
    h_val = jnp.zeros((c, s.eval_batch_size, s.nhid))
    for epoch in range(s.epochs):
      windows = lm.train_windows(
          len(self.train_data), s.bptt, lm.epoch_rng(wseed, epoch)
      )
      state, _, losses = lm.run_epoch(
          self._train_step,
          state,
          h_train,
          self.train_data,
          windows,
          lr=lr,
          bptt=s.bptt,
          key=jax.random.fold_in(key, epoch),
          bucket=s.bucket,
          mask=(jmasks, jnp.asarray(active)),
      )
      tl = lm.moving_loss(losses, 0.9)
      val = lm.evaluate(
          self._eval_step,
          state.params,
          self.val_data,
          bptt=s.bptt,
          hidden=h_val,
          mask=jmasks,
      )
      if epoch in (s.epochs - 4, s.epochs - 2):
        lr /= 10
      for i in np.nonzero(active)[0]:
        epochs[i] = epoch + 1
        train_loss[i] = tl[i]
        if val[i] < best[i]:
          best[i], fails[i] = val[i], 0
        else:
          fails[i] += 1
        if fails[i] >= s.patience or val[i] > 3 * tl[i]:
          active[i] = False
      if not active.any():
        break
    return {"best_loss": best, "train_loss": train_loss, "epochs": epochs}


def validate(config: Any) -> Dict[str, Any]:
  """The validated ``config["rnn"]`` group with defaults filled."""
  return RNNSearchSettings.from_config(config).to_dict()


def make_evaluator(config: Any) -> Tuple[RNNEvaluator, Callable, int]:
  """``(evaluate, score_fn, num_nodes)`` for an autoshrink config with
  ``kind = "rnn"``: its ``seed`` and its ``rnn`` group
  (`RNNSearchSettings`)."""
  settings = RNNSearchSettings.from_config(config)
  seed = _get(config, "seed", 0) or 0
  evaluator = _evaluator(settings, int(seed))
  return evaluator, make_score_fn(settings), settings.nodes


@functools.lru_cache(maxsize=4)
def _evaluator(settings: RNNSearchSettings, seed: int) -> RNNEvaluator:
  # Keyed by the (hashable) settings: a search resumed in the same process
  # (tests, notebooks) reuses the compiled programs.
  return RNNEvaluator(settings, seed=seed)
