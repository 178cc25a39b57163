"""Eager PyTorch (CPU) baseline for proxy-training GRAM candidates.

For every candidate a researcher without `gram_jax` would build the exact
sub-network of its `ArchSpec` as a `torch.nn.Module` and train it from
scratch with the proxy recipe of `gram_jax.train` (Adam, softmax
cross-entropy, per-epoch random permutation, last partial batch dropped,
validation accuracy in eval mode). This module is that baseline, so the
JAX trainer can be timed against it on the same candidates.

The network is the one of `gram_jax.models.ExactNet`, computed in NCHW:
TF 'SAME' padding is reproduced exactly (asymmetric for strided stem convs
and for the 2x2/2 pools on odd sizes; average pooling excludes padding), and
`load_jax_variables` copies an `ExactNet`'s variables in, which
``--check`` uses to show that both produce the same logits.

One known difference: `torch.nn.BatchNorm2d` updates its running variance
with the unbiased batch variance, Flax with the biased one (a factor
``N / (N - 1)`` on the update, N = batch x height x width >= 800 here). The
outputs of a forward pass are identical; ``--check`` verifies the running
statistics up to exactly that factor.

Usage:
  python benchmarks/torch_baseline.py --check
  python benchmarks/torch_baseline.py --time 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
from gram_jax import arch as arch_lib
from gram_jax import data as data_lib
from gram_jax import metagraph
from gram_jax.models import ExactNet
from gram_jax.space import SearchSpace

# pylint: enable=wrong-import-position

# --- TF 'SAME' helpers --------------------------------------------------------


def same_pads(size: int, kernel: int, stride: int) -> Tuple[int, int]:
  """TF 'SAME' padding (before, after) of one spatial axis.

  Args:
    size: input length of the axis.
    kernel: window length.
    stride: window stride.

  Returns:
    The padding before and after; the extra element, if any, goes after.
  """
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def pad_same(
    x: torch.Tensor, kernel: int, stride: int, value: float = 0.0
) -> torch.Tensor:
  """Pads an NCHW tensor so a VALID window op on it is TF 'SAME'."""
  top, bottom = same_pads(x.shape[2], kernel, stride)
  left, right = same_pads(x.shape[3], kernel, stride)
  if top == bottom == left == right == 0:
    return x
  return F.pad(x, (left, right, top, bottom), value=value)


def pool_same(x: torch.Tensor, mode: str) -> torch.Tensor:
  """2x2 stride-2 pooling with TF 'SAME' padding (NCHW).

  Args:
    x: input tensor.
    mode: ``"max"`` (padding never wins) or ``"avg"`` (mean over the
      in-bounds elements of each window, i.e. padding excluded).

  Returns:
    The pooled tensor, ``ceil(H / 2) x ceil(W / 2)``.
  """
  if mode == "max":
    return F.max_pool2d(pad_same(x, 2, 2, -math.inf), 2, 2)
  summed = F.avg_pool2d(pad_same(x, 2, 2), 2, 2)
  ones = x.new_ones((1, 1) + tuple(x.shape[2:]))
  count = F.avg_pool2d(pad_same(ones, 2, 2), 2, 2)
  return summed / count


def aggregate(xs: Sequence[torch.Tensor], mode: str) -> torch.Tensor:
  """``"sum"``: zero-pad channels to the widest and add; else concatenate."""
  if len(xs) == 1:
    return xs[0]
  if mode == "sum":
    width = max(x.shape[1] for x in xs)
    out = None
    for x in xs:
      if x.shape[1] < width:
        x = F.pad(x, (0, 0, 0, 0, 0, width - x.shape[1]))
      out = x if out is None else out + x
    return out
  return torch.cat(list(xs), dim=1)


# --- the network --------------------------------------------------------------


def glorot_normal_(weight: torch.Tensor) -> torch.Tensor:
  """Flax's ``glorot_normal``: truncated normal (+-2 std), fan-average.

  Args:
    weight: a conv (OIHW) or linear (out, in) weight, filled in place.

  Returns:
    `weight`.
  """
  receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
  fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
  # 0.8796... is the std of a unit normal truncated to [-2, 2].
  std = math.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978
  with torch.no_grad():
    return nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)


class ConvBNAct(nn.Module):
  """k x k conv (TF 'SAME', no bias) -> BatchNorm -> ELU.

  Args:
    in_channels: input channels.
    channels: output channels.
    kernel: odd kernel size.
    stride: conv stride.
    bn_momentum: BatchNorm momentum in the Flax/TF convention (decay of the
      running statistics).
    bn_epsilon: BatchNorm epsilon.
  """

  def __init__(
      self,
      in_channels: int,
      channels: int,
      kernel: int,
      stride: int = 1,
      bn_momentum: float = 0.9,
      bn_epsilon: float = 1e-5,
  ):
    super().__init__()
    self.kernel, self.stride = kernel, stride
    # Stride 1 with an odd kernel is symmetric: the conv pads by itself.
    self.fixed_pad = stride == 1 and kernel % 2 == 1
    self.conv = nn.Conv2d(
        in_channels,
        channels,
        kernel,
        stride,
        padding=kernel // 2 if self.fixed_pad else 0,
        bias=False,
    )
    self.bn = nn.BatchNorm2d(
        channels, eps=bn_epsilon, momentum=1.0 - bn_momentum
    )
    glorot_normal_(self.conv.weight)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if not self.fixed_pad:
      x = pad_same(x, self.kernel, self.stride)
    return F.elu(self.bn(self.conv(x)))


class TorchExactNet(nn.Module):
  """The `ExactNet` of an `ArchSpec` in PyTorch (NCHW input, logits out).

  Layers are held in `layers` under the Flax names (``stem{i}``,
  ``dag{k}_node{id}``), the classifier in `head`.

  Args:
    spec: the architecture.
    in_channels: channels of the input images.
  """

  def __init__(self, spec: arch_lib.ArchSpec, in_channels: int):
    super().__init__()
    self.spec = spec
    self.layers = nn.ModuleDict()
    width = in_channels
    for i, c in enumerate(spec.stem):
      self.layers[f"stem{i}"] = ConvBNAct(
          width,
          c.channels,
          c.kernel,
          c.stride,
          spec.bn_momentum,
          spec.bn_epsilon,
      )
      width = c.channels
    m = spec.dags_per_hierarchy
    for h in range(spec.hierarchies):
      out_width = 0
      for j, dag in enumerate(spec.hierarchy(h)):
        widths = {}
        for node in dag.nodes:
          if node.id == 0:
            node_in = width
          else:
            node_in = arch_lib.aggregate_width(
                spec.aggregate, [widths[u] for u in node.inputs]
            )
          self.layers[f"dag{h * m + j}_node{node.id}"] = ConvBNAct(
              node_in,
              node.channels,
              node.kernel,
              1,
              spec.bn_momentum,
              spec.bn_epsilon,
          )
          widths[node.id] = node.channels
        out_width += arch_lib.aggregate_width(
            spec.aggregate, [widths[s] for s in spec.outputs(dag)]
        )
      width = out_width
    self.head = nn.Linear(width, spec.num_classes)
    glorot_normal_(self.head.weight)
    nn.init.zeros_(self.head.bias)
    # The DAG wiring, resolved once: (layer name, node id, input ids).
    self._plan = [
        [
            [(f"dag{h * m + j}_node{n.id}", n.id, n.inputs) for n in dag.nodes]
            for j, dag in enumerate(spec.hierarchy(h))
        ]
        for h in range(spec.hierarchies)
    ]
    self._outputs = [
        [spec.outputs(dag) for dag in spec.hierarchy(h)]
        for h in range(spec.hierarchies)
    ]

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    spec = self.spec
    for i in range(len(spec.stem)):
      x = self.layers[f"stem{i}"](x)
    for h, dags in enumerate(self._plan):
      if h > 0:
        x = pool_same(x, spec.pool)
      outs = []
      for nodes, sinks in zip(dags, self._outputs[h]):
        feats = {}
        for name, node_id, inputs in nodes:
          inp = (
              x
              if node_id == 0
              else aggregate([feats[u] for u in inputs], spec.aggregate)
          )
          feats[node_id] = self.layers[name](inp)
        outs.append(aggregate([feats[s] for s in sinks], spec.aggregate))
      x = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
    return self.head(x.mean(dim=(2, 3)))


def build_model(spec: arch_lib.ArchSpec, in_channels: int) -> nn.Module:
  """The network of `spec` as a freshly initialised `torch.nn.Module`.

  Args:
    spec: the architecture.
    in_channels: channels of the (NCHW) input images.

  Returns:
    A `TorchExactNet`: glorot-normal (truncated) conv and dense kernels,
    zero dense bias, BatchNorm scale 1 and bias 0, as `ExactNet.init`.
  """
  return TorchExactNet(spec, in_channels)


def load_jax_variables(model: nn.Module, variables: Mapping[str, Any]) -> None:
  """Copies Flax `ExactNet` variables into `model` (in place).

  Conv kernels go HWIO -> OIHW, the dense kernel (in, out) -> (out, in);
  BatchNorm scale/bias and mean/var statistics are copied as they are.

  Args:
    model: a `TorchExactNet` of the same spec.
    variables: ``{"params": ..., "batch_stats": ...}`` of `ExactNet`.

  Raises:
    ValueError: if a layer is missing or a shape does not match.
  """
  params, stats = variables["params"], variables["batch_stats"]

  def put(dst: torch.Tensor, src: Any, where: str) -> None:
    src = torch.from_numpy(np.array(src, dtype=np.float32))
    if tuple(src.shape) != tuple(dst.shape):
      raise ValueError(
          f"{where}: shape {tuple(src.shape)} does not fit {tuple(dst.shape)}"
      )
    dst.copy_(src)

  names = set(model.layers.keys())
  if set(stats) != names or set(params) != names | {"head"}:
    raise ValueError(
        f"layers differ: flax {sorted(params)}, torch "
        f"{sorted(names | {'head'})}"
    )
  with torch.no_grad():
    for name, layer in model.layers.items():
      p, s = params[name], stats[name]
      put(
          layer.conv.weight,
          np.transpose(p["conv"]["kernel"], (3, 2, 0, 1)),
          f"{name}.conv.kernel",
      )
      put(layer.bn.weight, p["bn"]["scale"], f"{name}.bn.scale")
      put(layer.bn.bias, p["bn"]["bias"], f"{name}.bn.bias")
      put(layer.bn.running_mean, s["bn"]["mean"], f"{name}.bn.mean")
      put(layer.bn.running_var, s["bn"]["var"], f"{name}.bn.var")
    put(
        model.head.weight, np.transpose(params["head"]["kernel"]), "head.kernel"
    )
    put(model.head.bias, params["head"]["bias"], "head.bias")


# --- proxy training -----------------------------------------------------------


def _nchw(x: np.ndarray) -> torch.Tensor:
  return torch.from_numpy(
      np.transpose(np.asarray(x, np.float32), (0, 3, 1, 2)).copy()
  )


def train_candidate(
    spec: arch_lib.ArchSpec,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    epochs: int = 10,
    batch_size: int = 50,
    learning_rate: float = 4e-3,
    seed: int = 0,
    eval_batch_size: int = 500,
    device: str = "cpu",
    schedule: str = "constant",
) -> Dict[str, float]:
  """Trains the network of `spec` from scratch; returns its accuracy.

  The recipe of `gram_jax.train.ProxyTrainer` (``select="last"``): Adam
  (0.9, 0.999, 1e-8) without weight decay, mean softmax cross-entropy,
  batches from a per-epoch random permutation with the last partial batch
  dropped, then validation accuracy in eval mode. Threads are the caller's
  (`torch.set_num_threads`).

  Args:
    spec: the candidate.
    x_train: f32[N, H, W, C] (NHWC, as `gram_jax.data` gives it).
    y_train: int[N] class ids.
    x_val: f32[M, H, W, C].
    y_val: int[M].
    epochs: training epochs.
    batch_size: training batch size.
    learning_rate: Adam learning rate.
    seed: seeds the weights (torch) and the batch order (numpy).
    eval_batch_size: validation batch size.
    schedule: ``"constant"`` or ``"cosine"``: the learning rate decays to 0
      over the ``epochs * (len(x_train) // batch_size)`` steps, step t using
      ``learning_rate * (1 + cos(pi * t / steps)) / 2`` as
      ``optax.cosine_decay_schedule`` gives the proxy trainer.
    device: torch device the data, the model and the steps live on
      (``"cuda"`` on a GPU host: the eager loop a PyTorch user would run
      there).

  Returns:
    ``accuracy`` (validation, in [0, 1]; 0 if the loss became non-finite),
    ``seconds`` (all: data conversion, building, training, evaluation),
    ``train_seconds`` and ``eval_seconds``.
  """
  start = time.perf_counter()
  xt = _nchw(x_train).to(device)
  yt = torch.from_numpy(np.asarray(y_train, np.int64)).to(device)
  xv = _nchw(x_val).to(device)
  yv = torch.from_numpy(np.asarray(y_val, np.int64)).to(device)
  torch.manual_seed(seed)
  model = build_model(spec, xt.shape[1]).to(device)
  opt = torch.optim.Adam(
      model.parameters(), lr=learning_rate, betas=(0.9, 0.999), eps=1e-8
  )
  rng = np.random.default_rng(seed)
  if schedule not in ("constant", "cosine"):
    raise ValueError(
        f"schedule: {schedule!r} is not allowed; allowed: constant, cosine"
    )
  n, steps = len(xt), len(xt) // batch_size
  total = max(1, epochs * steps)
  train_start = time.perf_counter()
  model.train()
  loss = torch.zeros(())
  t = 0
  for _ in range(epochs):
    perm = torch.from_numpy(rng.permutation(n)).to(device)
    for s in range(steps):
      if schedule == "cosine":
        for group in opt.param_groups:
          group["lr"] = (
              learning_rate * 0.5 * (1 + math.cos(math.pi * t / total))
          )
      idx = perm[s * batch_size : (s + 1) * batch_size]
      loss = F.cross_entropy(model(xt[idx]), yt[idx])
      opt.zero_grad(set_to_none=True)
      loss.backward()
      opt.step()
      t += 1
  diverged = not math.isfinite(loss.item())
  eval_start = time.perf_counter()
  model.eval()
  correct = 0
  with torch.no_grad():
    for i in range(0, len(xv), eval_batch_size):
      logits = model(xv[i : i + eval_batch_size])
      diverged = diverged or not bool(torch.isfinite(logits).all())
      correct += int((logits.argmax(1) == yv[i : i + eval_batch_size]).sum())
  end = time.perf_counter()
  return {
      "accuracy": 0.0 if diverged else correct / len(xv),
      "seconds": end - start,
      "train_seconds": eval_start - train_start,
      "eval_seconds": end - eval_start,
  }


# --- command line -------------------------------------------------------------


def _random_specs(seed: int = 0) -> List[Tuple[str, Any, Tuple[int, ...]]]:
  """``(label, spec, input NHWC shape)`` covering the features to check."""
  # Strided stems on 8x8 and 10x10 pad asymmetrically (0, 1) and (1, 2);
  # 5x5 and 7x7 hierarchy inputs make the pools pad asymmetrically.
  cases = [
      ("sum/max 8x8", dict(aggregate="sum"), (4, 8, 8, 1)),
      ("concat/max 8x8", dict(aggregate="concat"), (4, 8, 8, 1)),
      (
          "sum/avg stem 3x3/2 8x8",
          dict(aggregate="sum", pool="avg", stem=("conv3x3_16/2",)),
          (4, 8, 8, 1),
      ),
      (
          "concat/max stem 5x5/2,3x3 10x10x3",
          dict(aggregate="concat", stem=("conv5x5_16/2", "conv3x3_32")),
          (3, 10, 10, 3),
      ),
      ("concat/avg 7x7", dict(aggregate="concat", pool="avg"), (4, 7, 7, 1)),
      ("sum/max 7x7x2", dict(aggregate="sum"), (4, 7, 7, 2)),
  ]
  out = []
  for i, (label, kw, shape) in enumerate(cases):
    space = SearchSpace(
        hierarchies=2, dags_per_hierarchy=3, nodes=8, width=0.25, **kw
    )
    graph = metagraph.init(space, jax.random.key(seed + i), init_weight=0.5)
    masks = metagraph.sample(graph, jax.random.key(seed + 100 + i))
    spec = arch_lib.from_masks(space, graph.ops, masks, num_classes=10)
    out.append((label, spec, shape))
  return out


def _perturb(variables: Any, key: Any) -> Any:
  """Random BN scale/bias/statistics so that loading them is tested too."""

  leaves, treedef = jax.tree_util.tree_flatten_with_path(variables)
  keys = jax.random.split(key, len(leaves))
  new = []
  for (path, leaf), k in zip(leaves, keys):
    name = getattr(path[-1], "key", "")
    noise = jax.random.normal(k, leaf.shape)
    if name == "scale":
      leaf = 1.0 + 0.2 * noise
    elif name == "bias" or name == "mean":
      leaf = 0.2 * noise
    elif name == "var":
      leaf = jax.random.uniform(k, leaf.shape, minval=0.5, maxval=1.5)
    new.append(leaf)
  return jax.tree_util.tree_unflatten(treedef, new)


def check(tol: float = 1e-4) -> Dict[str, float]:
  """Asserts that the torch network computes `ExactNet`'s function.

  For several sampled specs (both aggregates, both pools, strided stems, odd
  input sizes) it initialises the Flax `ExactNet`, randomises its BatchNorm
  variables, loads them into the torch model and compares eval-mode logits
  and train-mode logits (batch statistics), and the updated running
  statistics (the variance up to torch's unbiased-update factor).

  Args:
    tol: largest allowed absolute difference of logits.

  Returns:
    The largest differences seen, by kind.
  """
  worst = {"eval": 0.0, "train": 0.0, "mean": 0.0, "var": 0.0}
  for i, (label, spec, shape) in enumerate(_random_specs()):
    x = np.asarray(jax.random.normal(jax.random.key(1000 + i), shape))
    net = ExactNet(spec)
    variables = net.init(jax.random.key(i), jnp.zeros(shape))
    variables = _perturb(variables, jax.random.key(2000 + i))
    model = build_model(spec, shape[-1])
    load_jax_variables(model, variables)

    model.eval()
    with torch.no_grad():
      y_eval = model(_nchw(x)).numpy()
    j_eval = np.asarray(net.apply(variables, jnp.asarray(x)))
    model.train()
    counts = {}  # N = batch x H x W seen by each BatchNorm
    hooks = [
        layer.bn.register_forward_pre_hook(
            lambda mod, inp, name=name: counts.__setitem__(
                name, inp[0].numel() // inp[0].shape[1]
            )
        )
        for name, layer in model.layers.items()
    ]
    with torch.no_grad():
      y_train = model(_nchw(x)).numpy()
    for hook in hooks:
      hook.remove()
    j_train, new_state = net.apply(
        variables, jnp.asarray(x), train=True, mutable=["batch_stats"]
    )
    d_eval = float(np.max(np.abs(y_eval - j_eval)))
    d_train = float(np.max(np.abs(y_train - np.asarray(j_train))))

    d_mean = d_var = 0.0
    momentum = spec.bn_momentum
    for name, layer in model.layers.items():
      old = variables["batch_stats"][name]["bn"]
      new = new_state["batch_stats"][name]["bn"]
      d_mean = max(
          d_mean,
          float(
              np.max(
                  np.abs(
                      layer.bn.running_mean.numpy() - np.asarray(new["mean"])
                  )
              )
          ),
      )
      # Flax: var' = m var + (1 - m) v_biased; torch uses v_unbiased.
      batch_var = (
          np.asarray(new["var"]) - momentum * np.asarray(old["var"])
      ) / (1.0 - momentum)
      count = counts[name]
      want = momentum * np.asarray(old["var"]) + (1.0 - momentum) * (
          batch_var * count / (count - 1)
      )
      d_var = max(
          d_var, float(np.max(np.abs(layer.bn.running_var.numpy() - want)))
      )
    print(
        f"{label:34s} nodes={spec.num_nodes:2d} edges={spec.num_edges:3d} "
        f"eval={d_eval:.2e} train={d_train:.2e} mean={d_mean:.2e} "
        f"var={d_var:.2e}"
    )
    for k, v in zip(
        ("eval", "train", "mean", "var"), (d_eval, d_train, d_mean, d_var)
    ):
      worst[k] = max(worst[k], v)
    if max(d_eval, d_train, d_mean, d_var) > tol:
      raise AssertionError(
          f"{label}: torch and ExactNet differ by more than {tol}"
      )
  return worst


def time_candidates(
    num: int,
    *,
    seed: int = 0,
    init_weight: float = 0.5,
    epochs: int = 10,
    batch_size: int = 50,
    learning_rate: float = 4e-3,
) -> Dict[str, Any]:
  """Trains `num` sampled quickstart-space candidates on a digits proxy.

  Args:
    num: number of candidates.
    seed: seeds the meta-graph, the samples and the training.
    init_weight: edge probability of the sampled meta-graph (1.0 gives the
      complete DAGs, the quickstart's first iteration).
    epochs: training epochs per candidate.
    batch_size: training batch size.
    learning_rate: Adam learning rate.

  Returns:
    The summary printed by ``--time``.
  """
  ds = data_lib.load("digits")
  split = data_lib.proxy_split(ds, seed=0, num_train=500, num_val=400)
  space = SearchSpace(hierarchies=2, dags_per_hierarchy=3, nodes=8, width=0.25)
  graph = metagraph.init(space, jax.random.key(seed), init_weight=init_weight)
  results, sizes = [], []
  for t in range(num):
    masks = metagraph.sample(graph, jax.random.key(seed * 100003 + 1 + t))
    spec = arch_lib.from_masks(
        space, graph.ops, masks, num_classes=ds.num_classes
    )
    sizes.append((spec.num_nodes, spec.num_edges))
    results.append(
        train_candidate(
            spec,
            split.x_train,
            split.y_train,
            split.x_val,
            split.y_val,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed * 1000 + t,
        )
    )
  mean = lambda k: float(np.mean([r[k] for r in results]))  # noqa: E731
  return {
      "backend": "torch-eager-cpu",
      "torch": torch.__version__,
      "threads": torch.get_num_threads(),
      "candidates": num,
      "epochs": epochs,
      "batch_size": batch_size,
      "init_weight": init_weight,
      "seconds_per_candidate": round(mean("seconds"), 4),
      "train_seconds_per_candidate": round(mean("train_seconds"), 4),
      "eval_seconds_per_candidate": round(mean("eval_seconds"), 4),
      "mean_accuracy": round(mean("accuracy"), 4),
      "seconds": [round(r["seconds"], 4) for r in results],
      "accuracy": [r["accuracy"] for r in results],
      "nodes_edges": sizes,
  }


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Command line: ``--check`` and/or ``--time N``."""
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument(
      "--check",
      action="store_true",
      help="assert the torch network matches ExactNet",
  )
  p.add_argument(
      "--time",
      type=int,
      default=0,
      metavar="N",
      help="train N sampled candidates and print one JSON line",
  )
  p.add_argument(
      "--threads",
      type=int,
      default=0,
      help="torch.set_num_threads (0: torch's default)",
  )
  p.add_argument("--seed", type=int, default=0)
  p.add_argument(
      "--init_weight",
      type=float,
      default=0.5,
      help="edge probability of the sampled candidates",
  )
  p.add_argument("--epochs", type=int, default=10)
  args = p.parse_args(argv)
  if not args.check and args.time < 1:
    p.error("give --check and/or --time N")
  if args.threads:
    torch.set_num_threads(args.threads)
  if args.check:
    worst = check()
    print(
        "check passed; max abs diff "
        + json.dumps({k: float(f"{v:.3g}") for k, v in worst.items()})
    )
  if args.time:
    print(
        json.dumps(
            time_candidates(
                args.time,
                seed=args.seed,
                init_weight=args.init_weight,
                epochs=args.epochs,
            )
        )
    )
  return 0


if __name__ == "__main__":
  sys.exit(main())
