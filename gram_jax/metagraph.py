"""The GRAM meta-graph: edge weights of K complete DAGs, and pure functions.

A `MetaGraph` holds, for every DAG k, edge weights ``weights[k, i, j]`` for
``i < j`` (zero elsewhere) and a frozen op index per node. Sub-networks are
boolean edge masks of the same fixed shape ``[K, n, n]``, so sampling,
updating and the supernet never retrace from one candidate to the next.

Conventions (ALGORITHMS.md 1.1-1.3, DESIGN.md decision 1):
  * node 0 applies its op to the DAG input and is always live;
  * node v > 0 is live iff it has an edge from a live node;
  * edges leaving a node that is not live are dropped (`effective`), so a
    mask returned by `sample` or `prune` lists exactly the edges of the
    sub-network;
  * sinks are live nodes with no edge to a live node;
  * the DAG output aggregates every live node (``space.dag_output="all"``,
    the default) or only the sinks (``"sinks"``); see `output_nodes`.

Every function here is pure, jittable and vmappable (e.g. over seeds).
"""

from __future__ import annotations

from typing import Union

import jax
import jax.numpy as jnp
from flax import struct

from gram_jax.space import SearchSpace

NORMALIZATIONS = ("max", "clip")
PRUNE_MODES = ("threshold", "quantile")


class MetaGraph(struct.PyTreeNode):
  """Edge weights ``f32[K, n, n]`` and frozen node ops ``i32[K, n]``."""
  weights: jax.Array
  ops: jax.Array
  space: SearchSpace = struct.field(pytree_node=False)


def upper_triangle(n: int) -> jax.Array:
  """``bool[n, n]``: True for the edges i -> j with i < j."""
  return jnp.triu(jnp.ones((n, n), dtype=bool), k=1)


def init(space: SearchSpace, key: jax.Array, *,
         init_weight: float = 1.0) -> MetaGraph:
  """A meta-graph with uniform edge weights and frozen random node ops.

  Node ops are a balanced random assignment per DAG: the op table is tiled to
  exactly n entries and permuted, so each op appears floor or ceil of
  n / |ops| times in each DAG (the AutoShrink `seed_group_ops` choice).

  Args:
    space: the search space.
    key: PRNG key; it alone decides the node ops.
    init_weight: the uniform initial edge weight, in (0, 1]. With 1.0 every
      sample is the complete DAG and max-normalisation maps every update
      back to all-ones, so the search never moves: use a value below 1
      (the search configs default to 0.5; ALGORITHMS.md 1.3 #2).

  Returns:
    A `MetaGraph`.
  """
  k, n = space.num_dags, space.nodes
  table = jnp.arange(n, dtype=jnp.int32) % space.num_ops
  keys = jax.random.split(key, k)
  ops = jax.vmap(lambda kk: jax.random.permutation(kk, table))(keys)
  weights = jnp.where(upper_triangle(n), jnp.float32(init_weight), 0.0)
  weights = jnp.broadcast_to(weights, (k, n, n))
  return MetaGraph(weights=weights, ops=ops, space=space)


def live_nodes(masks: jax.Array) -> jax.Array:
  """``bool[..., n]``: node 0, and every node with an edge from a live node."""
  n = masks.shape[-1]
  live = jnp.zeros(masks.shape[:-1], dtype=bool).at[..., 0].set(True)

  def body(v, live):
    has_input = jnp.any(masks[..., :, v] & live, axis=-1)
    return live.at[..., v].set(has_input)

  return jax.lax.fori_loop(1, n, body, live)


def effective(masks: jax.Array) -> jax.Array:
  """Drops the edges that leave non-live nodes (and the lower triangle)."""
  n = masks.shape[-1]
  masks = masks & upper_triangle(n)
  return masks & live_nodes(masks)[..., :, None]


def sinks(masks: jax.Array) -> jax.Array:
  """``bool[..., n]``: live nodes with no edge to a live node."""
  eff = effective(masks)
  return live_nodes(masks) & ~jnp.any(eff, axis=-1)


