"""Word-level language modelling: PTB-format corpora, batches, training.

The recipe follows the official ShrinkRNN code ([AS: evaluation/rnn/
test_final.py, searching/rnn/model.py `Estimator`]), itself AWD-LSTM/DARTS:

  * a corpus is three tokenised text files; every line gets an ``<eos>``;
    word ids are assigned in order of first appearance over train, then
    valid, then test (on PTB all words appear in train: 10,000 words);
  * ``batchify`` cuts the token stream into ``batch_size`` columns
    (time-major ``[T, B]``); the hidden state is carried from one BPTT window
    to the next and reset every epoch;
  * windows have variable length: ``bptt`` with probability 0.95, else
    ``bptt / 2``; the full recipe then draws ``max(5, int(N(len, 5)))``
    capped at ``bptt + 20``; the step's learning rate is scaled by
    ``seq_len / bptt``;
  * SGD with the gradient norm clipped at 0.25 and coupled weight decay added
    *after* clipping (PyTorch's ``SGD(weight_decay=...)``);
  * NT-ASGD: when the validation loss is worse than the best of all but the
    last ``nonmono`` checks, plain SGD switches to averaged SGD, and from
    then on the uniform average of the iterates is evaluated and saved.

Windows shorter than the longest one are padded to a bucket length with a
validity mask (the hidden state stops at the last valid step), so a run
compiles one program per bucket instead of one per window length.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gram_jax.errors import GramJaxError

EOS = "<eos>"
SPLITS = ("train", "valid", "test")


class DataError(GramJaxError):
  """A corpus file is missing or unusable."""


class Corpus(NamedTuple):
  """Word ids of the three splits and the vocabulary (id -> word)."""

  vocab: Tuple[str, ...]
  train: np.ndarray
  valid: np.ndarray
  test: np.ndarray


def tokenize(lines: Dict[str, Sequence[str]]) -> Corpus:
  """Word ids of tokenised lines, ``<eos>`` after each line."""
  word2id: Dict[str, int] = {}
  ids = {}
  for split in SPLITS:
    out = []
    for line in lines[split]:
      for w in line.split() + [EOS]:
        if w not in word2id:
          word2id[w] = len(word2id)
        out.append(word2id[w])
    ids[split] = np.asarray(out, np.int32)
  vocab = tuple(sorted(word2id, key=word2id.get))
  return Corpus(vocab, ids["train"], ids["valid"], ids["test"])


def _find(data_dir: str, split: str) -> str:
  # PTB as distributed (ptb.train.txt) or as the official code names it
  # (train.txt).
  for name in (f"ptb.{split}.txt", f"{split}.txt"):
    path = os.path.join(data_dir, name)
    if os.path.isfile(path):
      return path
  raise DataError(
      f"{os.path.join(data_dir, f'ptb.{split}.txt')}: no such "
      "file; a PTB-format corpus directory holds ptb.train.txt, "
      "ptb.valid.txt and ptb.test.txt (one tokenised sentence "
      "per line)"
  )


def load_corpus(
    data_dir: str, *, max_lines: Sequence[int] = (0, 0, 0)
) -> Corpus:
  """Reads ``ptb.{train,valid,test}.txt`` (or ``{train,valid,test}.txt``)
  from `data_dir`.

  Args:
    data_dir: the corpus directory.
    max_lines: keep only the first lines of each split (0: all). The
      official search proxy is (4000, 300, 300) of PTB.
  """
  if not os.path.isdir(data_dir):
    raise DataError(f"{data_dir}: no such corpus directory")
  lines = {}
  for split, limit in zip(SPLITS, max_lines):
    path = _find(data_dir, split)
    with open(path, encoding="utf-8") as f:
      text = f.readlines()
    lines[split] = text[:limit] if limit else text
  corpus = tokenize(lines)
  for split in SPLITS:
    if len(getattr(corpus, split)) < 3:
      raise DataError(f"{_find(data_dir, split)}: fewer than 3 tokens")
  return corpus


# --- the synthetic corpus --------------------------------------------------


class _SplitMix64:
  """A tiny PRNG with a fixed definition, so the synthetic corpus is the same
  text on every machine and numpy version."""

  def __init__(self, seed: int):
    self.state = seed & 0xFFFFFFFFFFFFFFFF

  def next(self) -> int:
    self.state = (self.state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = self.state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)

  def choice(self, items):
    return items[self.next() % len(items)]

  def chance(self, p: float) -> bool:
    return (self.next() >> 11) / float(1 << 53) < p


_DET = ("the", "a", "this", "each")
_ADJ = ("new", "big", "small", "federal", "chief", "japanese", "early")
_NOUN_S = (
    "company",
    "market",
    "investor",
    "bank",
    "price",
    "analyst",
    "government",
    "trader",
    "index",
    "unit",
    "share",
    "president",
)
_NOUN_P = (
    "companies",
    "markets",
    "investors",
    "banks",
    "prices",
    "analysts",
    "traders",
    "shares",
    "bonds",
    "stocks",
)
_NAME = ("mr. <unk>", "ms. <unk>", "ibm", "the fed", "wall street")
_VERB_S = (
    "rose",
    "fell",
    "said",
    "expects",
    "reported",
    "sold",
    "bought",
    "has",
    "plans",
)
_VERB_P = (
    "rose",
    "fell",
    "said",
    "expect",
    "reported",
    "sold",
    "bought",
    "have",
    "plan",
)
_PREP = ("in", "of", "for", "to", "from", "at")
_TIME = ("yesterday", "last week", "in october", "this year", "N years ago")


def _np(r: _SplitMix64, plural: bool) -> str:
  if not plural and r.chance(0.2):
    return r.choice(_NAME)
  words = (
      []
      if plural and r.chance(0.5)
      else [r.choice(_DET) if not plural else "the"]
  )
  if plural and r.chance(0.3):
    words = ["N"]
  if r.chance(0.35):
    words.append(r.choice(_ADJ))
  words.append(r.choice(_NOUN_P if plural else _NOUN_S))
  if r.chance(0.2):
    words += [r.choice(_PREP), r.choice(_DET), r.choice(_NOUN_S)]
  if r.chance(0.1):
    words.append("'s " + r.choice(_NOUN_S))
  return " ".join(words)


def _sentence(r: _SplitMix64, depth: int = 0) -> str:
  plural = r.chance(0.4)
  subject = _np(r, plural)
  verb = r.choice(_VERB_P if plural else _VERB_S)
  if verb in ("rose", "fell"):
    rest = (
        f"N % to $ N {r.choice(('million', 'billion'))}"
        if r.chance(0.6)
        else f"{r.choice(_PREP)} {_np(r, r.chance(0.5))}"
    )
  elif verb == "said" and depth < 1 and r.chance(0.7):
    rest = "that " + _sentence(r, depth + 1)
  else:
    rest = _np(r, r.chance(0.5))
  out = f"{subject} {verb} {rest}"
  if r.chance(0.3):
    out += " " + r.choice(_TIME)
  return out


def synthetic_lines(split: str, *, seed: int = 0) -> List[str]:
  """Lines of the built-in synthetic corpus: a small stochastic grammar of
  PTB-like tokenised financial news (lower case, ``N`` for numbers,
  ``<unk>``): 5,662 train, 821 valid and 840 test tokens, 73 words."""
  sizes = {"train": 600, "valid": 90, "test": 90}
  r = _SplitMix64(seed * 1000003 + SPLITS.index(split) + 1)
  return [" " + _sentence(r) + " \n" for _ in range(sizes[split])]


def synthetic_corpus(seed: int = 0) -> Corpus:
  """The synthetic corpus, built in memory (no files)."""
  return tokenize({s: synthetic_lines(s, seed=seed) for s in SPLITS})


def write_synthetic_corpus(directory: str, seed: int = 0) -> str:
  """Writes the synthetic corpus as ``ptb.{train,valid,test}.txt``."""
  os.makedirs(directory, exist_ok=True)
  for split in SPLITS:
    with open(
        os.path.join(directory, f"ptb.{split}.txt"), "w", encoding="utf-8"
    ) as f:
      f.writelines(synthetic_lines(split, seed=seed))
  return directory


def corpus_from(
    data_dir: str, *, max_lines: Sequence[int] = (0, 0, 0)
) -> Corpus:
  """`load_corpus(data_dir)`, or the synthetic corpus when `data_dir` is
  ``""`` or ``"synthetic"``."""
  if data_dir in ("", "synthetic"):
    return synthetic_corpus()
  return load_corpus(os.path.expanduser(data_dir), max_lines=max_lines)


# --- batches and windows ---------------------------------------------------


def batchify(ids: np.ndarray, batch_size: int) -> np.ndarray:
  """``[T, batch_size]``: the stream cut into columns (the tail dropped)."""
  rows = len(ids) // batch_size
  if rows < 2:
    raise DataError(
        f"batch_size: {batch_size} leaves fewer than 2 tokens "
        f"per column of a {len(ids)}-token split; use a smaller "
        "batch size"
    )
  return np.ascontiguousarray(
      np.asarray(ids[: rows * batch_size], np.int32).reshape(batch_size, rows).T
  )


def train_windows(
    rows: int,
    bptt: int,
    rng: np.random.Generator,
    *,
    jitter: bool = False,
    max_delta: int = 20,
) -> List[Tuple[int, int]]:
  """``(start, seq_len)`` of an epoch's BPTT windows.

  ``bptt`` with p = 0.95, else ``bptt / 2``; with `jitter` (the full recipe)
  then ``max(5, int(N(len, 5)))`` capped at ``bptt + max_delta``. The last
  window is cut at the end of the data.
  """
  out, i = [], 0
  while i < rows - 2:
    length = bptt if rng.random() < 0.95 else bptt / 2.0
    if jitter:
      seq_len = min(max(5, int(rng.normal(length, 5))), bptt + max_delta)
    else:
      seq_len = int(length)
    seq_len = max(1, min(seq_len, rows - 1 - i))
    out.append((i, seq_len))
    i += seq_len
  return out


def eval_windows(rows: int, bptt: int) -> List[Tuple[int, int]]:
  return [(i, min(bptt, rows - 1 - i)) for i in range(0, rows - 1, bptt)]


def bucket_length(seq_len: int, bucket: int, max_len: int) -> int:
  """The padded length of a window: `seq_len` rounded up to a multiple of
  `bucket`, or `max_len` when `bucket` is 0 (one compiled program)."""
  if bucket <= 0:
    return max(max_len, seq_len)
  return -(-seq_len // bucket) * bucket


def window(data: np.ndarray, start: int, seq_len: int, length: int):
  """Inputs, targets ``[length, B]`` and validity ``[length]`` of a window
  padded to `length`."""
  x = np.zeros((length, data.shape[1]), np.int32)
  y = np.zeros_like(x)
  x[:seq_len] = data[start : start + seq_len]
  y[:seq_len] = data[start + 1 : start + 1 + seq_len]
  return x, y, np.arange(length) < seq_len


# --- training state and steps ----------------------------------------------


class LMState(NamedTuple):
  """Parameters and the NT-ASGD state.

  ``averaging`` is False while training with plain SGD; once the trigger
  fires it is True and ``avg`` is the uniform average of the parameters
  after each of the ``avg_count`` steps since the switch.
  """

  params: dict
  avg: dict
  avg_count: jax.Array
  averaging: jax.Array
  step: jax.Array


def init_state(params) -> LMState:
  return LMState(
      params,
      jax.tree.map(jnp.copy, params),
      jnp.zeros((), jnp.int32),
      jnp.zeros((), bool),
      jnp.zeros((), jnp.int32),
  )


def start_averaging(state: LMState) -> LMState:
  """The NT-ASGD switch: averaging starts from the next step."""
  return state._replace(
      averaging=jnp.ones_like(state.averaging),
      avg_count=jnp.zeros_like(state.avg_count),
      avg=jax.tree.map(jnp.copy, state.params),
  )


def eval_params(state: LMState):
  """The parameters to evaluate and save: the average once it runs."""
  return jax.tree.map(
      lambda a, p: jnp.where(state.averaging, a, p), state.avg, state.params
  )


def sgd_update(
    state: LMState, grads, lr, *, clip: float, weight_decay: float
) -> LMState:
  """One (A)SGD step: clip the gradient norm, add coupled weight decay, step,
  and update the running average when averaging."""
  norm = optax.global_norm(grads)
  scale = jnp.minimum(1.0, clip / (norm + 1e-6)) if clip > 0 else 1.0
  params = jax.tree.map(
      lambda p, g: p - lr * (g * scale + weight_decay * p), state.params, grads
  )
  count = state.avg_count + state.averaging.astype(jnp.int32)
  frac = 1.0 / jnp.maximum(count, 1).astype(jnp.float32)
  avg = jax.tree.map(
      lambda a, p: jnp.where(state.averaging, a + (p - a) * frac, a),
      state.avg,
      params,
  )
  return LMState(params, avg, count, state.averaging, state.step + 1)


def lm_loss(
    model,
    params,
    hidden,
    x,
    y,
    valid,
    mask,
    key,
    *,
    train: bool,
    alpha: float = 0.0,
    beta: float = 0.0,
):
  """Mean NLL over the valid positions, plus AR (alpha) and TAR (beta).

  Returns (total loss, (raw NLL, new hidden)).
  """
  args = (x, hidden) if mask is None else (x, hidden, mask)
  rngs = {"dropout": key} if train else None
  logits, new_h, raw, dropped = model.apply(
      {"params": params}, *args, train=train, valid=valid, rngs=rngs
  )
  nll = optax.softmax_cross_entropy_with_integer_labels(logits, y)
  w = valid.astype(jnp.float32)[:, None]
  count = jnp.maximum(w.sum() * x.shape[1], 1.0)
  raw_loss = (nll * w).sum() / count
  loss = raw_loss
  hdim = raw.shape[-1]
  if alpha:
    loss = loss + alpha * (jnp.square(dropped) * w[..., None]).sum() / (
        count * hdim
    )
  if beta:
    pair = (w[1:] * w[:-1])[..., None]
    loss = loss + beta * (jnp.square(raw[1:] - raw[:-1]) * pair).sum() / (
        jnp.maximum(pair.sum() * x.shape[1], 1.0) * hdim
    )
  return loss, (raw_loss, new_h)


def make_train_step(
    model,
    *,
    clip: float = 0.25,
    weight_decay: float = 0.0,
    alpha: float = 0.0,
    beta: float = 0.0,
) -> Callable:
  """``step(state, hidden, x, y, valid, lr, key, mask) -> (state, hidden,
  raw_loss)`` for one model (``mask=None`` for an exact cell); vmap it over
  candidates."""

  def step(state, hidden, x, y, valid, lr, key, mask):
    grad_fn = jax.value_and_grad(
        lambda p: lm_loss(
            model,
            p,
            hidden,
            x,
            y,
            valid,
            mask,
            key,
            train=True,
            alpha=alpha,
            beta=beta,
        ),
        has_aux=True,
    )
    (_, (raw, new_h)), grads = grad_fn(state.params)
    state = sgd_update(state, grads, lr, clip=clip, weight_decay=weight_decay)
    return state, jax.lax.stop_gradient(new_h), raw

  return step


def make_eval_step(model) -> Callable:
  """``step(params, hidden, x, y, valid, mask) -> (hidden, summed NLL)``."""

  def step(params, hidden, x, y, valid, mask):
    _, (raw, new_h) = lm_loss(
        model, params, hidden, x, y, valid, mask, None, train=False
    )
    count = valid.sum().astype(jnp.float32) * x.shape[1]
    return new_h, raw * count

  return step


def evaluate(
    eval_step: Callable,
    params,
    data: np.ndarray,
    *,
    bptt: int,
    hidden: jax.Array,
    mask=None,
) -> float:
  """Mean per-token NLL of `data` ([T, B]); the hidden state runs through.

  `eval_step` may be vmapped over candidates: then ``params``, ``hidden``
  and ``mask`` have a leading axis and the result is an array.
  """
  total, tokens = 0.0, 0
  for start, seq_len in eval_windows(len(data), bptt):
    x, y, valid = window(data, start, seq_len, bptt)
    hidden, nll = eval_step(params, hidden, x, y, valid, mask)
    total = total + nll
    tokens += seq_len * data.shape[1]
  # The official code divides by the number of rows, not of predicted
  # tokens (rows - 1); we report the true per-token mean.
  return np.asarray(total) / tokens


def ppl(loss: float) -> float:
  """Perplexity ``exp(loss)`` (inf past overflow, NaN for NaN)."""
  if not np.isfinite(loss):
    return float("nan") if np.isnan(loss) else float("inf")
  return math.exp(loss) if loss < 700 else float("inf")


def run_epoch(
    train_step: Callable,
    state,
    hidden,
    data: np.ndarray,
    windows: Sequence[Tuple[int, int]],
    *,
    lr: float,
    bptt: int,
    key: jax.Array,
    bucket: int = 0,
    max_len: int = 0,
    mask=None,
    progress: Optional[Callable[[int], None]] = None,
):
  """One pass over `windows`; returns (state, hidden, raw losses per step).

  The learning rate of a step is ``lr * seq_len / bptt`` and its dropout key
  ``fold_in(key, step index)``. Windows are padded to `bucket_length`
  (`max_len` defaults to `bptt`).
  """
  losses = []
  for n, (start, seq_len) in enumerate(windows):
    length = bucket_length(seq_len, bucket, max_len or bptt)
    x, y, valid = window(data, start, seq_len, length)
    state, hidden, loss = train_step(
        state,
        hidden,
        x,
        y,
        valid,
        jnp.asarray(lr * seq_len / bptt, jnp.float32),
        jax.random.fold_in(key, n),
        mask,
    )
    losses.append(loss)
    if progress is not None:
      progress(n)
  return state, hidden, losses


def epoch_rng(seed, epoch: int) -> np.random.Generator:
  """The window-length generator of an epoch (a resumed run draws the same
  windows as an uninterrupted one); `seed` is an int or a list of ints."""
  seed = list(seed) if isinstance(seed, (list, tuple)) else [seed]
  return np.random.default_rng([int(v) for v in seed] + [int(epoch)])


def moving_loss(losses: Sequence, momentum: float) -> np.ndarray:
  """The official running loss: ``m = momentum*m + (1-momentum)*loss``
  starting from the first loss."""
  m = None
  for l in losses:
    l = np.asarray(l, np.float64)
    m = l if m is None else momentum * m + (1 - momentum) * l
  return m


def nonmono_trigger(
    history: Sequence[float], val_loss: float, nonmono: int
) -> bool:
  """NT-ASGD: switch when `val_loss` is worse than the best of all checks
  but the last `nonmono` (``len(history) > nonmono`` checks needed)."""
  return len(history) > nonmono and val_loss > min(history[:-nonmono])
