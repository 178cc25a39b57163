"""Training steps and proxy training of candidates.

`make_train_step` / `make_eval_step` build jitted steps for any Flax module
with BatchNorm (supernet or exact network). `ProxyTrainer` trains one
candidate sub-network from fresh weights on the proxy split and returns its
validation accuracy: every candidate reuses the same compiled init, train and
eval programs, because the edge masks are an array argument.

A training loop on the CPU is a Python loop over jitted steps: the project's
measurements found the same steps inside `lax.scan` 8x slower there
(DESIGN.md, facts).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, NamedTuple, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gram_jax.models import supernet as supernet_lib
from gram_jax.space import SearchSpace

OPTIMIZERS = ("adam", "sgd", "momentum", "rmsprop")
Variables = Dict[str, Any]


def make_optimizer(
    name: str = "adam", learning_rate: Any = 4e-3, *, momentum: float = 0.9
) -> optax.GradientTransformation:
  """An optax optimizer by name (`adam`, `sgd`, `momentum`, `rmsprop`)."""
  if name == "adam":
    return optax.adam(learning_rate)
  if name == "sgd":
    return optax.sgd(learning_rate)
  if name == "momentum":
    return optax.sgd(learning_rate, momentum=momentum)
  if name == "rmsprop":
    # TF1 semantics (ALGORITHMS.md 4): accumulator starts at 1, eps in sqrt.
    return optax.rmsprop(
        learning_rate,
        decay=0.9,
        eps=1.0,
        momentum=momentum,
        initial_scale=1.0,
        eps_in_sqrt=True,
    )
  raise ValueError(
      f"optimizer: {name!r} is not allowed; allowed: {', '.join(OPTIMIZERS)}"
  )


def l2_penalty(params, skip: Tuple[str, ...] = ()) -> jax.Array:
  """``sum(w^2)`` over conv and dense kernels (not BN scale/bias or biases).

  `skip`: module names whose kernels are left out wherever they sit in the
  tree (AutoShrink passes ``("dw",)``: Keras regularises no depthwise
  kernel, ALGORITHMS.md pitfall 12).
  """
  total = jnp.float32(0.0)
  for path, x in jax.tree_util.tree_leaves_with_path(params):
    keys = [getattr(p, "key", None) for p in path]
    if keys[-1] == "kernel" and not any(k in skip for k in keys):
      total = total + jnp.sum(jnp.square(x))
  return total


def make_train_step(
    apply_fn: Callable,
    tx: optax.GradientTransformation,
    *,
    weight_decay: float = 0.0,
    penalty: Callable = l2_penalty,
    report_penalty: bool = True,
) -> Callable:
  """``step(variables, opt_state, x, y, *extra) -> (variables, opt_state, loss)``.

  `apply_fn(variables, x, *extra, train=True, mutable=["batch_stats"])`.
  `weight_decay` adds ``weight_decay * sum(kernel^2)`` to the loss (coupled
  L2, as the papers' TF code does), or ``weight_decay * penalty(params)``
  with another `penalty`; the returned `loss` includes it unless
  `report_penalty` is False (then it is the cross-entropy alone).
  """

  def step(variables, opt_state, x, y, *extra):
    def loss_fn(params):
      logits, new_state = apply_fn(
          {"params": params, "batch_stats": variables["batch_stats"]},
          x,
          *extra,
          train=True,
          mutable=["batch_stats"],
      )
      data = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      loss = data
      if weight_decay:
        loss = loss + weight_decay * penalty(params)
      return loss, (data, new_state)

    (loss, (data, new_state)), grads = jax.value_and_grad(
        loss_fn, has_aux=True
    )(variables["params"])
    if not report_penalty:
      loss = data
    updates, opt_state = tx.update(grads, opt_state, variables["params"])
    params = optax.apply_updates(variables["params"], updates)
    return (
        {"params": params, "batch_stats": new_state["batch_stats"]},
        opt_state,
        loss,
    )

  return step


def _map_bn(tree, fn):
  """Applies ``fn(mean, var) -> (mean, var)`` to every BatchNorm's
  ``{"mean", "var"}`` dict of a batch_stats tree."""
  if isinstance(tree, dict) or hasattr(tree, "items"):
    if set(tree) == {"mean", "var"}:
      mean, var = fn(tree["mean"], tree["var"])
      return {"mean": mean, "var": var}
    return {k: _map_bn(v, fn) for k, v in tree.items()}
  return tree


def make_bn_moments(apply_fn: Callable) -> Callable:
  """``moments(variables, x) -> tree``: the batch's BatchNorm moments.

  For every BatchNorm of `apply_fn`'s network, the mean and the mean of
  squares (in the ``var`` leaf) of its input over the batch `x`, in
  training mode (each layer normalised by the batch's own statistics, as a
  training step sees it). Read off the module's running-average update
  ``new = momentum * old + (1 - momentum) * batch``, applied once to zero
  and once to unit statistics, so any BN momentum works.
  """

  def moments(variables, x):
    stats = variables["batch_stats"]

    def update(fill):
      start = jax.tree.map(lambda a: jnp.full_like(a, fill), stats)
      _, new = apply_fn(
          {"params": variables["params"], "batch_stats": start},
          x,
          train=True,
          mutable=["batch_stats"],
      )
      return new["batch_stats"]

    s0, s1 = update(0.0), update(1.0)
    # s0 = (1 - m) b and s1 = m + (1 - m) b: b = s0 / (1 - (s1 - s0)).
    batch = jax.tree.map(lambda a, b: a / (1.0 - (b - a)), s0, s1)
    return _map_bn(batch, lambda m, v: (m, v + m**2))

  return moments


def recompute_batch_stats(
    moments: Callable, variables: Variables, batches
) -> Variables:
  """`variables` with BatchNorm statistics averaged over `batches`.

  Precise BN: instead of the running averages (which trail the weights
  while they move fast, most of all with a slow BN momentum), each layer's
  mean and variance over the images of `batches` (``x`` arrays), with the
  weights as they are. `moments` is ``jax.jit(make_bn_moments(apply))``.
  With no batch_stats or no batches, `variables` is returned unchanged.
  """
  if not variables.get("batch_stats"):
    return variables
  total, n = None, 0
  for x in batches:
    m = moments(variables, x)
    total = m if total is None else jax.tree.map(jnp.add, total, m)
    n += 1
  if n == 0:
    return variables
  stats = _map_bn(
      total,
      lambda s, s2: (s / n, jnp.maximum(s2 / n - (s / n) ** 2, 0.0)),
  )
  return {**variables, "batch_stats": stats}


def make_eval_step(apply_fn: Callable, *, top_k: int = 1) -> Callable:
  """``eval(variables, x, y, weight, *extra) -> (correct, top_k_correct, loss_sum)``.

  `weight` is 1 for real examples and 0 for padding.
  """

  def evaluate(variables, x, y, weight, *extra):
    logits = apply_fn(variables, x, *extra, train=False)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    correct = (jnp.argmax(logits, -1) == y).astype(jnp.float32)
    k = min(top_k, logits.shape[-1])
    topk = jax.lax.top_k(logits, k)[1]
    correct_k = jnp.any(topk == y[:, None], axis=-1).astype(jnp.float32)
    return (
        jnp.sum(correct * weight),
        jnp.sum(correct_k * weight),
        jnp.sum(loss * weight),
    )

  return evaluate


def padded_chunks(n: int, batch: int):
  """Index arrays of size `batch` covering range(n), with validity weights."""
  for start in range(0, n, batch):
    idx = np.arange(start, start + batch)
    weight = (idx < n).astype(np.float32)
    yield np.minimum(idx, n - 1), weight


def data_rng(key: jax.Array) -> np.random.Generator:
  """The host RNG that orders a candidate's proxy batches."""
  return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())