def output_nodes(masks: jax.Array, dag_output: str = "all") -> jax.Array:
  """``bool[..., n]``: the nodes that feed the DAG output.

  Args:
    masks: ``bool[..., n, n]`` edges.
    dag_output: ``"all"`` (every live node) or ``"sinks"``
      (`SearchSpace.dag_output`).
  """
  if dag_output == "all":
    return live_nodes(masks)
  if dag_output == "sinks":
    return sinks(masks)
  raise ValueError(f"dag_output: {dag_output!r} is not allowed; allowed: "
                   "all, sinks")


def sample(graph: MetaGraph, key: jax.Array) -> jax.Array:
  """Draws one sub-network: an independent Bernoulli(weight) per edge.

  Returns the effective masks ``bool[K, n, n]`` (edges out of non-live nodes
  removed). A DAG whose node 0 draws no edge is the single node 0, a valid
  one-conv network, so no resampling is needed.
  """
  u = jax.random.uniform(key, graph.weights.shape)
  return effective(u < graph.weights)


def update(graph: MetaGraph, masks: jax.Array, advantage: jax.Array, *,
           alpha: float = 0.9, normalization: str = "max") -> MetaGraph:
  """Algorithm 1's multiplicative edge update [SN §3.2].

  Sampled edges are multiplied by ``exp(alpha * advantage)`` where
  ``advantage = eta' - beta``; all edges are then divided by ``Z_t``.

  Args:
    graph: the meta-graph.
    masks: ``bool[K, n, n]`` edges of the evaluated sub-network.
    advantage: scalar ``eta' - beta`` (the same for every DAG, since one
      network is trained per iteration), or ``f32[K]`` for per-DAG rewards.
    alpha: the meta-graph learning rate (paper: 0.9).
    normalization: ``"max"`` (default): ``Z_t`` is the largest edge weight
      of each DAG, so weights stay in (0, 1] and the best edge has weight 1,
      the reading under which absolute pruning levels make sense
      (ALGORITHMS.md 1.3 #1). ``"clip"``: ``Z_t = 1`` and weights are capped
      at 1, so unsampled edges keep their weight.

  Returns:
    The updated `MetaGraph`.
  """
  if normalization not in NORMALIZATIONS:
    raise ValueError(f"normalization: {normalization!r} is not allowed; "
                     f"allowed: {', '.join(NORMALIZATIONS)}")
  advantage = jnp.asarray(advantage, jnp.float32)
  advantage = jnp.reshape(advantage, advantage.shape + (1, 1))
  factor = jnp.where(masks, jnp.exp(alpha * advantage), 1.0)
  w = graph.weights * factor
  if normalization == "max":
    z = jnp.max(w, axis=(-2, -1), keepdims=True)
    w = w / z
  else:
    w = jnp.minimum(w, 1.0)
  w = jnp.where(upper_triangle(w.shape[-1]), w, 0.0)
  return graph.replace(weights=w)


def prune(graph: MetaGraph, level: Union[float, jax.Array], *,
          mode: str = "threshold") -> jax.Array:
  """Structure-level pruning [SN §3.3]: the edges kept at `level`.

  Args:
    graph: the meta-graph.
    level: in [0, 1].
    mode: ``"threshold"`` keeps edges with ``weight >= level`` (weights are
      max-normalised, so level 0 keeps the complete DAGs);
      ``"quantile"`` drops the lowest `level` fraction of each DAG's edges.

  Returns:
    Effective masks ``bool[K, n, n]``.
  """
  if mode not in PRUNE_MODES:
    raise ValueError(f"mode: {mode!r} is not allowed; allowed: "
                     f"{', '.join(PRUNE_MODES)}")
  n = graph.weights.shape[-1]
  tri = upper_triangle(n)
  if mode == "threshold":
    keep = graph.weights >= level
  else:
    flat = jnp.where(tri, graph.weights, jnp.nan).reshape(
        graph.weights.shape[:-2] + (n * n,))
    cut = jnp.nanquantile(flat, level, axis=-1)
    keep = graph.weights >= cut[..., None, None]
    # Level 1 drops every edge, as a threshold above the largest weight would.
    keep = keep & (jnp.asarray(level) < 1.0)
  return effective(keep & tri)


def num_edges(masks: jax.Array) -> jax.Array:
  """Number of edges per mask set (summed over DAGs)."""
  return jnp.sum(masks, axis=(-3, -2, -1))
