"""FBNet-A/B/C and FBNet-96-0.35-1 [Wu et al. 2019, arXiv:1812.03443].

The searched architectures as released by the authors in
facebookresearch/mobile-vision (``mobile_cv/arch/fbnet_v2/
fbnet_modeldef_cls_fbnet.py``: ``fbnet_a``, ``fbnet_b``, ``fbnet_c``,
``fbnet_96``), written out here block by block. ``fbnet_96`` is
FBNet-96-0.35-1: its channels are already scaled (an independent block
list of "FBNet-96-0.35-1", input 96 and channel scaling 0.35, in a
public FBNet re-implementation's model definitions has the same kernels,
expansions and strides once its identity skips are dropped).

Block semantics follow mobile-vision's ``IRFBlock`` (see `mobile`): ReLU
activations; the 1x1 expansion is omitted when the expansion factor is 1;
``_g2`` blocks (FBNet-A) use 2 groups in the 1x1 convs and a channel
shuffle; an identity ``skip`` is no layer. The convs of the released
definitions carry a bias before BatchNorm; it is redundant with BN's own
bias and left out here (``bias`` adds < 1% parameters there). Each
network ends with a 1x1 conv (1504 for A, 1984 for B and C, 1416 for
FBNet-96), average pooling and the classifier.

Published figures (FBNet paper, Tables 2 and 3), 1000 classes:

  =============== ======= ====== ===========================================
  model           MACs    params ours (`fbnet_cost`, see tests)
  =============== ======= ====== ===========================================
  FBNet-A (224)   249M    4.3M   244.5M (-1.8%), 4.30M
  FBNet-B (224)   295M    4.5M   291.0M (-1.4%), 4.80M (+6.7%, see below)
  FBNet-C (224)   375M    5.5M   378.1M (+0.8%), 5.57M (+1.3%)
  FBNet-96-0.35-1 12.9M   --     12.80M (-0.8%), 1.85M
  =============== ======= ====== ===========================================

FBNet-B's parameters do not reproduce: the released block list gives
4.80M (4.86M with the paper's always-present expansion) against the
published 4.5M; its MACs do. The paper gives no parameter count for
FBNet-96-0.35-1. With the paper's original block (expansion conv present
even at expansion 1, as in maskrcnn-benchmark's first FBNet builder) the
MACs are 249.9M / 306.2M / 385.0M / 12.94M: A and FBNet-96 then match
better, B and C worse; the released convention fits all four within 2%.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple, Union

from gram_jax.errors import GramJaxError
from gram_jax.models import mobile
from gram_jax.models.mobile import BlockDef
from gram_jax.shapes import Cost

# (op, kernel, expansion, channels, stride[, groups]) in execution order;
# "skip" entries are the searched identity layers (kept to show the search
# result; they add nothing).
_A = [
    ("skip", 0, 1, 16, 1),
    ("ir", 3, 3, 24, 2),
    ("ir", 3, 1, 24, 1),
    ("skip", 0, 1, 24, 1),
    ("skip", 0, 1, 24, 1),
    ("ir", 5, 6, 32, 2),
    ("ir", 3, 3, 32, 1),
    ("ir", 5, 1, 32, 1),
    ("ir", 3, 3, 32, 1),
    ("ir", 5, 6, 64, 2),
    ("ir", 5, 3, 64, 1),
    ("ir", 5, 1, 64, 1, 2),
    ("ir", 5, 6, 64, 1),
    ("ir", 3, 6, 112, 1),
    ("ir", 5, 1, 112, 1, 2),
    ("ir", 5, 3, 112, 1),
    ("ir", 3, 1, 112, 1, 2),
    ("ir", 5, 6, 184, 2),
    ("ir", 5, 6, 184, 1),
    ("ir", 5, 3, 184, 1),
    ("ir", 5, 6, 184, 1),
    ("ir", 5, 6, 352, 1),
]
_B = [
    ("ir", 3, 1, 16, 1),
    ("ir", 3, 6, 24, 2),
    ("ir", 5, 1, 24, 1),
    ("ir", 3, 1, 24, 1),
    ("ir", 3, 1, 24, 1),
    ("ir", 5, 6, 32, 2),
    ("ir", 5, 3, 32, 1),
    ("ir", 3, 6, 32, 1),
    ("ir", 5, 6, 32, 1),
    ("ir", 5, 6, 64, 2),
    ("ir", 5, 6, 64, 1),
    ("skip", 0, 1, 64, 1),
    ("ir", 5, 3, 64, 1),
    ("ir", 5, 6, 112, 1),
    ("ir", 3, 1, 112, 1),
    ("ir", 5, 1, 112, 1),
    ("ir", 5, 3, 112, 1),
    ("ir", 5, 6, 184, 2),
    ("ir", 5, 1, 184, 1),
    ("ir", 5, 6, 184, 1),
    ("ir", 5, 6, 184, 1),
    ("ir", 3, 6, 352, 1),
]
_C = [
    ("ir", 3, 1, 16, 1),
    ("ir", 3, 6, 24, 2),
    ("skip", 0, 1, 24, 1),
    ("ir", 3, 1, 24, 1),
    ("ir", 3, 1, 24, 1),
    ("ir", 5, 6, 32, 2),
    ("ir", 5, 3, 32, 1),
    ("ir", 5, 6, 32, 1),
    ("ir", 3, 6, 32, 1),
    ("ir", 5, 6, 64, 2),
    ("ir", 5, 3, 64, 1),
    ("ir", 5, 6, 64, 1),
    ("ir", 5, 6, 64, 1),
    ("ir", 5, 6, 112, 1),
    ("ir", 5, 6, 112, 1),
    ("ir", 5, 6, 112, 1),
    ("ir", 5, 3, 112, 1),
    ("ir", 5, 6, 184, 2),
    ("ir", 5, 6, 184, 1),
    ("ir", 5, 6, 184, 1),
    ("ir", 5, 6, 184, 1),
    ("ir", 3, 6, 352, 1),
]
_96 = [
    ("ir", 3, 1, 8, 1),
    ("ir", 3, 6, 16, 2),
    ("ir", 3, 6, 16, 1),
    ("ir", 5, 6, 16, 2),
    ("ir", 5, 6, 16, 1),
    ("ir", 5, 6, 24, 2),
    ("ir", 3, 6, 40, 1),
    ("ir", 5, 6, 72, 2),
    ("ir", 5, 6, 72, 1),
    ("ir", 5, 6, 128, 1),
]


# name -> (stem channels, blocks, last channels, published input size,
#          published (MACs, params or None))
ARCHS: Dict[str, Tuple[int, List[BlockDef], int, int, Tuple]] = {
    "fbnet_a": (16, [BlockDef(*b) for b in _A], 1504, 224, (249e6, 4.3e6)),
    "fbnet_b": (16, [BlockDef(*b) for b in _B], 1984, 224, (295e6, 4.5e6)),
    "fbnet_c": (16, [BlockDef(*b) for b in _C], 1984, 224, (375e6, 5.5e6)),
    "fbnet_96_035_1": (
        8,
        [BlockDef(*b) for b in _96],
        1416,
        96,
        (12.9e6, None),
    ),
}


def _check_name(name: str) -> None:
  if name not in ARCHS:
    raise GramJaxError(
        f"model: {name!r} is not an FBNet; allowed: {', '.join(ARCHS)}"
    )


def fbnet_spec(name: str, width: float = 1.0) -> mobile.MobileSpec:
  """The resolved FBNet `name` (see `ARCHS`) at a width multiplier.

  Every channel count, the last conv's included, is ``make_divisible(c *
  width)`` (mobile-vision's ``width_ratio``); ``width=1`` is the published
  network. BatchNorm uses PyTorch's defaults (momentum 0.1, i.e. 0.9 in the
  TF convention, epsilon 1e-5), as the released models.
  """
  _check_name(name)
  stem, defs, last, _, _ = ARCHS[name]
  return mobile.resolve(
      stem,
      defs,
      last,
      width,
      activation="relu",
      bn_momentum=0.9,
      bn_epsilon=1e-5,
  )


def fbnet(
    name: str,
    *,
    num_classes: int = 1000,
    width: float = 1.0,
    dropout: float = 0.0,
) -> mobile.MobileNet:
  """The Flax module of FBNet `name`.

  Examples:
    >>> net = fbnet("fbnet_96_035_1", num_classes=10)
    >>> x = jnp.zeros((1, 96, 96, 3))
    >>> net.apply(net.init(jax.random.key(0), x), x).shape
    (1, 10)
  """
  return mobile.MobileNet(
      fbnet_spec(name, width), num_classes=num_classes, dropout=dropout
  )


def fbnet_layers(
    name: str,
    input_size: Union[int, Sequence[int]] = None,
    num_classes: int = 1000,
    *,
    width: float = 1.0,
    in_channels: int = 3,
    padding_aware: bool = False,
) -> List[mobile.Layer]:
  """Every conv and dense layer with its cost (input: the published size
  when `input_size` is None)."""
  _check_name(name)
  size = ARCHS[name][3] if input_size is None else input_size
  return mobile.layers(
      fbnet_spec(name, width),
      size,
      num_classes,
      in_channels=in_channels,
      padding_aware=padding_aware,
  )


def fbnet_cost(
    name: str,
    input_size: Union[int, Sequence[int]] = None,
    num_classes: int = 1000,
    *,
    width: float = 1.0,
    in_channels: int = 3,
    padding_aware: bool = False,
) -> Cost:
  """Total MACs and parameters of FBNet `name` (see `fbnet_layers`).

  Examples:
    >>> round(fbnet_cost("fbnet_a").macs / 1e6, 1)
    244.5
  """
  ls = fbnet_layers(
      name,
      input_size,
      num_classes,
      width=width,
      in_channels=in_channels,
      padding_aware=padding_aware,
  )
  return Cost(macs=sum(l.macs for l in ls), params=sum(l.params for l in ls))