def lockstep_epoch(
    step: Callable,
    variables,
    opt_state,
    rngs,
    data: Tuple[Any, ...],
    *,
    batch_size: int,
    steps: int,
    index: Callable = lambda idx: idx,
):
  """One epoch of candidates trained side by side (AutoShrink's vmapped
  proxy, the batched GRAM trainer).

  Each candidate's host RNG in `rngs` draws its own order of the
  ``len(data[0])`` examples; every step calls ``step(variables, opt_state,
  data[0], data[1], index(idx), *data[2:])`` with ``idx`` the stacked
  ``int[C, batch_size]`` batch indices (`index` places them: onto devices,
  or the one row of an unbatched step). Returns ``(variables, opt_state,
  mean loss)``, the loss averaged over the epoch's steps per candidate.
  """
  n, b = len(data[0]), batch_size
  perms = [rng.permutation(n) for rng in rngs]
  losses = []
  for s in range(steps):
    idx = np.stack([p[s * b : (s + 1) * b] for p in perms])
    variables, opt_state, loss = step(
        variables, opt_state, data[0], data[1], index(idx), *data[2:]
    )
    losses.append(loss)
  return variables, opt_state, jnp.mean(jnp.stack(losses), axis=0)


PROXY_SCHEDULES = ("constant", "cosine")


class ProxyResult(NamedTuple):
  accuracy: float  # validation accuracy in [0, 1]; 0 if diverged
  loss: float  # validation loss (nan if diverged)
  train_loss: float  # mean training loss of the last epoch
  diverged: bool


