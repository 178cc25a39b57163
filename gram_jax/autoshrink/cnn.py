"""The AutoShrink CNN cell: masked supernet, exact network, MACs and params.

One cell topology (an upper-triangular edge mask ``bool[n, n]``, node 0 the
input) with frozen node ops is stacked into every cell of the network
(ALGORITHMS.md 2.1, 2.3; [AS: searching/cnn/util_concat.py
`convert_mask_to_proto`]):

  * node 0 is the cell input, or ``MaxPool(s, s)`` in a cell that
    downsamples (the first cell of a stage with pool s > 1);
  * node j > 0 reachable from node 0 takes the channel CONCATENATION of its
    reachable predecessors and applies its op (``sep3x3``: depthwise 3x3 ->
    BN -> act -> pointwise 1x1 -> BN -> act; ``conv1x1``: conv -> BN -> act),
    no bias, F output channels;
  * the cell output is the concatenation of the leaves (reachable nodes with
    no outgoing edge); leaves are linear (no activation);
  * with ``use_residual`` the cell returns ``input + leaves`` with no
    activation after the add; if widths or resolutions differ the input goes
    through a strided 1x1 conv + BN (linear, no bias) first.

Two compilers of the same description share parameter names:

  * `MaskedNet` takes the mask as an array argument, so every candidate of a
    search (and every round) runs through ONE compiled program. A node that
    is not live outputs zeros, channels of absent predecessors are zero
    blocks, and each cell output is compacted (live channels first), so the
    network equals the exact one with the supernet weights sliced by
    `to_exact_variables`.
  * `ExactCellNet` builds only the live nodes of a fixed (host) mask at their
    exact widths: for final training, export and the MACs tests.

MACs and parameters follow the official counters [AS: api/network/tflayers]:
conv ``H_in W_in k^2 C_in C_out / s^2``, separable ``H W 9 C_in + H W C_in
C_out``, residual projection ``H_out W_out C_in C_out``, dense ``C_in C_out``;
BN is not counted (``G.DISABLE_BATCHNORM_COUNT = True``), parameters are
kernels plus the classifier bias.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, NamedTuple, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gram_jax.autoshrink import strategy as strat
from gram_jax.errors import GramJaxError
from gram_jax.models import layers

SEP3X3, CONV1X1 = 0, 1
OPS = ("sep3x3", "conv1x1")
ACTIVATIONS = ("relu", "swish")
kernel_init = nn.initializers.glorot_normal()


def make_divisible(value: float, divisor: int = 4) -> int:
  """``max(round(value / divisor), 1) * divisor`` with Python's banker's
  round, as the official code (pitfall 7)."""
  return max(int(round(value / divisor)), 1) * divisor


def seed_group_ops(num_nodes: int, key: jax.Array) -> Tuple[int, ...]:
  """Frozen random op per node: ``[i % 2 for i in range(n)]`` permuted
  (the official `seed_group_ops`); node 0's op is ignored."""
  table = np.arange(num_nodes) % len(OPS)
  return tuple(int(o) for o in np.asarray(jax.random.permutation(key, table)))


