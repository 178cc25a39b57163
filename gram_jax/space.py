"""GRAM search-space configuration: hierarchies of parallel complete DAGs.

The space is a frozen, hashable dataclass so it can be a static field of a
pytree (`MetaGraph`) and a static argument of jitted functions. Every field is
checked on construction and a bad value raises one `SpaceError` line naming the
field and what is allowed [SN §3.2, §4.1; ALGORITHMS.md 1.1].

Op names follow the grammar ``conv{k}x{k}_{channels}`` (a k×k convolution,
stride 1, SAME padding, followed by BatchNorm and ELU). Stem layers may add a
stride: ``conv3x3_32/2``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Optional, Tuple

from gram_jax.errors import GramJaxError

# The paper's op table [SN §3.2]: 1x1 conv with 32/64/128 filters, 3x3 conv
# with 32/64 filters; each conv -> BN -> ELU.
PAPER_OPS: Tuple[str, ...] = (
    "conv1x1_32",
    "conv1x1_64",
    "conv1x1_128",
    "conv3x3_32",
    "conv3x3_64",
)

AGGREGATES = ("sum", "concat")
# Which nodes feed a DAG's output: every live node, or only the sinks (live
# nodes that feed no other node; AutoShrink's "leaves").
DAG_OUTPUTS = ("all", "sinks")
POOLS = ("max", "avg")

_OP_RE = re.compile(r"^conv(\d+)x(\d+)_(\d+)(?:/(\d+))?$")


class SpaceError(GramJaxError):
  """A search-space field has a value that is not allowed."""


@dataclasses.dataclass(frozen=True)
class Op:
  """A parsed convolution op: kernel size, base channels and stride."""

  kernel: int
  channels: int
  stride: int = 1


def parse_op(
    name: str, *, field: str = "ops", allow_stride: bool = False
) -> Op:
  """Parses ``conv{k}x{k}_{c}`` (optionally ``/{stride}``) into an `Op`."""
  m = _OP_RE.match(name) if isinstance(name, str) else None
  if m is None or m.group(1) != m.group(2):
    raise SpaceError(
        f"{field}: unknown op {name!r}; allowed: names like 'conv3x3_32'"
        " (square kernel k, channels"
        f" c){' with optional /stride' if allow_stride else ''}, e.g. the"
        f" paper's {', '.join(PAPER_OPS)}"
    )
  k, c, s = int(m.group(1)), int(m.group(3)), int(m.group(4) or 1)
  if s != 1 and not allow_stride:
    raise SpaceError(
        f"{field}: op {name!r} has a stride; strides are only "
        "allowed in the stem (DAG nodes keep resolution)"
    )
  if k < 1 or k % 2 == 0 or c < 1 or s < 1:
    raise SpaceError(
        f"{field}: op {name!r} is not allowed; allowed: an odd "
        "kernel >= 1, channels >= 1 and stride >= 1"
    )
  return Op(kernel=k, channels=c, stride=s)


def scale_channels(
    channels: int, width: float, max_filters: Optional[int] = None
) -> int:
  """Channel rounding rule: ``max(1, round(c * width))``, then the cap."""
  c = max(1, int(math.floor(channels * width + 0.5)))
  if max_filters is not None:
    c = min(c, max_filters)
  return c


@dataclasses.dataclass(frozen=True)
class SearchSpace:
  """A GRAM meta-graph layout.

  Attributes:
    hierarchies: h, the number of hierarchies, with a 2x2/2 pool between
      consecutive ones (h - 1 pools).
    dags_per_hierarchy: m, parallel complete DAGs per hierarchy; they share
      the hierarchy input and their outputs are concatenated on channels.
    nodes: n, nodes per DAG (>= 2). Node 0 applies its op to the DAG input.
    ops: the op table node ops are drawn from (frozen at meta-graph init).
    width: width multiplier applied to every op's and stem layer's channels.
    stem: conv layers (``conv3x3_32/2`` style) before the first hierarchy.
    aggregate: ``"sum"``: a node convolves the zero-padded sum of its inputs
      (DESIGN.md decision 4, O(n) per DAG); ``"concat"``: it convolves their
      channel concatenation (the AutoShrink reading). The DAG output
      aggregates its output nodes (`dag_output`) with the same rule.
    dag_output: which nodes feed the DAG output. ``"all"`` (default): every
      live node, so removing an edge can only remove nodes, channels and
      MACs, and the pruning profile is monotone. ``"sinks"``: only live
      nodes that feed no other node (AutoShrink's leaves); pruning an edge
      can then turn a wide node into a sink and widen the DAG output, so
      MACs may rise with the pruning level (measured: 2.5% of 0.05 steps,
      by up to 8%, on random quickstart-space meta-graphs).
    pool: pooling between hierarchies, ``"max"`` or ``"avg"`` (2x2, stride 2,
      SAME padding).
    max_filters: optional cap on any node's channels [SN §3.3].
    bn_momentum, bn_epsilon: BatchNorm settings (AutoShrink: 0.9, 1e-5).
  """

  hierarchies: int = 3
  dags_per_hierarchy: int = 3
  nodes: int = 30
  ops: Tuple[str, ...] = PAPER_OPS
  width: float = 1.0
  stem: Tuple[str, ...] = ()
  aggregate: str = "sum"
  dag_output: str = "all"
  pool: str = "max"
  max_filters: Optional[int] = None
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5

  def __post_init__(self):
    # Normalise list inputs (from JSON or ConfigDicts) to tuples: hashable.
    object.__setattr__(self, "ops", tuple(self.ops))
    object.__setattr__(self, "stem", tuple(self.stem))
    _check_int(self.hierarchies, "hierarchies", 1)
    _check_int(self.dags_per_hierarchy, "dags_per_hierarchy", 1)
    _check_int(self.nodes, "nodes", 2)
    if not self.ops:
      raise SpaceError(
          "ops: the op table is empty; allowed: a non-empty "
          f"list of op names, e.g. {list(PAPER_OPS)}"
      )
    for name in self.ops:
      parse_op(name, field="ops")
    if len(set(self.ops)) != len(self.ops):
      raise SpaceError(
          f"ops: duplicate op names in {list(self.ops)}; allowed: each op once"
      )
    for name in self.stem:
      parse_op(name, field="stem", allow_stride=True)
    if (
        isinstance(self.width, bool)
        or not isinstance(self.width, (int, float))
        or not math.isfinite(self.width)
        or self.width <= 0
    ):
      raise SpaceError(
          f"width: {self.width!r} is not allowed; allowed: a finite number > 0"
      )
    if self.aggregate not in AGGREGATES:
      raise SpaceError(
          f"aggregate: {self.aggregate!r} is not allowed; "
          f"allowed: {', '.join(AGGREGATES)}"
      )
    if self.dag_output not in DAG_OUTPUTS:
      raise SpaceError(
          f"dag_output: {self.dag_output!r} is not allowed; "
          f"allowed: {', '.join(DAG_OUTPUTS)}"
      )
    if self.pool not in POOLS:
      raise SpaceError(
          f"pool: {self.pool!r} is not allowed; allowed: {', '.join(POOLS)}"
      )
    if self.max_filters is not None:
      _check_int(self.max_filters, "max_filters", 1)
    if not 0.0 <= self.bn_momentum < 1.0:
      raise SpaceError(
          f"bn_momentum: {self.bn_momentum!r} is not allowed; "
          "allowed: 0 <= value < 1"
      )
    if not self.bn_epsilon > 0:
      raise SpaceError(
          f"bn_epsilon: {self.bn_epsilon!r} is not allowed; allowed: value > 0"
      )

  @property
  def num_dags(self) -> int:
    """K = h * m, the number of complete DAGs in the meta-graph."""
    return self.hierarchies * self.dags_per_hierarchy

  @property
  def num_ops(self) -> int:
    return len(self.ops)

  def op(self, index: int) -> Op:
    """The op at `index` of the table, with channels after width scaling."""
    op = parse_op(self.ops[index])
    return dataclasses.replace(
        op, channels=scale_channels(op.channels, self.width, self.max_filters)
    )

  def stem_layers(self) -> Tuple[Op, ...]:
    out = []
    for name in self.stem:
      op = parse_op(name, field="stem", allow_stride=True)
      out.append(
          dataclasses.replace(
              op, channels=scale_channels(op.channels, self.width)
          )
      )
    return tuple(out)

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["ops"], d["stem"] = list(self.ops), list(self.stem)
    return d

  @classmethod
  def from_dict(cls, d: dict, *, where: str = "space") -> "SearchSpace":
    if not isinstance(d, dict):
      raise SpaceError(f"{where}: expected an object of search-space fields")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
      raise SpaceError(
          f"{where}.{unknown[0]}: unknown field; allowed: "
          f"{', '.join(sorted(names))}"
      )
    return cls(**d)


def _check_int(value, field: str, minimum: int) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise SpaceError(
        f"{field}: {value!r} is not allowed; allowed: an integer >= {minimum}"
    )
