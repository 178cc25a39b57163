"""The Single-Path NAS macro-architecture: a MobileNetV2/MnasNet backbone.

ALGORITHMS.md 3.1 [SP: nas-search/supernet_macro.py]: a strided 3x3 stem, a
fixed MBConv k3 e1 block, five stages of searchable MBConv layers (4 each;
the first of a stage changes width and, except in stage 4, has stride 2), a
fixed MBConv k3 e6 block, then a 1x1 conv, global average pooling, dropout
and the classifier. `Macro` holds that plan with every number a field, so a
tiny variant for 8x8 digits is the same code with smaller numbers.

Stages are strings ``"<channels>x<layers>/<stride>"`` (``"24x4/2"``: 4
layers to 24 channels, the first with stride 2), which keeps configs flat.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import List, NamedTuple, Tuple

from gram_jax.errors import GramJaxError

# (k, e) of each column of a per-layer latency table, in the order of the
# published Pixel-1 model [SP: pixel1_runtime_model.json]: 0: k3e3, 1: k3e6,
# 2: k5e3, 3: k5e6.
CHOICES: Tuple[Tuple[int, int], ...] = ((3, 3), (3, 6), (5, 3), (5, 6))
CHOICE_NAMES = tuple(f"k{k}e{e}" for k, e in CHOICES)
SKIP = "skip"

IMAGENET_STAGES = ("24x4/2", "40x4/2", "80x4/2", "96x4/1", "192x4/2")

_STAGE = re.compile(r"^(\d+)x(\d+)/(\d+)$")


class SpaceError(GramJaxError):
  """A macro-architecture field is not allowed."""


class Stage(NamedTuple):
  channels: int
  layers: int
  stride: int


def parse_stage(text: str, where: str = "stages") -> Stage:
  m = _STAGE.match(str(text).strip())
  if (
      not m
      or int(m.group(1)) < 1
      or int(m.group(2)) < 1
      or int(m.group(3)) not in (1, 2)
  ):
    raise SpaceError(
        f"{where}: {text!r} is not allowed; allowed: "
        "'<channels>x<layers>/<stride>' with stride 1 or 2, "
        "e.g. '24x4/2'"
    )
  return Stage(int(m.group(1)), int(m.group(2)), int(m.group(3)))


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
  """MnasNet's channel rounding under a width (depth) multiplier.

  Width 1.0 leaves `filters` unchanged, as in the official code (which skips
  rounding when no multiplier is given) [SP: singlepath_supernet.py].
  """
  if width == 1.0:
    return int(filters)
  f = filters * width
  new = max(divisor, int(f + divisor / 2) // divisor * divisor)
  if new < 0.9 * f:
    new += divisor
  return int(new)


class SearchLayer(NamedTuple):
  """One searchable MBConv layer, resolved for a width multiplier."""

  index: int  # 0-based among the searchable layers
  stage: int
  cin: int
  cout: int
  stride: int
  first: bool  # first layer of its stage

  @property
  def can_skip(self) -> bool:
    # [SP: superkernel.py]: only stride-1 layers that are not the first of a
    # stage (the first changes the width; stage 4's first has stride 1 but
    # still may not skip).
    return self.stride == 1 and not self.first

  @property
  def residual(self) -> bool:
    return self.stride == 1 and self.cin == self.cout


class FixedBlock(NamedTuple):
  """A non-searchable MBConv block."""

  cin: int
  cout: int
  kernel: int
  expansion: int
  stride: int


@dataclasses.dataclass(frozen=True)
class Macro:
  """The backbone around the searchable layers.

  Attributes:
    width: width (depth) multiplier of every channel count except the head.
    stem_channels: 3x3 stem conv output channels (at width 1).
    stem_stride: stem stride (2 on ImageNet; 1 for 8x8 digits).
    first_channels: output of the fixed MBConv k3 e1 block.
    stages: the searchable stages, ``"<channels>x<layers>/<stride>"``.
    last_channels: output of the fixed MBConv k3 e6 block.
    head_channels: the 1x1 conv before pooling (not width-scaled, as the
      official code).
    dropout: dropout rate before the classifier.
    bn_momentum: BatchNorm momentum (TF convention).
    bn_epsilon: BatchNorm epsilon.
  """

  width: float = 1.0
  stem_channels: int = 32
  stem_stride: int = 2
  first_channels: int = 16
  stages: Tuple[str, ...] = IMAGENET_STAGES
  last_channels: int = 320
  head_channels: int = 1280
  dropout: float = 0.2
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3

  def __post_init__(self):
    object.__setattr__(self, "stages", tuple(self.stages))
    self.validate()

  def validate(self) -> None:
    w = self.width
    if (
        isinstance(w, bool)
        or not isinstance(w, (int, float))
        or not math.isfinite(w)
        or w <= 0
    ):
      raise SpaceError(f"width: {w!r} is not allowed; allowed: a number > 0")
    for name in (
        "stem_channels",
        "first_channels",
        "last_channels",
        "head_channels",
    ):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise SpaceError(
            f"{name}: {v!r} is not allowed; allowed: an integer >= 1"
        )
    if self.stem_stride not in (1, 2):
      raise SpaceError(
          f"stem_stride: {self.stem_stride!r} is not allowed; allowed: 1, 2"
      )
    if not self.stages:
      raise SpaceError("stages: empty; allowed: at least one stage")
    for i, s in enumerate(self.stages):
      parse_stage(s, f"stages[{i}]")
    if not 0.0 <= self.dropout < 1.0:
      raise SpaceError(
          f"dropout: {self.dropout!r} is not allowed; allowed: 0 <= dropout < 1"
      )
    if not 0.0 <= self.bn_momentum < 1.0:
      raise SpaceError(
          f"bn_momentum: {self.bn_momentum!r} is not allowed; "
          "allowed: 0 <= bn_momentum < 1"
      )
    if not self.bn_epsilon > 0:
      raise SpaceError(
          f"bn_epsilon: {self.bn_epsilon!r} is not allowed; allowed: > 0"
      )

  def channels(self, c: int) -> int:
    return round_filters(c, self.width)

  @property
  def stem(self) -> int:
    return self.channels(self.stem_channels)

  def first_block(self) -> FixedBlock:
    return FixedBlock(self.stem, self.channels(self.first_channels), 3, 1, 1)

  def layers(self) -> List[SearchLayer]:
    """The searchable layers in order."""
    out = []
    cin = self.channels(self.first_channels)
    for si, text in enumerate(self.stages):
      st = parse_stage(text)
      cout = self.channels(st.channels)
      for j in range(st.layers):
        out.append(
            SearchLayer(
                len(out), si, cin, cout, st.stride if j == 0 else 1, j == 0
            )
        )
        cin = cout
    return out

  def last_block(self) -> FixedBlock:
    cin = self.layers()[-1].cout
    return FixedBlock(cin, self.channels(self.last_channels), 3, 6, 1)

  def to_dict(self):
    d = dataclasses.asdict(self)
    d["stages"] = list(self.stages)
    return d

  @property
  def num_architectures(self) -> int:
    """Size of the search space: 4 choices, 5 where skipping is allowed."""
    n = 1
    for layer in self.layers():
      n *= 5 if layer.can_skip else 4
    return n