@dataclasses.dataclass(frozen=True)
class NetConfig:
  """A network of stacked copies of one cell.

  Defaults are the official CIFAR-10 proxy network of the search
  (ALGORITHMS.md 2.1): stem 3x3/1 conv with 32 channels, three stages of
  one cell with ``scale=(1, 2, 4)`` (F = 16, 32, 64) and ``pool=(1, 2, 2)``,
  GAP, dense. `shrinkcnn.imagenet_config` gives the ImageNet ShrinkCNN.

  Attributes:
    ops: op index per node (`OPS`); its length is the number of nodes.
    base_filters: node width before scaling (official: 16).
    scales: per-stage width multiplier.
    pools: per-stage max-pool size (1: no downsampling) of the first cell.
    replicate: cells per stage.
    channel_scale: multiplies every stage's scale and the stem width.
    stem_channels: stem width before `channel_scale` (official: 32).
    stem_stride: stem stride (CIFAR proxy 1, ImageNet 2).
    head_channels: width of a 1x1 conv + BN + act before pooling (ImageNet:
      1280; 0 = none). Not scaled by `channel_scale`.
    activation: ``relu`` (ShrinkCNN-A) or ``swish`` (ShrinkCNN-B).
    use_residual: residual add around every cell.
    num_classes: classifier width.
    dropout: dropout rate before the classifier.
    bn_momentum, bn_epsilon: search 0.9 / 1e-5, ImageNet 0.999 / 1e-3.
  """

  ops: Tuple[int, ...] = (0, 1, 0, 1, 0, 1, 0, 1)
  base_filters: int = 16
  scales: Tuple[float, ...] = (1.0, 2.0, 4.0)
  pools: Tuple[int, ...] = (1, 2, 2)
  replicate: Tuple[int, ...] = (1, 1, 1)
  channel_scale: float = 1.0
  stem_channels: int = 32
  stem_stride: int = 1
  head_channels: int = 0
  activation: str = "relu"
  use_residual: bool = True
  num_classes: int = 10
  dropout: float = 0.0
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5

  def __post_init__(self):
    if len(self.ops) < 2 or any(o not in (SEP3X3, CONV1X1) for o in self.ops):
      raise GramJaxError(
          f"ops: {self.ops!r} is not allowed; allowed: at "
          "least 2 op indices, each 0 (sep3x3) or 1 (conv1x1)"
      )
    if not len(self.scales) == len(self.pools) == len(self.replicate) >= 1:
      raise GramJaxError(
          "scales, pools, replicate: must have the same "
          "length >= 1 (one entry per stage)"
      )
    if self.activation not in ACTIVATIONS:
      raise GramJaxError(
          f"activation: {self.activation!r} is not allowed; "
          f"allowed: {', '.join(ACTIVATIONS)}"
      )
    if any(r < 1 for r in self.replicate) or any(p < 1 for p in self.pools):
      raise GramJaxError("replicate, pools: entries must be >= 1")

  @property
  def num_nodes(self) -> int:
    return len(self.ops)

  @property
  def stem_width(self) -> int:
    return make_divisible(self.stem_channels * self.channel_scale)

  def stage_filters(self) -> List[int]:
    """F per stage: ``make_divisible(int(base * scale * channel_scale))``."""
    return [
        make_divisible(int(self.base_filters * s * self.channel_scale))
        for s in self.scales
    ]

  def cells(self) -> List[Tuple[str, int, int]]:
    """``(name, F, stride)`` of every cell in order."""
    out = []
    for s, (f, p, r) in enumerate(
        zip(self.stage_filters(), self.pools, self.replicate)
    ):
      for c in range(r):
        out.append((f"stage{s}_cell{c}", f, p if c == 0 else 1))
    return out


def _act(name: str):
  return nn.relu if name == "relu" else nn.swish


def _bn(cfg: NetConfig, train: bool, name: str):
  return nn.BatchNorm(
      use_running_average=not train,
      momentum=cfg.bn_momentum,
      epsilon=cfg.bn_epsilon,
      name=name,
  )


class Node(nn.Module):
  """One node's op without its final activation (the caller applies it:
  leaves are linear). `in_valid` zeroes the depthwise outputs of absent
  input channels in the masked net (BN would make them nonzero)."""

  cfg: NetConfig
  op: int
  features: int

  @nn.compact
  def __call__(self, x, *, train: bool, in_valid=None):
    cfg = self.cfg
    if self.op == SEP3X3:
      y = layers.DepthwiseConv(3, kernel_init=kernel_init, name="dw")(x)
      # The depthwise activation is the network's even for a linear node
      # [AS: utilities.py `separable_conv2d_v1`].
      y = _act(cfg.activation)(_bn(cfg, train, "dw_bn")(y))
      if in_valid is not None:
        y = y * in_valid
      y = nn.Conv(
          self.features,
          (1, 1),
          use_bias=False,
          kernel_init=kernel_init,
          name="pw",
      )(y)
      return _bn(cfg, train, "pw_bn")(y)
    y = nn.Conv(
        self.features,
        (1, 1),
        use_bias=False,
        kernel_init=kernel_init,
        name="conv",
    )(x)
    return _bn(cfg, train, "bn")(y)


