"""`ArchSpec`: the exact description of one derived network.

An `ArchSpec` lists only live nodes, with their real kernel size, channels and
inputs. It is frozen and hashable (a cache key for compiled steps), and goes
to and from JSON with validation: a malformed or hand-edited file raises one
`SpecError` line naming the offending field (``dags[2].nodes[3].inputs``),
never a traceback from deep inside. Loading a spec never executes code.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, Sequence, Tuple

import numpy as np

from gram_jax import space as space_lib
from gram_jax.errors import GramJaxError

FORMAT = "gram_jax.ArchSpec"
VERSION = 1


class SpecError(GramJaxError):
  """An ArchSpec (or its JSON) is malformed."""


@dataclasses.dataclass(frozen=True)
class Conv:
  """A stem conv layer: k x k, `channels` filters, `stride`; then BN, ELU."""

  kernel: int
  channels: int
  stride: int = 1


@dataclasses.dataclass(frozen=True)
class Node:
  """A live DAG node: ``ELU(BN(conv_k(aggregate(inputs))))``.

  `id` is the node's position in the complete DAG (kept so a spec can be
  mapped back onto the meta-graph and supernet). `inputs` are ids of live
  earlier nodes; node 0 has no inputs and reads the DAG input.
  """

  id: int
  kernel: int
  channels: int
  inputs: Tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class Dag:
  nodes: Tuple[Node, ...]

  @property
  def outputs(self) -> Tuple[int, ...]:
    """Sink ids: live nodes that feed no other node; they form the output."""
    used = {u for node in self.nodes for u in node.inputs}
    return tuple(node.id for node in self.nodes if node.id not in used)

  @property
  def num_edges(self) -> int:
    return sum(len(node.inputs) for node in self.nodes)


@dataclasses.dataclass(frozen=True)
class ArchSpec:
  """A network: stem, h hierarchies of m parallel DAGs, pools, GAP + dense.

  `dags` is hierarchy-major: DAG ``i * m + j`` is DAG j of hierarchy i.
  """

  hierarchies: int
  dags_per_hierarchy: int
  dags: Tuple[Dag, ...]
  num_classes: int
  aggregate: str = "sum"
  pool: str = "max"
  stem: Tuple[Conv, ...] = ()
  dag_output: str = "all"
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5

  def __post_init__(self):
    _validate(self)

  def hierarchy(self, i: int) -> Tuple[Dag, ...]:
    m = self.dags_per_hierarchy
    return self.dags[i * m : (i + 1) * m]

  def outputs(self, dag: Dag) -> Tuple[int, ...]:
    """Ids of the nodes of `dag` that feed its output (`dag_output`)."""
    if self.dag_output == "all":
      return tuple(node.id for node in dag.nodes)
    return dag.outputs

  @property
  def num_nodes(self) -> int:
    return sum(len(d.nodes) for d in self.dags)

  @property
  def num_edges(self) -> int:
    return sum(d.num_edges for d in self.dags)

  # --- JSON -----------------------------------------------------------------

  def to_dict(self) -> Dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "hierarchies": self.hierarchies,
        "dags_per_hierarchy": self.dags_per_hierarchy,
        "num_classes": self.num_classes,
        "aggregate": self.aggregate,
        "dag_output": self.dag_output,
        "pool": self.pool,
        "bn_momentum": self.bn_momentum,
        "bn_epsilon": self.bn_epsilon,
        "stem": [dataclasses.asdict(c) for c in self.stem],
        "dags": [
            {
                "nodes": [
                    {
                        "id": n.id,
                        "kernel": n.kernel,
                        "channels": n.channels,
                        "inputs": list(n.inputs),
                    }
                    for n in d.nodes
                ]
            }
            for d in self.dags
        ],
    }

  def to_json(self, indent: int = 1) -> str:
    return json.dumps(self.to_dict(), indent=indent)

  @classmethod
  def from_dict(cls, d: Any, *, where: str = "arch") -> "ArchSpec":
    return _from_dict(d, where)

  @classmethod
  def from_json(cls, text: str, *, where: str = "arch.json") -> "ArchSpec":
    try:
      d = json.loads(text)
    except json.JSONDecodeError as e:
      raise SpecError(
          f"{where}: not valid JSON ({e.msg} at line {e.lineno} "
          f"column {e.colno})"
      ) from None
    return _from_dict(d, where)

  def save(self, path: str) -> None:
    with open(path, "w") as f:
      f.write(self.to_json())

  @classmethod
  def load(cls, path: str) -> "ArchSpec":
    try:
      with open(path) as f:
        text = f.read()
    except OSError as e:
      raise SpecError(f"{path}: cannot read ({e.strerror})") from None
    return cls.from_json(text, where=path)


# --- construction from masks ----------------------------------------------------


def from_masks(
    space: space_lib.SearchSpace, ops: Any, masks: Any, *, num_classes: int
) -> ArchSpec:
  """The exact network of a sub-network of the meta-graph.

  Args:
    space: the search space.
    ops: ``int[K, n]`` node op indices (``MetaGraph.ops``).
    masks: ``bool[K, n, n]`` edges; edges out of non-live nodes are ignored.
    num_classes: classifier width.

  Returns:
    The `ArchSpec` holding only live nodes.
  """
  ops = np.asarray(ops)
  masks = np.asarray(masks, dtype=bool)
  k, n = space.num_dags, space.nodes
  if ops.shape != (k, n) or masks.shape != (k, n, n):
    raise SpecError(
        f"masks/ops: expected shapes {(k, n, n)} and {(k, n)} for "
        f"this space, got {masks.shape} and {ops.shape}"
    )
  dags = []
  for kk in range(k):
    live = np.zeros(n, dtype=bool)
    live[0] = True
    nodes = []
    for v in range(n):
      preds = tuple(int(u) for u in range(v) if masks[kk, u, v] and live[u])
      if v > 0:
        live[v] = bool(preds)
      if live[v]:
        op = space.op(int(ops[kk, v]))
        nodes.append(
            Node(id=v, kernel=op.kernel, channels=op.channels, inputs=preds)
        )
    dags.append(Dag(nodes=tuple(nodes)))
  stem = tuple(
      Conv(o.kernel, o.channels, o.stride) for o in space.stem_layers()
  )
  return ArchSpec(
      hierarchies=space.hierarchies,
      dags_per_hierarchy=space.dags_per_hierarchy,
      dags=tuple(dags),
      num_classes=num_classes,
      aggregate=space.aggregate,
      pool=space.pool,
      stem=stem,
      bn_momentum=space.bn_momentum,
      bn_epsilon=space.bn_epsilon,
      dag_output=space.dag_output,
  )


def encode_mask(mask: Any) -> str:
  """Hex string of a DAG's upper-triangle edge bits (row-major ``i < j``).

  The one edge encoding of candidates.jsonl (GRAM and random: one string
  per DAG) and of AutoShrink's shrink.jsonl; `decode_mask` inverts it.
  """
  mask = np.asarray(mask, bool)
  bits = mask[np.triu_indices(mask.shape[-1], 1)]
  return format(int("".join("1" if b else "0" for b in bits) or "0", 2), "x")


def decode_mask(text: str, n: int) -> np.ndarray:
  """``bool[n, n]``: the mask `encode_mask` wrote as `text`."""
  rows, cols = np.triu_indices(n, 1)
  mask = np.zeros((n, n), bool)
  if len(rows):
    bits = format(int(text, 16), f"0{len(rows)}b")[-len(rows) :]
    mask[rows, cols] = [b == "1" for b in bits]
  return mask


def upscale(spec: ArchSpec, factor: float, *, divisor: int = 1) -> ArchSpec:
  """Node-wise channel up-scaling [SN §3.3].

  Every DAG node's channels become ``max(divisor, round(c * factor /
  divisor) * divisor)``: round half up to the nearest multiple of `divisor`
  (1 = plain rounding; AutoShrink uses 4). The stem and head are unchanged.
  """
  if (
      not isinstance(factor, (int, float))
      or not np.isfinite(factor)
      or factor <= 0
  ):
    raise SpecError(
        f"factor: {factor!r} is not allowed; allowed: a finite number > 0"
    )
  if not isinstance(divisor, int) or divisor < 1:
    raise SpecError(
        f"divisor: {divisor!r} is not allowed; allowed: an integer >= 1"
    )

  def scale(c):
    return max(divisor, int(np.floor(c * factor / divisor + 0.5)) * divisor)

  dags = tuple(
      Dag(
          tuple(
              dataclasses.replace(n, channels=scale(n.channels))
              for n in d.nodes
          )
      )
      for d in spec.dags
  )
  return dataclasses.replace(spec, dags=dags)


# --- validation -----------------------------------------------------------------


def _validate(spec: ArchSpec) -> None:
  def pos_int(value, where, minimum=1):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < minimum
    ):
      raise SpecError(
          f"{where}: {value!r} is not allowed; allowed: an integer >= {minimum}"
      )

  pos_int(spec.hierarchies, "hierarchies")
  pos_int(spec.dags_per_hierarchy, "dags_per_hierarchy")
  pos_int(spec.num_classes, "num_classes")
  if spec.aggregate not in space_lib.AGGREGATES:
    raise SpecError(
        f"aggregate: {spec.aggregate!r} is not allowed; allowed: "
        f"{', '.join(space_lib.AGGREGATES)}"
    )
  if spec.dag_output not in space_lib.DAG_OUTPUTS:
    raise SpecError(
        f"dag_output: {spec.dag_output!r} is not allowed; "
        f"allowed: {', '.join(space_lib.DAG_OUTPUTS)}"
    )
  if spec.pool not in space_lib.POOLS:
    raise SpecError(
        f"pool: {spec.pool!r} is not allowed; allowed: "
        f"{', '.join(space_lib.POOLS)}"
    )
  for i, c in enumerate(spec.stem):
    if not isinstance(c, Conv):
      raise SpecError(f"stem[{i}]: expected a Conv")
    pos_int(c.kernel, f"stem[{i}].kernel")
    pos_int(c.channels, f"stem[{i}].channels")
    pos_int(c.stride, f"stem[{i}].stride")
  want = spec.hierarchies * spec.dags_per_hierarchy
  if len(spec.dags) != want:
    raise SpecError(
        "dags: expected hierarchies * dags_per_hierarchy = "
        f"{want} DAGs, got {len(spec.dags)}"
    )
  for k, dag in enumerate(spec.dags):
    where = f"dags[{k}]"
    if not isinstance(dag, Dag):
      raise SpecError(f"{where}: expected a Dag")
    if not dag.nodes:
      raise SpecError(f"{where}.nodes: a DAG needs at least node 0")
    seen = set()
    for i, node in enumerate(dag.nodes):
      w = f"{where}.nodes[{i}]"
      pos_int(node.id, f"{w}.id", minimum=0)
      pos_int(node.kernel, f"{w}.kernel")
      pos_int(node.channels, f"{w}.channels")
      if i == 0:
        if node.id != 0:
          raise SpecError(
              f"{w}.id: the first node must be node 0 (the one "
              f"reading the DAG input), got {node.id}"
          )
        if node.inputs:
          raise SpecError(
              f"{w}.inputs: node 0 reads the DAG input and must "
              f"have no inputs, got {list(node.inputs)}"
          )
      else:
        if node.id in seen:
          raise SpecError(f"{w}.id: duplicate node id {node.id}")
        if seen and node.id < max(seen):
          raise SpecError(
              f"{w}.id: nodes must be listed in increasing id "
              f"order, got {node.id} after {max(seen)}"
          )
        if not node.inputs:
          raise SpecError(
              f"{w}.inputs: node {node.id} has no inputs; only "
              "node 0 may (drop unreachable nodes)"
          )
        for u in node.inputs:
          if u not in seen:
            raise SpecError(
                f"{w}.inputs: node {u} is not an earlier node of "
                f"this DAG (known: {sorted(seen)})"
            )
        if len(set(node.inputs)) != len(node.inputs):
          raise SpecError(f"{w}.inputs: duplicate input in {list(node.inputs)}")
      seen.add(node.id)


_TOP_FIELDS = (
    "format",
    "version",
    "hierarchies",
    "dags_per_hierarchy",
    "num_classes",
    "aggregate",
    "dag_output",
    "pool",
    "bn_momentum",
    "bn_epsilon",
    "stem",
    "dags",
)


def _from_dict(d: Any, where: str) -> ArchSpec:
  def need(obj, key, types, w):
    if not isinstance(obj, dict) or key not in obj:
      raise SpecError(f"{w}: missing field {key!r}")
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, types):
      tname = (
          types.__name__
          if isinstance(types, type)
          else "/".join(t.__name__ for t in types)
      )
      raise SpecError(
          f"{w}.{key}: expected {tname}, got {type(v).__name__} {v!r}"[:200]
      )
    return v

  def int_list(v, w):
    if not isinstance(v, list) or not all(
        isinstance(x, int) and not isinstance(x, bool) for x in v
    ):
      raise SpecError(f"{w}: expected a list of integers, got {v!r}"[:200])
    return tuple(v)

  if not isinstance(d, dict):
    raise SpecError(f"{where}: expected a JSON object, got {type(d).__name__}")
  if d.get("format") != FORMAT:
    raise SpecError(
        f"{where}.format: expected {FORMAT!r}, got {d.get('format')!r}"
    )
  if d.get("version") != VERSION:
    raise SpecError(
        f"{where}.version: expected {VERSION}, got {d.get('version')!r}"
    )
  unknown = sorted(set(d) - set(_TOP_FIELDS))
  if unknown:
    raise SpecError(
        f"{where}.{unknown[0]}: unknown field; allowed: "
        f"{', '.join(_TOP_FIELDS)}"
    )
  stem = []
  for i, c in enumerate(need(d, "stem", list, where)):
    w = f"{where}.stem[{i}]"
    stem.append(
        Conv(
            kernel=need(c, "kernel", int, w),
            channels=need(c, "channels", int, w),
            stride=need(c, "stride", int, w),
        )
    )
  dags = []
  for k, dag in enumerate(need(d, "dags", list, where)):
    w = f"{where}.dags[{k}]"
    nodes = []
    for i, node in enumerate(need(dag, "nodes", list, w)):
      wn = f"{w}.nodes[{i}]"
      extra = (
          sorted(set(node) - {"id", "kernel", "channels", "inputs"})
          if isinstance(node, dict)
          else []
      )
      if extra:
        raise SpecError(
            f"{wn}.{extra[0]}: unknown field; allowed: id, "
            "kernel, channels, inputs"
        )
      nodes.append(
          Node(
              id=need(node, "id", int, wn),
              kernel=need(node, "kernel", int, wn),
              channels=need(node, "channels", int, wn),
              inputs=int_list(need(node, "inputs", list, wn), f"{wn}.inputs"),
          )
      )
    dags.append(Dag(nodes=tuple(nodes)))
  try:
    return ArchSpec(
        hierarchies=need(d, "hierarchies", int, where),
        dags_per_hierarchy=need(d, "dags_per_hierarchy", int, where),
        num_classes=need(d, "num_classes", int, where),
        aggregate=need(d, "aggregate", str, where),
        # Files written before the field existed used sinks.
        dag_output=(
            need(d, "dag_output", str, where) if "dag_output" in d else "sinks"
        ),
        pool=need(d, "pool", str, where),
        bn_momentum=float(need(d, "bn_momentum", (int, float), where)),
        bn_epsilon=float(need(d, "bn_epsilon", (int, float), where)),
        stem=tuple(stem),
        dags=tuple(dags),
    )
  except SpecError as e:
    msg = str(e)
    raise SpecError(
        msg if msg.startswith(where) else f"{where}.{msg}"
    ) from None


def node_widths(dag: Dag) -> Dict[int, int]:
  return {n.id: n.channels for n in dag.nodes}


def aggregate_width(aggregate: str, widths: Sequence[int]) -> int:
  """Channels of the aggregate of tensors with `widths` channels."""
  return max(widths) if aggregate == "sum" else sum(widths)
