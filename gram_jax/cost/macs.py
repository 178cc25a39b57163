"""Analytic MACs and parameter counts of an `ArchSpec`.

MACs are multiply-accumulates of the convolutions and the classifier, the
usual convention of mobile-NAS papers (BN, ELU, pooling, additions are not
counted). By default a k x k conv on an H x W output costs
``H * W * k^2 * C_in * C_out`` (padding taps included, as published figures
count them). ``padding_aware=True`` counts only taps that touch real input,
which is what XLA's cost analysis reports; a test checks that form against
XLA on compiled `ExactNet`s. Parameters are the trainable ones: conv kernels,
BN scale and bias, the dense kernel and bias.
"""

from __future__ import annotations

import math
from typing import List, Sequence

from gram_jax.arch import ArchSpec

# `Cost`, `Layer`, `same_out` and `valid_taps` live in the leaf
# `gram_jax.shapes`; they stay importable from here.
from gram_jax.shapes import Cost, Layer, conv_layer, dense_layer
from gram_jax.shapes import same_out, valid_taps

__all__ = [
    "Cost",
    "Layer",
    "accuracy_density",
    "count",
    "layers",
    "same_out",
    "valid_taps",
]


def _conv(name, hw, cin, cout, kernel, stride, padding_aware) -> Layer:
  return conv_layer(
      name, hw, cin, cout, kernel, stride, padding_aware=padding_aware
  )


def layers(
    spec: ArchSpec, input_shape: Sequence[int], *, padding_aware: bool = False
) -> List[Layer]:
  """Every conv and dense layer of `spec` with its MACs and parameters.

  Args:
    spec: the architecture.
    input_shape: ``(H, W, C)`` of one input image.
    padding_aware: count only taps inside the input (XLA's convention).
  """
  if len(input_shape) != 3 or not all(
      isinstance(s, int) and s > 0 for s in input_shape
  ):
    raise ValueError(
        f"input_shape: {tuple(input_shape)!r} is not allowed; "
        "allowed: (H, W, C) positive integers"
    )
  h, w, c = input_shape
  out: List[Layer] = []
  for i, conv in enumerate(spec.stem):
    out.append(
        _conv(
            f"stem{i}",
            (h, w),
            c,
            conv.channels,
            conv.kernel,
            conv.stride,
            padding_aware,
        )
    )
    h, w, c = same_out(h, conv.stride), same_out(w, conv.stride), conv.channels
  m = spec.dags_per_hierarchy
  for hi in range(spec.hierarchies):
    if hi > 0:
      h, w = same_out(h, 2), same_out(w, 2)
    cout_total = 0
    for j, dag in enumerate(spec.hierarchy(hi)):
      k = hi * m + j
      widths = {}
      for node in dag.nodes:
        if node.id == 0:
          cin = c
        else:
          ins = [widths[u] for u in node.inputs]
          cin = max(ins) if spec.aggregate == "sum" else sum(ins)
        widths[node.id] = node.channels
        out.append(
            _conv(
                f"dag{k}_node{node.id}",
                (h, w),
                cin,
                node.channels,
                node.kernel,
                1,
                padding_aware,
            )
        )
      outs = [widths[s] for s in spec.outputs(dag)]
      cout_total += max(outs) if spec.aggregate == "sum" else sum(outs)
    c = cout_total
  out.append(dense_layer("head", c, spec.num_classes))
  return out


def count(
    spec: ArchSpec, input_shape: Sequence[int], *, padding_aware: bool = False
) -> Cost:
  """Total MACs and trainable parameters of `spec` at `input_shape`."""
  ls = layers(spec, input_shape, padding_aware=padding_aware)
  return Cost(macs=sum(l.macs for l in ls), params=sum(l.params for l in ls))


def accuracy_density(top1_percent: float, macs: int) -> float:
  """Top-1 accuracy (%) per million MACs [SN Table 1]."""
  return top1_percent / (macs / 1e6) if macs else math.inf