class Projection(nn.Module):
  """Strided 1x1 conv + BN, linear, no bias (the residual's shortcut)."""

  cfg: NetConfig
  features: int
  stride: int

  @nn.compact
  def __call__(self, x, *, train: bool):
    y = nn.Conv(
        self.features,
        (1, 1),
        strides=(self.stride, self.stride),
        padding="SAME",
        use_bias=False,
        kernel_init=kernel_init,
        name="conv",
    )(x)
    return _bn(self.cfg, train, "bn")(y)


def _stem(cfg: NetConfig, x, train):
  x = nn.Conv(
      cfg.stem_width,
      (3, 3),
      strides=(cfg.stem_stride,) * 2,
      padding="SAME",
      use_bias=False,
      kernel_init=kernel_init,
      name="stem",
  )(x)
  return _act(cfg.activation)(_bn(cfg, train, "stem_bn")(x))


def _head(cfg: NetConfig, x, train):
  if cfg.head_channels:
    x = nn.Conv(
        cfg.head_channels,
        (1, 1),
        use_bias=False,
        kernel_init=kernel_init,
        name="head_conv",
    )(x)
    x = _act(cfg.activation)(_bn(cfg, train, "head_bn")(x))
  x = jnp.mean(x, axis=(1, 2))
  if cfg.dropout:
    x = nn.Dropout(cfg.dropout, deterministic=not train)(x)
  return nn.Dense(cfg.num_classes, kernel_init=kernel_init, name="logits")(x)


def _pool(x, stride):
  if stride == 1:
    return x
  return nn.max_pool(
      x, (stride, stride), strides=(stride, stride), padding="SAME"
  )


# --- exact network ------------------------------------------------------------------


class CellPlan(NamedTuple):
  """Static structure of one cell for a fixed mask."""

  nodes: Tuple[int, ...]  # live nodes > 0 in order
  inputs: Dict[int, Tuple[int, ...]]
  leaves: Tuple[int, ...]  # may include 0
  width_in: int
  width_out: int  # concat of leaves
  projection: bool


def plan(cfg: NetConfig, mask: np.ndarray) -> List[CellPlan]:
  """The exact structure of every cell of `cfg` with `mask`."""
  mask = strat.optimize_mask(np.asarray(mask, bool))
  n = cfg.num_nodes
  if mask.shape != (n, n):
    raise GramJaxError(
        f"mask: shape {mask.shape} does not match the {n} nodes of the config"
    )
  live = strat.reachable(mask)
  leaf = strat.leaves(mask)
  nodes = tuple(v for v in range(1, n) if live[v])
  inputs = {v: tuple(int(u) for u in np.nonzero(mask[:, v])[0]) for v in nodes}
  out, w = [], cfg.stem_width
  for _, f, stride in cfg.cells():
    width = {0: w}
    width.update({v: f for v in nodes})
    w_out = sum(width[v] for v in range(n) if leaf[v])
    proj = cfg.use_residual and (w_out != w or stride != 1)
    out.append(
        CellPlan(
            nodes,
            inputs,
            tuple(int(v) for v in np.nonzero(leaf)[0]),
            w,
            w_out,
            proj,
        )
    )
    w = w_out
  return out


