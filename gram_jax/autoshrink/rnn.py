"""ShrinkRNN: the recurrent DAG cell of AutoShrink and its language model.

The cell (ALGORITHMS.md 2.5; [AS: searching/rnn/model.py `node_op`]) has
nodes ``0..n-1``. At every time step:

  * node 0 is a highway layer over the input and the previous hidden state:
    ``[c0, h0] = [x*m_x, h_prev*m_h] @ W0``,
    ``s0 = h_prev + sigmoid(c0) * (tanh(h0) - h_prev)``;
  * each edge ``i -> j`` has its own ``W_i_j`` (nhid x 2 nhid):
    ``[c, h] = (s_i*m_h) @ W_i_j``,
    ``contribution = s_i + sigmoid(c) * (f_j(h) - s_i)``, where ``f_j`` is
    the activation of the *destination* node j;
  * a node's state is the **mean** of its incoming contributions; only nodes
    reachable from node 0 exist;
  * the output ``h_t`` is the mean of the leaves (reachable nodes without an
    outgoing edge).

`ShrinkRNN` runs the cell over time with `jax.lax.scan`. With
``edges=None`` it holds a weight for every edge ``i < j`` of the complete
DAG and takes the edge mask as an array argument, so every candidate of a
search runs through one compiled program; with a static edge list it holds
only those weights (the exact cell; parameter names are shared, so its
parameters are a subset of the masked cell's). `RNNLM` is the language model
around it: embedding tied to the softmax weights, embedding dropout
(dropoute), locked dropouts on the embedding (dropouti) and the output
(dropout), variational masks on the cell input (dropoutx) and hidden state
(dropouth). The official code has no weight drop (DropConnect) on the cell
weights, so neither do we.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gram_jax.errors import GramJaxError

ACTIVATIONS = ("relu", "sigmoid", "tanh", "identity")
INIT_RANGE = 0.04  # [AS: searching/rnn/model.py INITRANGE]

Edge = Tuple[int, int]


def activation(name: str):
  """The node activation `f_j` by name."""
  return {
      "relu": jax.nn.relu,
      "sigmoid": jax.nn.sigmoid,
      "tanh": jnp.tanh,
      "identity": lambda x: x,
  }[name]


# --- host-side graph helpers (mirror [AS: searching/rnn/utils.py]) ---------


def reachable(mask: np.ndarray) -> np.ndarray:
  """bool[n]: nodes reachable from node 0 through edges ``i < j``."""
  mask = np.asarray(mask, bool)
  n = mask.shape[0]
  reach = np.zeros(n, bool)
  reach[0] = True
  for i in range(n):
    if reach[i]:
      reach[i + 1 :] |= mask[i, i + 1 :]
  return reach


def optimize_mask(mask: np.ndarray) -> np.ndarray:
  """Drops edges leaving nodes that are not reachable from node 0."""
  mask = np.triu(np.asarray(mask, bool), 1)
  return mask & reachable(mask)[:, None]


def leaves(mask: np.ndarray) -> Tuple[int, ...]:
  """Reachable nodes with no outgoing edge (node 0 if it has none)."""
  m = optimize_mask(mask)
  reach = reachable(m)
  return tuple(int(i) for i in range(m.shape[0]) if reach[i] and not m[i].any())


def num_edges(mask: np.ndarray) -> int:
  """Edges that exist after `optimize_mask` (``inspect_num_edges``)."""
  return int(optimize_mask(mask).sum())


def cell_params(nhid: int, ninp: int, edges: int) -> int:
  """Parameters of the cell: W0 plus one nhid x 2nhid matrix per edge."""
  return (ninp + nhid) * 2 * nhid + edges * nhid * 2 * nhid


def lm_params(
    vocab_size: int, nhid: int, edges: int, emsize: Optional[int] = None
) -> int:
  """Parameters of `RNNLM`: tied embedding, decoder bias, cell."""
  emsize = nhid if emsize is None else emsize
  return vocab_size * emsize + vocab_size + cell_params(nhid, emsize, edges)


# --- cell definition -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CellSpec:
  """A ShrinkRNN cell: node count, edges ``(i, j)`` with ``i < j``, and one
  activation per node (node 0's is unused). JSON round trip, validated."""

  nodes: int
  edges: Tuple[Edge, ...]
  ops: Tuple[str, ...]

  def __post_init__(self):
    object.__setattr__(
        self, "edges", tuple(sorted((int(i), int(j)) for i, j in self.edges))
    )
    object.__setattr__(self, "ops", tuple(self.ops))
    if not isinstance(self.nodes, int) or self.nodes < 2:
      raise GramJaxError(
          f"cell.nodes: {self.nodes!r} is not allowed; allowed: an integer >= 2"
      )
    if len(self.ops) != self.nodes:
      raise GramJaxError(
          f"cell.ops: {len(self.ops)} names for "
          f"{self.nodes} nodes; allowed: one per node"
      )
    for op in self.ops:
      if op not in ACTIVATIONS:
        raise GramJaxError(
            f"cell.ops: {op!r} is not allowed; allowed: "
            f"{', '.join(ACTIVATIONS)}"
        )
    for i, j in self.edges:
      if not 0 <= i < j < self.nodes:
        raise GramJaxError(
            f"cell.edges: ({i}, {j}) is not allowed; allowed:"
            f" pairs i < j of nodes 0..{self.nodes - 1}"
        )
    if len(set(self.edges)) != len(self.edges):
      raise GramJaxError("cell.edges: an edge is listed twice")

  @classmethod
  def from_mask(cls, mask: Any, ops: Sequence[str]) -> "CellSpec":
    """The cell of an edge mask after `optimize_mask`."""
    m = optimize_mask(np.asarray(mask))
    return cls(int(m.shape[0]), tuple(zip(*np.nonzero(m))), tuple(ops))

  def mask(self) -> np.ndarray:
    m = np.zeros((self.nodes, self.nodes), bool)
    for i, j in self.edges:
      m[i, j] = True
    return m

  @property
  def leaves(self) -> Tuple[int, ...]:
    return leaves(self.mask())

  @property
  def num_edges(self) -> int:
    return num_edges(self.mask())

  def to_dict(self) -> Dict[str, Any]:
    return {
        "format": "gram_jax.ShrinkRNNCell",
        "nodes": self.nodes,
        "edges": [list(e) for e in self.edges],
        "ops": list(self.ops),
    }

  @classmethod
  def from_dict(cls, d: Any, where: str = "cell") -> "CellSpec":
    """From `to_dict` output, or from an RNN search's best.json (whose
    ``description`` holds the cell)."""
    if isinstance(d, dict) and d.get("format") == "gram_jax.AutoShrinkResult":
      d, where = d.get("description"), f"{where}.description"
    if not isinstance(d, dict) or d.get("format") != "gram_jax.ShrinkRNNCell":
      raise GramJaxError(f"{where}.format: expected 'gram_jax.ShrinkRNNCell'")
    edges = d.get("edges")
    if not isinstance(edges, list) or not all(
        isinstance(e, list)
        and len(e) == 2
        and all(isinstance(v, int) for v in e)
        for e in edges
    ):
      raise GramJaxError(f"{where}.edges: expected a list of [i, j] pairs")
    ops = d.get("ops")
    if not isinstance(ops, list):
      raise GramJaxError(
          f"{where}.ops: expected a list of names from {', '.join(ACTIVATIONS)}"
      )
    return cls(d.get("nodes"), tuple(tuple(e) for e in edges), tuple(ops))

  def save(self, path: str) -> None:
    from gram_jax import io  # pylint: disable=import-outside-toplevel

    io.write_json_atomic(path, self.to_dict())

  @classmethod
  def load(cls, path: str) -> "CellSpec":
    from gram_jax import io  # pylint: disable=import-outside-toplevel

    d = io.read_json(path, GramJaxError)
    return cls.from_dict(d, where=path)


def released_cell() -> CellSpec:
  """The released ShrinkRNN cell [AS: evaluation/rnn/test_final.py]:
  6 nodes, 12 edges, leaves {4, 5}."""
  edges = [(0, j) for j in range(1, 6)] + [
      (1, 3),
      (1, 4),
      (1, 5),
      (2, 4),
      (2, 5),
      (3, 4),
      (3, 5),
  ]
  return CellSpec(
      6,
      tuple(edges),
      ("tanh", "identity", "sigmoid", "sigmoid", "tanh", "identity"),
  )


def random_ops(nodes: int, key: jax.Array) -> Tuple[str, ...]:
  """Per-node activations drawn uniformly with replacement (the official
  ``random_choose_ops``, seeded here)."""
  idx = np.asarray(jax.random.randint(key, (nodes,), 0, len(ACTIVATIONS)))
  return tuple(ACTIVATIONS[int(i)] for i in idx)


def complete_mask(nodes: int) -> np.ndarray:
  return np.triu(np.ones((nodes, nodes), bool), 1)


# --- the recurrent layer ---------------------------------------------------


def _live_structure(mask: jax.Array):
  """Float live-edge matrix, 1/in-degree and leaf weights from a bool mask
  (jittable: the masked cell computes them at run time)."""
  n = mask.shape[-1]
  m = jnp.triu(mask.astype(bool), 1)
  reach = [jnp.asarray(True)]
  for j in range(1, n):
    reach.append(jnp.any(m[:j, j] & jnp.stack(reach)))
  reach = jnp.stack(reach)
  live = m & reach[:, None]
  indeg = live.sum(0)
  inv = 1.0 / jnp.maximum(indeg, 1).astype(jnp.float32)
  leaf = reach & ~live.any(1)
  leaf_w = leaf.astype(jnp.float32) / jnp.maximum(leaf.sum(), 1)
  return live.astype(jnp.float32), inv, leaf_w


class ShrinkRNN(nn.Module):
  """The ShrinkRNN cell scanned over time.

  Attributes:
    nhid: hidden size.
    ops: one activation name per node (node 0's unused).
    edges: static edge list (the exact cell), or None for the complete DAG
      with an edge mask given at call time.
    init_range: weights are U(-init_range, init_range).
  """

  nhid: int
  ops: Tuple[str, ...]
  edges: Optional[Tuple[Edge, ...]] = None
  init_range: float = INIT_RANGE

  @nn.compact
  def __call__(
      self,
      x: jax.Array,
      h: jax.Array,
      mask: Optional[jax.Array] = None,
      *,
      x_mask: Optional[jax.Array] = None,
      h_mask: Optional[jax.Array] = None,
      valid: Optional[jax.Array] = None,
  ):
    """Runs the cell over ``x`` [T, B, ninp] from state ``h`` [B, nhid].

    Args:
      mask: bool [n, n] edge mask (masked cell only).
      x_mask, h_mask: variational dropout masks [B, ninp] and [B, nhid], the
        same for every time step (and ``h_mask`` for every edge).
      valid: bool [T]; steps past the last valid one keep the state (for
        windows padded to a common length).

    Returns:
      (outputs [T, B, nhid], last valid state [B, nhid]).
    """
    n, nhid = len(self.ops), self.nhid

    def init(k, s):
      return jax.random.uniform(
          k, s, jnp.float32, -self.init_range, self.init_range
      )

    w0 = self.param("W0", init, (x.shape[-1] + nhid, 2 * nhid))
    if self.edges is None:
      if mask is None:
        raise ValueError("ShrinkRNN with edges=None needs an edge mask")
      edges = [(i, j) for i in range(n) for j in range(i + 1, n)]
      live, inv_deg, leaf_w = _live_structure(mask)
    else:
      if mask is not None:
        raise ValueError("an exact ShrinkRNN (static edges) takes no mask")
      m = optimize_mask(CellSpec(n, self.edges, self.ops).mask())
      edges = [e for e in self.edges if m[e]]  # live edges only
      lv = leaves(m)
    ws = {
        e: self.param(f"W_{e[0]}_{e[1]}", init, (nhid, 2 * nhid)) for e in edges
    }
    # One matmul per source node: its out-edge weights side by side.
    outs = {i: [j for (a, j) in edges if a == i] for i in range(n)}
    wcat = {
        i: jnp.concatenate([ws[(i, j)] for j in js], axis=1)
        for i, js in outs.items()
        if js
    }
    acts = [activation(op) for op in self.ops]
    xm = 1.0 if x_mask is None else x_mask
    hm = 1.0 if h_mask is None else h_mask
    if valid is None:
      valid = jnp.ones(x.shape[0], bool)

    def step(h_prev, inputs):
      x_t, ok = inputs
      c0, h0 = jnp.split(
          jnp.concatenate([x_t * xm, h_prev * hm], -1) @ w0, 2, axis=-1
      )
      s0 = h_prev + jax.nn.sigmoid(c0) * (jnp.tanh(h0) - h_prev)
      sums = [None] * n
      states = [s0] + [None] * (n - 1)
      for i in range(n):
        if i > 0:
          if self.edges is None:
            states[i] = (
                jnp.zeros_like(s0) if sums[i] is None else sums[i] * inv_deg[i]
            )
          elif sums[i] is not None:
            states[i] = sums[i][0] / sums[i][1]
        if i not in wcat or states[i] is None:
          continue
        s = states[i]
        ch = (s * hm) @ wcat[i]
        for q, j in enumerate(outs[i]):
          c = jax.nn.sigmoid(ch[:, 2 * nhid * q : 2 * nhid * q + nhid])
          hh = acts[j](ch[:, 2 * nhid * q + nhid : 2 * nhid * (q + 1)])
          contrib = s + c * (hh - s)
          if self.edges is None:
            contrib = jnp.where(live[i, j] > 0, contrib, 0.0)
            sums[j] = contrib if sums[j] is None else sums[j] + contrib
          else:
            sums[j] = (
                (contrib, 1)
                if sums[j] is None
                else (sums[j][0] + contrib, sums[j][1] + 1)
            )
      if self.edges is None:
        out = sum(states[j] * leaf_w[j] for j in range(n))
      else:
        out = sum(states[j] for j in lv) / len(lv)
      h_new = jnp.where(ok, out, h_prev)
      return h_new, out

    h_last, outputs = jax.lax.scan(step, h, (x, valid))
    return outputs, h_last


# --- the language model ----------------------------------------------------


class RNNLM(nn.Module):
  """Word-level language model with a ShrinkRNN cell
  ([AS: evaluation/rnn/model.py `RNN`]).

  Attributes:
    vocab_size: number of words.
    nhid: hidden and embedding size (tied weights need them equal).
    ops: activation per node.
    edges: static edge list, or None for the masked complete DAG.
    dropout, dropouth, dropoutx, dropouti, dropoute: output (locked),
      hidden-state and cell-input (variational), embedding-output (locked),
      and word (embedding-row) dropout rates.
    init_range: U(-r, r) for the embedding and cell weights.
  """

  vocab_size: int
  nhid: int
  ops: Tuple[str, ...]
  edges: Optional[Tuple[Edge, ...]] = None
  dropout: float = 0.0
  dropouth: float = 0.0
  dropoutx: float = 0.0
  dropouti: float = 0.0
  dropoute: float = 0.0
  init_range: float = INIT_RANGE

  @nn.compact
  def __call__(
      self,
      tokens: jax.Array,
      hidden: jax.Array,
      mask: Optional[jax.Array] = None,
      *,
      train: bool = False,
      valid: Optional[jax.Array] = None,
  ):
    """``tokens`` [T, B] int, ``hidden`` [B, nhid].

    Returns:
      (logits [T, B, V], new hidden [B, nhid], raw cell outputs [T, B, nhid],
      dropped outputs [T, B, nhid]); the raw outputs feed the TAR penalty,
      the dropped ones AR.
    """
    r = self.init_range
    emb = self.param(
        "embedding",
        lambda k, s: jax.random.uniform(k, s, jnp.float32, -r, r),
        (self.vocab_size, self.nhid),
    )
    bias = self.param("decoder_bias", nn.initializers.zeros, (self.vocab_size,))
    b = tokens.shape[1]
    table = emb
    # All dropout masks come from one uniform draw (independent slices): one
    # PRNG kernel compiles much faster on the CPU than five.
    rates = {
        "e": (self.dropoute, (self.vocab_size, 1)),
        "i": (self.dropouti, (1, b, self.nhid)),
        "x": (self.dropoutx, (b, self.nhid)),
        "h": (self.dropouth, (b, self.nhid)),
        "o": (self.dropout, (1, b, self.nhid)),
    }
    masks = {}
    if train and any(p > 0 for p, _ in rates.values()):
      live = {k: v for k, v in rates.items() if v[0] > 0}
      sizes = [int(np.prod(shape)) for _, shape in live.values()]
      u = jax.random.uniform(self.make_rng("dropout"), (sum(sizes),))
      at = 0
      for (name, (p, shape)), size in zip(live.items(), sizes):
        keep = u[at : at + size].reshape(shape) >= p
        masks[name] = keep.astype(jnp.float32) / (1.0 - p)
        at += size
    if "e" in masks:
      table = emb * masks["e"]
    x = jnp.take(table, tokens, axis=0)
    if "i" in masks:
      x = x * masks["i"]
    x_mask, h_mask = masks.get("x"), masks.get("h")
    raw, new_h = ShrinkRNN(self.nhid, self.ops, self.edges, r, name="cell")(
        x, hidden, mask, x_mask=x_mask, h_mask=h_mask, valid=valid
    )
    out = raw * masks["o"] if "o" in masks else raw
    logits = out @ emb.T + bias
    return logits, new_h, raw, out


def exact_lm(cell: CellSpec, vocab_size: int, nhid: int, **kw) -> RNNLM:
  """The language model of a fixed cell (only its live edges have
  weights)."""
  return RNNLM(
      vocab_size=vocab_size, nhid=nhid, ops=cell.ops, edges=cell.edges, **kw
  )


def masked_lm(
    nodes: int, ops: Sequence[str], vocab_size: int, nhid: int, **kw
) -> RNNLM:
  """The language model over the complete DAG with a runtime edge mask."""
  if len(ops) != nodes:
    raise GramJaxError(f"rnn.ops: {len(ops)} names for {nodes} nodes")
  return RNNLM(
      vocab_size=vocab_size, nhid=nhid, ops=tuple(ops), edges=None, **kw
  )


def param_shapes(model: RNNLM) -> Dict[str, Any]:
  """The parameter shapes of `model` (``jax.eval_shape``: nothing runs)."""
  tokens = jnp.zeros((2, 1), jnp.int32)
  hidden = jnp.zeros((1, model.nhid), jnp.float32)
  args = (tokens, hidden)
  if model.edges is None:
    args += (jnp.asarray(complete_mask(len(model.ops))),)
  return jax.eval_shape(model.init, jax.random.key(0), *args)["params"]


def init_params(model: RNNLM, key: jax.Array) -> Dict[str, Any]:
  """Fresh parameters drawn as `model.init` draws them (every weight
  U(-init_range, init_range), decoder bias 0) without tracing the forward
  pass, so jitting it compiles in a fraction of a second. Jittable and
  vmappable over `key`."""
  shapes = param_shapes(model)
  flat, treedef = jax.tree_util.tree_flatten_with_path(shapes)
  r = model.init_range
  # One draw for all weights: a single PRNG kernel compiles much faster on
  # the CPU than one per parameter.
  total = sum(int(np.prod(s.shape)) for _, s in flat)
  u = jax.random.uniform(key, (total,), jnp.float32, -r, r)
  leaves, at = [], 0
  for path, s in flat:
    size = int(np.prod(s.shape))
    if getattr(path[-1], "key", None) == "decoder_bias":
      leaves.append(jnp.zeros(s.shape, s.dtype))
    else:
      leaves.append(u[at : at + size].reshape(s.shape).astype(s.dtype))
    at += size
  return jax.tree_util.tree_unflatten(treedef, leaves)


def count_params(model: RNNLM, mask: Optional[np.ndarray] = None) -> int:
  """Parameters of `model` from shapes only (``jax.eval_shape``)."""
  tokens = jnp.zeros((2, 1), jnp.int32)
  hidden = jnp.zeros((1, model.nhid), jnp.float32)
  args = (
      (tokens, hidden) if mask is None else (tokens, hidden, jnp.asarray(mask))
  )
  shapes = jax.eval_shape(model.init, jax.random.key(0), *args)
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(shapes)))


def to_exact_params(params: Dict[str, Any], cell: CellSpec) -> Dict[str, Any]:
  """Masked-model parameters restricted to the live edges of `cell`."""
  m = optimize_mask(cell.mask())
  keep = {f"W_{i}_{j}" for i, j in cell.edges if m[i, j]} | {"W0"}
  out = dict(params)
  out["cell"] = {k: v for k, v in params["cell"].items() if k in keep}
  return out