class ProxyTrainer:
  """Trains candidate sub-networks of a supernet on a fixed proxy split.

  Args:
    space: search space.
    ops: frozen node ops (``MetaGraph.ops``).
    num_classes: classifier width.
    x_train, y_train, x_val, y_val: the proxy split (host arrays).
    epochs: training epochs per candidate.
    batch_size: training batch size (the last partial batch is dropped).
    learning_rate: optimizer learning rate (AutoShrink: Adam 4e-3).
    optimizer: one of `OPTIMIZERS`.
    weight_decay: coupled L2 (GRAM's search loss has none [SN Eq. 3]).
    select: ``"last"`` (accuracy after the last epoch) or ``"best"`` (best
      epoch; evaluates every epoch, as AutoShrink does).
    schedule: ``"constant"`` learning rate (AutoShrink's proxy recipe) or
      ``"cosine"`` decay to 0 over the candidate's training, which makes the
      final accuracy depend less on where the last steps happened to land
      (less proxy noise; `benchmarks/proxy_noise.py` measures it).
    eval_batch_size: batch size of validation.

  Calling ``trainer(masks, key)`` returns a `ProxyResult`. A candidate whose
  loss becomes NaN or inf is reported diverged with accuracy 0, so a NaN
  never reaches the meta-graph.

  Attributes:
    init_fn, step_fn, eval_fn: one candidate's init, train step and eval
      step, unjitted (`scale.BatchedProxyTrainer` vmaps them).
    jit_init, jit_step, jit_eval: the same, jitted, as ``trainer(...)`` runs
      them (`jit_step` donates its variables and optimizer state). Benchmarks
      lower them for XLA's cost analysis.
  """

  def __init__(
      self,
      space: SearchSpace,
      ops: Any,
      num_classes: int,
      *,
      x_train,
      y_train,
      x_val,
      y_val,
      epochs: int = 10,
      batch_size: int = 50,
      learning_rate: float = 4e-3,
      optimizer: str = "adam",
      weight_decay: float = 0.0,
      select: str = "last",
      eval_batch_size: int = 500,
      schedule: str = "constant",
  ):
    if select not in ("last", "best"):
      raise ValueError(
          f"select: {select!r} is not allowed; allowed: last, best"
      )
    if epochs < 1:
      raise ValueError(f"epochs: {epochs!r} is not allowed; allowed: >= 1")
    if schedule not in PROXY_SCHEDULES:
      raise ValueError(
          f"schedule: {schedule!r} is not allowed; allowed: "
          f"{', '.join(PROXY_SCHEDULES)}"
      )
    if not 1 <= batch_size <= len(x_train):
      raise ValueError(
          f"batch_size: {batch_size!r} is not allowed; allowed: "
          f"1 to the proxy training size {len(x_train)}"
      )
    self.net = supernet_lib.Supernet(
        space, supernet_lib.static_ops(ops), num_classes
    )
    self.epochs, self.batch_size, self.select = epochs, batch_size, select
    self.x_train = jnp.asarray(x_train)
    self.y_train = jnp.asarray(y_train, jnp.int32)
    self.x_val = jnp.asarray(x_val)
    self.y_val = jnp.asarray(y_val, jnp.int32)
    self.eval_batch_size = min(eval_batch_size, len(x_val))
    lr = learning_rate
    if schedule == "cosine":
      lr = optax.cosine_decay_schedule(
          learning_rate, max(1, epochs * (len(x_train) // batch_size))
      )
    tx = make_optimizer(optimizer, lr)
    net = self.net
    sample_x = self.x_train[:batch_size]

    def init(key, masks):
      variables = supernet_lib.init_candidate(net, key, sample_x, masks)
      return variables, tx.init(variables["params"])

    train_step = make_train_step(net.apply, tx, weight_decay=weight_decay)

    # The data are explicit jit arguments: closed-over arrays would be baked
    # into the program as constants.
    def step_fn(variables, opt_state, x_all, y_all, idx, masks):
      return train_step(variables, opt_state, x_all[idx], y_all[idx], masks)

    eval_step = make_eval_step(net.apply)

    def eval_fn(variables, x_all, y_all, idx, weight, masks):
      return eval_step(variables, x_all[idx], y_all[idx], weight, masks)

    # The unjitted functions are kept for `scale.BatchedProxyTrainer`, which
    # vmaps them over a batch of candidates.
    self.init_fn, self.step_fn, self.eval_fn = init, step_fn, eval_fn
    self.jit_init = jax.jit(init)
    self.jit_step = jax.jit(step_fn, donate_argnums=(0, 1))
    self.jit_eval = jax.jit(eval_fn)
    self.steps_per_epoch = len(x_train) // batch_size

  def num_compilations(self) -> int:
    """Compiled programs held by the trainer's init, train and eval steps."""
    jitted = (self.jit_init, self.jit_step, self.jit_eval)
    return sum(f._cache_size() for f in jitted)  # pylint: disable=protected-access

  def evaluate(self, variables: Variables, masks) -> Tuple[float, float]:
    correct, loss = 0.0, 0.0
    for idx, weight in padded_chunks(len(self.x_val), self.eval_batch_size):
      c, _, l = self.jit_eval(
          variables, self.x_val, self.y_val, idx, weight, masks
      )
      correct, loss = correct + c, loss + l
    n = len(self.x_val)
    return float(correct) / n, float(loss) / n

  def __call__(self, masks, key: jax.Array) -> ProxyResult:
    init_key, data_key = jax.random.split(key)
    variables, opt_state = self.jit_init(init_key, masks)
    n, b = len(self.x_train), self.batch_size
    best_acc, best_loss, train_loss = -1.0, math.nan, math.nan
    rng = data_rng(data_key)
    for epoch in range(self.epochs):
      perm = rng.permutation(n)
      losses = []
      for s in range(self.steps_per_epoch):
        idx = perm[s * b : (s + 1) * b]
        variables, opt_state, loss = self.jit_step(
            variables, opt_state, self.x_train, self.y_train, idx, masks
        )
        losses.append(loss)
      if self.select == "best" or epoch == self.epochs - 1:
        train_loss = float(jnp.mean(jnp.stack(losses)))
        if not math.isfinite(train_loss):
          return ProxyResult(0.0, math.nan, train_loss, True)
        acc, val_loss = self.evaluate(variables, masks)
        if not math.isfinite(val_loss):
          return ProxyResult(0.0, math.nan, train_loss, True)
        if acc > best_acc:
          best_acc, best_loss = acc, val_loss
    return ProxyResult(best_acc, best_loss, train_loss, False)


class FitResult(NamedTuple):
  variables: Variables
  test_accuracy: float
  test_top5: float
  test_loss: float
  history: list


def fit(
    module,
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: Any,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    seed: int = 0,
    progress: bool = True,
    eval_batch_size: int = 500,
    desc: str = "train",
) -> FitResult:
  """Trains a Flax module with BatchNorm on in-memory data and evaluates it.

  Used for final training of a found network on small datasets (digits).
  `learning_rate` may be an optax schedule (a function of the step).
  """
  if not 1 <= batch_size <= len(x_train):
    raise ValueError(
        f"batch_size: {batch_size!r} is not allowed; allowed: "
        f"1 to the training size {len(x_train)}"
    )
  key = jax.random.key(seed)
  x_train = jnp.asarray(x_train)
  y_train = jnp.asarray(y_train, jnp.int32)
  variables = jax.jit(module.init)(key, x_train[:1])
  tx = make_optimizer(optimizer, learning_rate)
  opt_state = tx.init(variables["params"])
  train_step = make_train_step(module.apply, tx, weight_decay=weight_decay)
  step = jax.jit(
      lambda v, o, x, y, idx: train_step(v, o, x[idx], y[idx]),
      donate_argnums=(0, 1),
  )
  eval_step = make_eval_step(module.apply, top_k=5)
  evaluate = jax.jit(lambda v, x, y, idx, w: eval_step(v, x[idx], y[idx], w))
  rng = np.random.default_rng(seed)
  steps = len(x_train) // batch_size
  history = []
  bar = None
  if progress:
    from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

    bar = tqdm(total=epochs, desc=desc, unit="epoch", dynamic_ncols=True)
  for epoch in range(epochs):
    perm = rng.permutation(len(x_train))
    losses = []
    for s in range(steps):
      variables, opt_state, loss = step(
          variables,
          opt_state,
          x_train,
          y_train,
          perm[s * batch_size : (s + 1) * batch_size],
      )
      losses.append(loss)
    mean_loss = float(jnp.mean(jnp.stack(losses)))
    history.append({"epoch": epoch + 1, "train_loss": mean_loss})
    if bar is not None:
      bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
      bar.update(1)
  if bar is not None:
    bar.close()
  x_test = jnp.asarray(x_test)
  y_test = jnp.asarray(y_test, jnp.int32)
  correct = top5 = loss_sum = 0.0
  for idx, w in padded_chunks(len(x_test), min(eval_batch_size, len(x_test))):
    c, c5, l = evaluate(variables, x_test, y_test, idx, w)
    correct, top5, loss_sum = correct + c, top5 + c5, loss_sum + l
  n = len(x_test)
  return FitResult(
      variables,
      float(correct) / n,
      float(top5) / n,
      float(loss_sum) / n,
      history,
  )