class ExactCellNet(nn.Module):
  """The network of a fixed cell mask: live nodes at exact widths.

  Attributes:
    cfg: the network config.
    mask: the cell's edges, nested tuples of bools ``[n][n]`` (static).

  Call with ``x: f32[B, H, W, C]`` and ``train``; returns logits.
  """

  cfg: NetConfig
  mask: Tuple[Tuple[bool, ...], ...]

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    cfg = self.cfg
    act = _act(cfg.activation)
    x = _stem(cfg, x, train)
    for (name, f, stride), p in zip(
        cfg.cells(), plan(cfg, np.asarray(self.mask))
    ):
      feats = {0: _pool(x, stride)}
      for v in p.nodes:
        xs = [feats[u] for u in p.inputs[v]]
        inp = xs[0] if len(xs) == 1 else jnp.concatenate(xs, -1)
        y = Node(cfg, cfg.ops[v], f, name=f"{name}_node{v}")(inp, train=train)
        feats[v] = y if v in p.leaves else act(y)
      outs = [feats[v] for v in p.leaves]
      y = outs[0] if len(outs) == 1 else jnp.concatenate(outs, -1)
      if cfg.use_residual:
        if p.projection:
          x = Projection(cfg, p.width_out, stride, name=f"{name}_proj")(
              x, train=train
          )
        y = x + y
      x = y
    return _head(cfg, x, train)


def static_mask(mask) -> Tuple[Tuple[bool, ...], ...]:
  """A host mask as nested tuples (a hashable module field)."""
  return tuple(
      tuple(bool(b) for b in row)
      for row in strat.optimize_mask(np.asarray(mask, bool))
  )


# --- masked supernet ----------------------------------------------------------------


def _mask_parts(mask: jax.Array):
  """Effective edges, live nodes and leaves of a (traced) mask."""
  from gram_jax import metagraph as mg  # pylint: disable=import-outside-toplevel

  eff = mg.effective(mask)
  live = mg.live_nodes(eff)
  leaf = live & ~jnp.any(eff, axis=-1)
  return eff, live, leaf


def supernet_widths(cfg: NetConfig) -> List[Tuple[int, int]]:
  """``(width_in, width_out)`` of every cell's supernet tensors.

  The compacted output keeps at most ``max(width_in, (n-1) F)`` channels:
  node 0 is a leaf only when it has no edge (then it is the only leaf).
  """
  out, w = [], cfg.stem_width
  for _, f, _ in cfg.cells():
    w_out = max(w, (cfg.num_nodes - 1) * f)
    out.append((w, w_out))
    w = w_out
  return out


class MaskedNet(nn.Module):
  """All edges present, the cell mask given at run time.

  Call with ``x: f32[B, H, W, C]``, ``mask: bool[n, n]`` and ``train``.
  Equals ``ExactCellNet(cfg, mask)`` with the variables of
  `to_exact_variables`.
  """

  cfg: NetConfig

  @nn.compact
  def __call__(self, x, mask, *, train: bool = False):
    cfg = self.cfg
    n = cfg.num_nodes
    act = _act(cfg.activation)
    eff, live, leaf = _mask_parts(mask)
    e, lv, lf = (a.astype(x.dtype) for a in (eff, live, leaf))
    x = _stem(cfg, x, train)
    valid = jnp.ones((x.shape[-1],), x.dtype)  # real channels of x
    for (name, f, stride), (w_in, w_out) in zip(
        cfg.cells(), supernet_widths(cfg)
    ):
      feats, valids = [_pool(x, stride)], [valid]
      for v in range(1, n):
        inp = jnp.concatenate([e[u, v] * feats[u] for u in range(v)], -1)
        inv = jnp.concatenate([e[u, v] * valids[u] for u in range(v)], -1)
        y = Node(cfg, cfg.ops[v], f, name=f"{name}_node{v}")(
            inp, train=train, in_valid=inv
        )
        y = jnp.where(leaf[v], y, act(y))
        feats.append(lv[v] * y)
        valids.append(lv[v] * jnp.ones((f,), x.dtype))
      full = jnp.concatenate([lf[v] * feats[v] for v in range(n)], -1)
      fvalid = jnp.concatenate([lf[v] * valids[v] for v in range(n)], -1)
      # Compact: real channels first, in concat order, then zeros.
      order = jnp.argsort(1.0 - fvalid, stable=True)[:w_out]
      y, out_valid = full[..., order], fvalid[order]
      if cfg.use_residual:
        proj = (
            Projection(cfg, w_out, stride, name=f"{name}_proj")(x, train=train)
            * out_valid
        )
        if stride == 1:
          identity = jnp.sum(out_valid) == jnp.sum(valid)
          short = jnp.pad(x, ((0, 0),) * 3 + ((0, w_out - w_in),))
          proj = jnp.where(identity, short, proj)
        y = y + proj
      x, valid = y, out_valid
    return _head(cfg, x, train)


