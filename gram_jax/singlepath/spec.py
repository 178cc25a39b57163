"""Decoded Single-Path architectures: JSON spec, exact network, MACs.

`decode` turns the per-layer decisions ``[d_k, d_e3, d_e6]`` of a search
into a `SinglePathSpec` (ALGORITHMS.md 3.5): ``d_e3 = 0`` omits the layer
(it is not an identity block), otherwise ``k = 5 if d_k else 3`` and
``e = 6 if d_e6 else 3``.

The official ``convnet_encoder`` [SP: train-final/parse_netarch.py] writes
the expansion ratio from the kernel size instead of from ``d_e6``: its
``'3x3-6'`` becomes ``e3`` and its ``'5x5-3'`` becomes ``e6`` [SP-iss#8].
We decode from ``d_e6``; ``replicate_encoder_bug=True`` reproduces the
official mapping for parity checks.

`SinglePathNet(spec)` is the plain network (no masks, no thresholds):
stem, the kept MBConv blocks, head. `layers` / `count` give its analytic
MACs and parameters (conventions of `gram_jax.cost.macs`; a test checks
them against XLA's cost analysis of the compiled module).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, List, Sequence, Tuple

import flax.linen as nn
import numpy as np

from gram_jax.errors import GramJaxError
from gram_jax.shapes import Cost, Layer, conv_layer, dense_layer, same_out
from gram_jax.singlepath import superkernel as sk
from gram_jax.singlepath.space import Macro

FORMAT = "gram_jax.SinglePathSpec"
VERSION = 1


class SpecError(GramJaxError):
  """A Single-Path spec file or field is not allowed."""


@dataclasses.dataclass(frozen=True)
class Block:
  """One MBConv block of a decoded network."""

  name: str  # "block0", "layer<i>" (searchable, 1-based), "last_block"
  cin: int
  cout: int
  kernel: int
  expansion: int
  stride: int
  residual: bool


@dataclasses.dataclass(frozen=True)
class SinglePathSpec:
  """A decoded Single-Path network (hashable, JSON round trip)."""

  stem_channels: int
  stem_stride: int
  blocks: Tuple[Block, ...]
  head_channels: int
  num_classes: int
  dropout: float = 0.0
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  decisions: Tuple[str, ...] = ()  # per searchable layer, for the record

  def __post_init__(self):
    object.__setattr__(self, "blocks", tuple(self.blocks))
    object.__setattr__(self, "decisions", tuple(self.decisions))
    _validate(self, "spec")

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["blocks"] = [dataclasses.asdict(b) for b in self.blocks]
    d["decisions"] = list(self.decisions)
    return {"format": FORMAT, "version": VERSION, **d}

  @classmethod
  def from_dict(cls, d: Any, where: str = "spec") -> "SinglePathSpec":
    if not isinstance(d, dict):
      raise SpecError(f"{where}: expected a JSON object")
    if d.get("format") != FORMAT:
      raise SpecError(
          f"{where}.format: {d.get('format')!r} is not allowed; "
          f"allowed: {FORMAT!r}"
      )
    if d.get("version") != VERSION:
      raise SpecError(
          f"{where}.version: {d.get('version')!r} is not "
          f"allowed; allowed: {VERSION}"
      )
    fields = {f.name for f in dataclasses.fields(cls)}
    body = {k: v for k, v in d.items() if k not in ("format", "version")}
    unknown = sorted(set(body) - fields)
    if unknown:
      raise SpecError(
          f"{where}.{unknown[0]}: unknown field; allowed: "
          f"{', '.join(sorted(fields))}"
      )
    missing = sorted(
        f
        for f in (
            "stem_channels",
            "stem_stride",
            "blocks",
            "head_channels",
            "num_classes",
        )
        if f not in body
    )
    if missing:
      raise SpecError(f"{where}.{missing[0]}: missing")
    blocks = body.get("blocks")
    if not isinstance(blocks, list) or not blocks:
      raise SpecError(f"{where}.blocks: expected a non-empty list")
    bfields = {f.name for f in dataclasses.fields(Block)}
    parsed = []
    for i, b in enumerate(blocks):
      w = f"{where}.blocks[{i}]"
      if not isinstance(b, dict) or set(b) != bfields:
        raise SpecError(
            f"{w}: expected an object with the fields "
            f"{', '.join(sorted(bfields))}"
        )
      parsed.append(Block(**b))
    body["blocks"] = tuple(parsed)
    body["decisions"] = tuple(body.get("decisions", ()))
    try:
      return cls(**body)
    except TypeError as e:
      raise SpecError(f"{where}: {e}") from None

  def save(self, path: str) -> None:
    from gram_jax import io  # pylint: disable=import-outside-toplevel

    io.write_json_atomic(path, self.to_dict())

  @classmethod
  def load(cls, path: str) -> "SinglePathSpec":
    from gram_jax import io  # pylint: disable=import-outside-toplevel

    d = io.read_json(path, SpecError)
    return cls.from_dict(d, where=path)


def _int(v, where, lo=1):
  if isinstance(v, bool) or not isinstance(v, int) or v < lo:
    raise SpecError(
        f"{where}: {v!r} is not allowed; allowed: an integer >= {lo}"
    )


def _validate(s: SinglePathSpec, where: str) -> None:
  for name in ("stem_channels", "head_channels", "num_classes"):
    _int(getattr(s, name), f"{where}.{name}")
  if s.stem_stride not in (1, 2) or isinstance(s.stem_stride, bool):
    raise SpecError(
        f"{where}.stem_stride: {s.stem_stride!r} is not allowed; allowed: 1, 2"
    )
  for name, lo, hi in (("dropout", 0.0, 1.0), ("bn_momentum", 0.0, 1.0)):
    v = getattr(s, name)
    if (
        isinstance(v, bool)
        or not isinstance(v, (int, float))
        or not lo <= v < hi
    ):
      raise SpecError(
          f"{where}.{name}: {v!r} is not allowed; allowed: "
          f"{lo} <= {name} < {hi}"
      )
  if (
      isinstance(s.bn_epsilon, bool)
      or not isinstance(s.bn_epsilon, (int, float))
      or not s.bn_epsilon > 0
  ):
    raise SpecError(
        f"{where}.bn_epsilon: {s.bn_epsilon!r} is not allowed; allowed: > 0"
    )
  if not s.blocks:
    raise SpecError(f"{where}.blocks: empty; allowed: at least one block")
  cin = s.stem_channels
  names = set()
  for i, b in enumerate(s.blocks):
    w = f"{where}.blocks[{i}]"
    if not isinstance(b, Block):
      raise SpecError(f"{w}: expected a Block")
    if not isinstance(b.name, str) or not b.name or b.name in names:
      raise SpecError(
          f"{w}.name: {b.name!r} is not allowed; allowed: a "
          "unique non-empty string"
      )
    names.add(b.name)
    for f in ("cin", "cout", "expansion"):
      _int(getattr(b, f), f"{w}.{f}")
    if b.cin != cin:
      raise SpecError(
          f"{w}.cin: {b.cin} is not allowed; allowed: {cin} "
          "(the previous block's cout)"
      )
    if b.kernel not in (1, 3, 5, 7) or isinstance(b.kernel, bool):
      raise SpecError(
          f"{w}.kernel: {b.kernel!r} is not allowed; allowed: 1, 3, 5, 7"
      )
    if b.stride not in (1, 2) or isinstance(b.stride, bool):
      raise SpecError(f"{w}.stride: {b.stride!r} is not allowed; allowed: 1, 2")
    if not isinstance(b.residual, bool) or (
        b.residual and (b.stride != 1 or b.cin != b.cout)
    ):
      raise SpecError(
          f"{w}.residual: {b.residual!r} is not allowed; "
          "allowed: true only with stride 1 and cin == cout"
      )
    cin = b.cout
  if not all(isinstance(x, str) for x in s.decisions):
    raise SpecError(f"{where}.decisions: expected a list of strings")


def decode(
    decisions: Sequence[Sequence[float]],
    macro: Macro,
    num_classes: int,
    *,
    replicate_encoder_bug: bool = False,
) -> SinglePathSpec:
  """The network of per-layer decisions ``[d_k, d_e3, d_e6]`` (>0.5 = on).

  Args:
    decisions: ``[L, 3]`` raw indicator values of the L searchable layers.
    macro: the backbone they belong to.
    num_classes: classifier outputs.
    replicate_encoder_bug: map ``3x3-6 -> e3`` and ``5x5-3 -> e6`` as the
      official ``convnet_encoder`` does [SP-iss#8] (default: the correct
      mapping, the expansion from ``d_e6``).

  Returns:
    The `SinglePathSpec`.

  Raises:
    SpecError: wrong number of layers, or a skip where it is not allowed.
  """
  d = np.asarray(decisions, np.float32)
  layers = macro.layers()
  if d.shape != (len(layers), 3):
    raise SpecError(
        f"decisions: shape {d.shape} is not allowed; allowed: "
        f"({len(layers)}, 3) for this backbone"
    )
  on = d > 0.5
  first = macro.first_block()
  blocks = [
      Block(
          "block0",
          first.cin,
          first.cout,
          first.kernel,
          first.expansion,
          first.stride,
          False,
      )
  ]
  names = sk.describe(d)
  for ly, (d_k, d_e3, d_e6) in zip(layers, on):
    if not d_e3:
      if not ly.can_skip:
        raise SpecError(
            f"decisions[{ly.index}]: skip is not allowed for "
            f"layer {ly.index + 1} (stride {ly.stride}, first "
            f"of its stage: {ly.first})"
        )
      continue
    kernel = 5 if d_k else 3
    expansion = 6 if d_e6 else 3
    if replicate_encoder_bug:
      expansion = 6 if kernel == 5 else 3
    blocks.append(
        Block(
            f"layer{ly.index + 1}",
            ly.cin,
            ly.cout,
            kernel,
            expansion,
            ly.stride,
            ly.residual,
        )
    )
  last = macro.last_block()
  blocks.append(
      Block(
          "last_block",
          last.cin,
          last.cout,
          last.kernel,
          last.expansion,
          last.stride,
          False,
      )
  )
  return SinglePathSpec(
      stem_channels=macro.stem,
      stem_stride=macro.stem_stride,
      blocks=tuple(blocks),
      head_channels=macro.head_channels,
      num_classes=num_classes,
      dropout=macro.dropout,
      bn_momentum=macro.bn_momentum,
      bn_epsilon=macro.bn_epsilon,
      decisions=tuple(names),
  )


def uniform_decisions(macro: Macro, choice: str) -> np.ndarray:
  """``[L, 3]`` decisions putting every layer at `choice` ("k5e6", ...)."""
  k = {"k3": 0.0, "k5": 1.0}[choice[:2]]
  e = {"e3": 0.0, "e6": 1.0}[choice[2:]]
  return np.tile(
      np.asarray([[k, 1.0, e]], np.float32), (len(macro.layers()), 1)
  )


class SinglePathNet(nn.Module):
  """The exact decoded network of a `SinglePathSpec` (NHWC in, logits out).

  Variable names follow the supernet's (``stem``, ``block0``,
  ``layer<i>``, ``last_block``, ``head_conv``, ``classifier``).
  """

  spec: SinglePathSpec

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    s = self.spec
    bn = dict(bn_momentum=s.bn_momentum, bn_epsilon=s.bn_epsilon)
    x = sk.ConvBN(s.stem_channels, 3, s.stem_stride, name="stem", **bn)(
        x, train=train
    )
    for b in s.blocks:
      x = sk.MBConv(
          b.cout, b.kernel, b.expansion, b.stride, b.residual, name=b.name, **bn
      )(x, train=train)
    return sk.head(
        x,
        num_classes=s.num_classes,
        channels=s.head_channels,
        dropout=s.dropout,
        train=train,
        bn=bn,
    )


# --- analytic cost ------------------------------------------------------------


ConvCost = Layer  # one record for every analytic count (gram_jax.shapes)


def _conv(name, hw, cin, cout, kernel, stride, depthwise, aware) -> ConvCost:
  return conv_layer(
      name,
      hw,
      cin,
      cout,
      kernel,
      stride,
      groups=cin if depthwise else 1,
      padding_aware=aware,
  )


def block_layers(
    b: Block, hw: Tuple[int, int], *, padding_aware: bool = False
) -> List[ConvCost]:
  """The convs of one MBConv block at input resolution `hw`."""
  out = []
  c = b.cin * b.expansion
  if b.expansion != 1:
    out.append(
        _conv(f"{b.name}/expand", hw, b.cin, c, 1, 1, False, padding_aware)
    )
  out.append(
      _conv(
          f"{b.name}/depthwise",
          hw,
          c,
          c,
          b.kernel,
          b.stride,
          True,
          padding_aware,
      )
  )
  hw2 = (same_out(hw[0], b.stride), same_out(hw[1], b.stride))
  out.append(
      _conv(f"{b.name}/project", hw2, c, b.cout, 1, 1, False, padding_aware)
  )
  return out


def layers(
    spec: SinglePathSpec,
    input_shape: Sequence[int],
    *,
    padding_aware: bool = False,
) -> List[ConvCost]:
  """Every conv and dense layer of `SinglePathNet(spec)` with its cost.

  Args:
    spec: the network.
    input_shape: ``(H, W, C)`` of one image.
    padding_aware: count only taps inside the input (XLA's convention).
  """
  if len(input_shape) != 3 or not all(
      isinstance(v, (int, np.integer)) and v > 0 for v in input_shape
  ):
    raise SpecError(
        f"input_shape: {tuple(input_shape)!r} is not allowed; "
        "allowed: (H, W, C) positive integers"
    )
  h, w, c = (int(v) for v in input_shape)
  out = [
      _conv(
          "stem",
          (h, w),
          c,
          spec.stem_channels,
          3,
          spec.stem_stride,
          False,
          padding_aware,
      )
  ]
  hw = (same_out(h, spec.stem_stride), same_out(w, spec.stem_stride))
  for b in spec.blocks:
    out += block_layers(b, hw, padding_aware=padding_aware)
    hw = (same_out(hw[0], b.stride), same_out(hw[1], b.stride))
  last = spec.blocks[-1].cout
  out.append(
      _conv(
          "head_conv", hw, last, spec.head_channels, 1, 1, False, padding_aware
      )
  )
  out.append(dense_layer("classifier", spec.head_channels, spec.num_classes))
  return out


def count(
    spec: SinglePathSpec,
    input_shape: Sequence[int],
    *,
    padding_aware: bool = False,
) -> Cost:
  """Total MACs and trainable parameters of `SinglePathNet(spec)`."""
  ls = layers(spec, input_shape, padding_aware=padding_aware)
  return Cost(macs=sum(l.macs for l in ls), params=sum(l.params for l in ls))


# --- weights from the supernet -----------------------------------------------


def inherit_variables(supernet_variables, spec: SinglePathSpec):
  """`SinglePathNet(spec)` variables sliced from the supernet's.

  A kept searchable layer takes the first ``e * C_in`` channels of the
  expand conv and its BN, the centre 3x3 (k3) or the whole 5x5 of those
  channels of the superkernel, their depthwise BN, and the matching input
  rows of the project conv; every other layer is copied. With
  ``exact_masks=True`` the supernet at its hard decisions computes exactly
  the decoded network with these variables (tested); with the official
  semantics the masked channels' ``ReLU(beta)`` is dropped.
  """
  params = supernet_variables["params"]
  stats = supernet_variables.get("batch_stats", {})
  out_p, out_s = {}, {}
  keep = {b.name: b for b in spec.blocks}
  for name in params:
    if name.startswith("layer") and name not in keep:
      continue  # a skipped layer
    b = keep.get(name)
    if b is None or not name.startswith("layer"):
      out_p[name] = params[name]
      if name in stats:
        out_s[name] = stats[name]
      continue
    c = b.expansion * b.cin
    p, s = params[name], stats[name]
    w = p["depthwise_kernel"][..., :c]
    if b.kernel == 3:
      w = w[1:4, 1:4]
    cut = functools.partial(_first_channels, c=c)
    out_p[name] = {
        "expand": {
            "conv": {"kernel": p["expand"]["conv"]["kernel"][..., :c]},
            "bn": cut(p["expand"]["bn"]),
        },
        "depthwise": {"kernel": w},
        "depthwise_bn": cut(p["depthwise_bn"]),
        "project": {
            "conv": {"kernel": p["project"]["conv"]["kernel"][:, :, :c, :]},
            "bn": p["project"]["bn"],
        },
    }
    out_s[name] = {
        "expand": {"bn": cut(s["expand"]["bn"])},
        "depthwise_bn": cut(s["depthwise_bn"]),
        "project": s["project"],
    }
  return {"params": out_p, "batch_stats": out_s}


def _first_channels(tree, c):
  return {k: v[..., :c] for k, v in tree.items()}
