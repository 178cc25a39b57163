"""Baseline networks by name: ``--model mobilenet_v2 --width 0.35``.

A plain dict behind a `register` decorator (STYLE.md rule 8). Each entry
turns ``(width)`` into a resolved `mobile.MobileSpec`, from which `build`
makes the Flax module and `cost` the analytic MACs and parameters at an
input shape. `gram-jax train`, `gram-jax export` and `gram-jax compare`
look models up here.

Registered: ``mobilenet_v2`` (any width; published 0.35-1.4 at 96-224),
``fbnet_a``, ``fbnet_b``, ``fbnet_c``, ``fbnet_96_035_1`` (width 1 is the
published network) and ``mbconv_tiny``, a three-block smoke-test network
for tests and quick pipeline checks (not a published model).
"""

from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Sequence

import flax.linen as nn

from gram_jax.errors import GramJaxError
from gram_jax.models import fbnet as fbnet_lib
from gram_jax.models import mobile
from gram_jax.models import mobilenet_v2 as mbv2
from gram_jax.shapes import Cost


class ModelEntry(NamedTuple):
  name: str
  spec: Callable[[float], mobile.MobileSpec]
  resolution: int  # the published input size
  description: str


MODELS: Dict[str, ModelEntry] = {}


def register(name: str, *, resolution: int, description: str):
  """Decorator: registers ``spec(width) -> MobileSpec`` under `name`."""

  def wrap(fn):
    if name in MODELS:
      raise ValueError(f"model {name!r} is already registered")
    MODELS[name] = ModelEntry(name, fn, resolution, description)
    return fn

  return wrap


def get(name: str) -> ModelEntry:
  """The entry of `name`, or one GramJaxError line listing the names."""
  if name not in MODELS:
    raise GramJaxError(
        f"--model: {name!r} is not allowed; allowed: "
        f"{', '.join(sorted(MODELS))}"
    )
  return MODELS[name]


def spec(name: str, width: float = 1.0) -> mobile.MobileSpec:
  return get(name).spec(mobile.check_width(width))


def build(
    name: str, *, num_classes: int, width: float = 1.0, dropout: float = 0.0
) -> nn.Module:
  """The Flax module of model `name` (NHWC in, logits out).

  Examples:
    >>> net = build("mobilenet_v2", num_classes=10, width=0.35)
  """
  return mobile.MobileNet(
      spec(name, width), num_classes=num_classes, dropout=dropout
  )


def cost(
    name: str,
    input_shape: Sequence[int],
    *,
    num_classes: int,
    width: float = 1.0,
    padding_aware: bool = False,
) -> Cost:
  """MACs and parameters of model `name` at ``input_shape = (H, W, C)``."""
  if len(tuple(input_shape)) != 3:
    raise GramJaxError(
        f"input_shape: {tuple(input_shape)} is not allowed; allowed: (H, W, C)"
    )
  h, w, c = (int(d) for d in input_shape)
  return mobile.cost(
      spec(name, width),
      (h, w),
      num_classes,
      in_channels=c,
      padding_aware=padding_aware,
  )


@register(
    "mobilenet_v2",
    resolution=224,
    description="MobileNetV2 [Sandler et al. 2018], TF-slim layout",
)
def _mobilenet_v2(width):
  return mbv2.mobilenet_v2_spec(width)


for _name, (_, _, _, _size, _) in fbnet_lib.ARCHS.items():
  register(
      _name,
      resolution=_size,
      description=f"{_name} [Wu et al. 2019], mobile-vision block list",
  )(lambda width, _n=_name: fbnet_lib.fbnet_spec(_n, width))


@register(
    "mbconv_tiny",
    resolution=32,
    description="3-block smoke-test network (not a published model)",
)
def _mbconv_tiny(width):
  defs = [
      mobile.BlockDef("ir", 3, 1, 8, 1),
      mobile.BlockDef("ir", 3, 3, 16, 2),
      mobile.BlockDef("ir", 5, 3, 16, 1),
  ]
  return mobile.resolve(8, defs, 32, width, activation="relu6")