# --- fresh weights per candidate ----------------------------------------------------


def _fans(cfg: NetConfig, mask: jax.Array) -> Dict[Tuple[str, str], Any]:
  """Real ``(fan_in, fan_out)`` of every masked kernel for `mask` (traced):
  glorot-normal must use the candidate's real widths (GRAM pitfall 7)."""
  eff, _, leaf = _mask_parts(mask)
  e, lf = eff.astype(jnp.float32), leaf.astype(jnp.float32)
  n = cfg.num_nodes
  fans = {}
  w = jnp.float32(cfg.stem_width)
  for name, f, _ in cfg.cells():
    widths = jnp.concatenate([w[None], jnp.full((n - 1,), float(f))])
    for v in range(1, n):
      cin = jnp.sum(e[:v, v] * widths[:v])
      node = f"{name}_node{v}"
      if cfg.ops[v] == SEP3X3:
        fans[(node, "dw")] = (jnp.float32(9.0), 9.0 * cin)
        fans[(node, "pw")] = (cin, jnp.float32(f))
      else:
        fans[(node, "conv")] = (cin, jnp.float32(f))
    w_out = jnp.sum(lf * widths)
    fans[(f"{name}_proj", "conv")] = (w, w_out)
    w = w_out
  if cfg.head_channels:
    fans[("head_conv", None)] = (w, jnp.float32(cfg.head_channels))
  else:
    fans[("logits", None)] = (w, jnp.float32(cfg.num_classes))
  return fans


def init_candidate(
    net: MaskedNet, key: jax.Array, x: jax.Array, mask: jax.Array
) -> Dict[str, Any]:
  """Fresh variables for one candidate (jittable, vmappable over keys and
  masks).

  Kernels are glorot-normal (flax's truncated normal) with the candidate's
  REAL fan-in and fan-out, not the supernet's padded widths; BN scale 1,
  biases 0, BN statistics 0 and 1. All kernels come from one random draw
  and the network is never traced here (only its shapes), which keeps the
  compile time of this function small on the CPU.
  """
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), x, mask))
  fans = _fans(net.cfg, mask)

  def std(path, s):
    names = [p.key for p in path[1:-1]]  # drop "params"
    layer, sub = names[0], (names[1] if len(names) > 1 else None)
    if (layer, sub) in fans:
      fi, fo = fans[(layer, sub)]
    else:
      recept = float(np.prod(s.shape[:-2]))
      fi, fo = recept * s.shape[-2], recept * s.shape[-1]
    return jnp.sqrt(2.0 / jnp.maximum(fi + fo, 1.0)).astype(x.dtype)

  return layers.fresh_variables(shapes, key, x.dtype, std)


# --- supernet variables -> exact variables ------------------------------------------


def to_exact_variables(cfg: NetConfig, mask, variables) -> Dict[str, Any]:
  """The `ExactCellNet(cfg, mask)` variables carried by `MaskedNet`
  variables."""
  mask = strat.optimize_mask(np.asarray(mask, bool))
  sp, sb = variables["params"], variables["batch_stats"]
  params = {"stem": sp["stem"], "stem_bn": sp["stem_bn"]}
  stats = {"stem_bn": sb["stem_bn"]}
  for (name, f, _), p, (w_in, _) in zip(
      cfg.cells(), plan(cfg, mask), supernet_widths(cfg)
  ):
    for v in p.nodes:
      idx = np.concatenate([
          np.arange(p.width_in) if u == 0 else w_in + (u - 1) * f + np.arange(f)
          for u in p.inputs[v]
      ])
      node = f"{name}_node{v}"
      sn, bn = sp[node], sb[node]
      if cfg.ops[v] == SEP3X3:
        params[node] = {
            "dw": {"kernel": jnp.take(sn["dw"]["kernel"], idx, axis=3)},
            "dw_bn": {k: jnp.take(a, idx) for k, a in sn["dw_bn"].items()},
            "pw": {"kernel": jnp.take(sn["pw"]["kernel"], idx, axis=2)},
            "pw_bn": sn["pw_bn"],
        }
        stats[node] = {
            "dw_bn": {k: jnp.take(a, idx) for k, a in bn["dw_bn"].items()},
            "pw_bn": bn["pw_bn"],
        }
      else:
        params[node] = {
            "conv": {"kernel": jnp.take(sn["conv"]["kernel"], idx, axis=2)},
            "bn": sn["bn"],
        }
        stats[node] = bn
    if p.projection:
      proj = f"{name}_proj"
      k = sp[proj]["conv"]["kernel"][:, :, : p.width_in, : p.width_out]
      params[proj] = {
          "conv": {"kernel": k},
          "bn": {a: b[: p.width_out] for a, b in sp[proj]["bn"].items()},
      }
      stats[proj] = {
          "bn": {a: b[: p.width_out] for a, b in sb[proj]["bn"].items()}
      }
  w_last = plan(cfg, mask)[-1].width_out
  if cfg.head_channels:
    params["head_conv"] = {"kernel": sp["head_conv"]["kernel"][:, :, :w_last]}
    params["head_bn"], stats["head_bn"] = sp["head_bn"], sb["head_bn"]
    params["logits"] = sp["logits"]
  else:
    params["logits"] = {
        "kernel": sp["logits"]["kernel"][:w_last],
        "bias": sp["logits"]["bias"],
    }
  return {"params": params, "batch_stats": stats}


# --- analytic MACs and parameters ---------------------------------------------------


class Cost(NamedTuple):
  macs: int
  params: int


def count(cfg: NetConfig, mask, input_shape: Sequence[int]) -> Cost:
  """MACs and parameters of ``ExactCellNet(cfg, mask)`` at ``(H, W, C)`` by
  the official counters (module docstring; BN not counted)."""
  h, w, c = (int(d) for d in input_shape)
  s = cfg.stem_stride
  macs = h * w * 9 * c * cfg.stem_width // (s * s)
  params = 9 * c * cfg.stem_width
  h, w = -(-h // s), -(-w // s)
  for (_, f, stride), p in zip(cfg.cells(), plan(cfg, mask)):
    ho, wo = -(-h // stride), -(-w // stride)
    widths = {0: p.width_in}
    for v in p.nodes:
      cin = sum(widths.get(u, f) for u in p.inputs[v])
      widths[v] = f
      if cfg.ops[v] == SEP3X3:
        macs += ho * wo * 9 * cin + ho * wo * cin * f
        params += 9 * cin + cin * f
      else:
        macs += ho * wo * cin * f
        params += cin * f
    if p.projection:
      macs += ho * wo * p.width_in * p.width_out
      params += p.width_in * p.width_out
    h, w = ho, wo
  c = plan(cfg, mask)[-1].width_out
  if cfg.head_channels:
    macs += h * w * c * cfg.head_channels
    params += c * cfg.head_channels
    c = cfg.head_channels
  macs += c * cfg.num_classes
  params += (c + 1) * cfg.num_classes
  return Cost(int(macs), int(params))


def describe(cfg: NetConfig, mask) -> Dict[str, Any]:
  """A JSON description of the cell (ArchSpec-like)."""
  mask = strat.optimize_mask(np.asarray(mask, bool))
  p = plan(cfg, mask)[0]
  return {
      "format": "gram_jax.AutoShrinkCell",
      "version": 1,
      "num_nodes": cfg.num_nodes,
      "ops": [None] + [OPS[o] for o in cfg.ops[1:]],
      "edges": [[int(i), int(j)] for i, j in zip(*np.nonzero(mask))],
      "live_nodes": [0] + list(p.nodes),
      "leaves": list(p.leaves),
      "inputs": {str(v): list(p.inputs[v]) for v in p.nodes},
  }
