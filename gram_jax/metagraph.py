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

NORMALIZATIONS = ("bernoulli", "clip", "max")
# Floor (and, for "bernoulli", 1 - ceiling) of an edge probability: no edge
# is ever certain to be dropped, so the search can always revisit it.
MIN_WEIGHT = 1e-3
PRUNE_MODES = ("threshold", "quantile")


class MetaGraph(struct.PyTreeNode):
  """Edge weights ``f32[K, n, n]`` and frozen node ops ``i32[K, n]``."""

  weights: jax.Array
  ops: jax.Array
  space: SearchSpace = struct.field(pytree_node=False)


def upper_triangle(n: int) -> jax.Array:
  """``bool[n, n]``: True for the edges i -> j with i < j."""
  return jnp.triu(jnp.ones((n, n), dtype=bool), k=1)


def init(
    space: SearchSpace, key: jax.Array, *, init_weight: float = 1.0
) -> MetaGraph:
  """A meta-graph with uniform edge weights and frozen random node ops.

  Node ops are a balanced random assignment per DAG: the op table is tiled to
  exactly n entries and permuted, so each op appears floor or ceil of
  n / |ops| times in each DAG (the AutoShrink `seed_group_ops` choice).

  Args:
    space: the search space.
    key: PRNG key; it alone decides the node ops.
    init_weight: the uniform initial edge weight (each edge's probability
      of being sampled), in (0, 1]. With 1.0 every sample is the complete
      DAG, so nothing is learnt about leaving edges out: use a value below 1
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
  raise ValueError(
      f"dag_output: {dag_output!r} is not allowed; allowed: all, sinks"
  )


def sample(graph: MetaGraph, key: jax.Array) -> jax.Array:
  """Draws one sub-network: an independent Bernoulli(weight) per edge.

  Returns the effective masks ``bool[K, n, n]`` (edges out of non-live nodes
  removed). A DAG whose node 0 draws no edge is the single node 0, a valid
  one-conv network, so no resampling is needed.
  """
  u = jax.random.uniform(key, graph.weights.shape)
  return effective(u < graph.weights)


def update(
    graph: MetaGraph,
    masks: jax.Array,
    advantage: jax.Array,
    *,
    alpha: float = 0.9,
    normalization: str = "bernoulli",
) -> MetaGraph:
  """Algorithm 1's multiplicative edge update [SN §3.2].

  Every edge weight is the probability with which `sample` draws the edge.
  The sub-network that earned ``advantage = eta' - beta`` had the edges in
  `masks`; ``f = exp(alpha * advantage)`` is the paper's factor.

  Args:
    graph: the meta-graph.
    masks: ``bool[K, n, n]`` edges of the evaluated sub-network (effective
      masks, as `sample` returns them).
    advantage: scalar ``eta' - beta`` (the same for every DAG, since one
      network is trained per iteration), or ``f32[K]`` for per-DAG rewards.
    alpha: the meta-graph learning rate (paper: 0.9).
    normalization: how the weights are renormalised ("Z_t" in the paper):

      * ``"bernoulli"`` (default): each edge is a two-outcome distribution,
        on with probability w and off with 1 - w; the outcome the candidate
        had is reweighted by ``f``, and the pair is normalised to sum to 1:
        ``w' = w f / (w f + 1 - w)`` if the edge was on,
        ``w' = w / (w + (1 - w) f)`` if it was off. A good candidate makes
        its edges more likely and its missing edges less likely; a bad one
        the reverse ("connections that lead to bad performance on proxy
        dataset are unlikely to be sampled in the next iteration"). Only
        edges out of live nodes are updated: an edge out of a dead node had
        no effect on the candidate, on or off. In logits this is
        ``logit(w) += alpha * advantage * (+1 on | -1 off)``, so with
        zero-mean advantages the weights do not drift, and one update
        moves w (and 1 - w) by at most the factor ``exp(alpha |advantage|)``.
      * ``"clip"``: sampled edges are multiplied by ``f``, the rest are left
        alone, and weights are clipped to ``[MIN_WEIGHT, 1]``. Only sampled
        edges learn, and only from their own draws.
      * ``"max"``: every weight is divided by the largest of its DAG. Kept
        so that runs made with it stay reproducible; do not use it for new
        searches: from a 0.5 start a single update with a small positive
        advantage lifts every unsampled edge to about 0.95, and from then on
        every sample is (nearly) the complete DAG (ALGORITHMS.md 1.3 #1).

    Weights stay in ``[MIN_WEIGHT, 1]`` (``[MIN_WEIGHT, 1 - MIN_WEIGHT]``
    for ``"bernoulli"``) except under ``"max"``.

  Returns:
    The updated `MetaGraph`.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from gram_jax.space import SearchSpace
    >>> g = init(SearchSpace(nodes=3, hierarchies=1, dags_per_hierarchy=1),
    ...          jax.random.key(0), init_weight=0.5)
    >>> masks = jnp.array([[[0, 1, 0], [0, 0, 0], [0, 0, 0]]], bool)
    >>> w = update(g, masks, 0.5, alpha=1.0).weights[0]
    >>> [round(float(w[0, 1]), 3), round(float(w[0, 2]), 3)]  # on, off
    [0.622, 0.378]
  """
  if normalization not in NORMALIZATIONS:
    raise ValueError(
        f"normalization: {normalization!r} is not allowed; "
        f"allowed: {', '.join(NORMALIZATIONS)}"
    )
  advantage = jnp.asarray(advantage, jnp.float32)
  advantage = jnp.reshape(advantage, advantage.shape + (1, 1))
  tri = upper_triangle(graph.weights.shape[-1])
  w = graph.weights
  if normalization == "bernoulli":
    step = alpha * advantage * jnp.where(masks, 1.0, -1.0)
    observed = live_nodes(masks)[..., :, None] & tri
    p = jnp.clip(w, MIN_WEIGHT, 1.0 - MIN_WEIGHT)
    new = jax.nn.sigmoid(jnp.log(p) - jnp.log1p(-p) + step)
    w = jnp.where(observed, jnp.clip(new, MIN_WEIGHT, 1.0 - MIN_WEIGHT), w)
  else:
    factor = jnp.where(masks, jnp.exp(alpha * advantage), 1.0)
    w = w * factor
    if normalization == "max":
      w = w / jnp.max(w, axis=(-2, -1), keepdims=True)
    else:
      w = jnp.clip(w, MIN_WEIGHT, 1.0)
  w = jnp.where(tri, w, 0.0)
  return graph.replace(weights=w)


def prune(
    graph: MetaGraph, level: Union[float, jax.Array], *, mode: str = "threshold"
) -> jax.Array:
  """Structure-level pruning [SN §3.3]: the edges kept at `level`.

  Args:
    graph: the meta-graph.
    level: in [0, 1].
    mode: ``"threshold"`` keeps edges with ``weight >= level`` (a weight is
      the edge's sampling probability, so level 0 keeps the complete DAGs
      and level 0.5 the edges the search made more likely than not);
      ``"quantile"`` drops the lowest `level` fraction of each DAG's edges.

  Returns:
    Effective masks ``bool[K, n, n]``.
  """
  if mode not in PRUNE_MODES:
    raise ValueError(
        f"mode: {mode!r} is not allowed; allowed: {', '.join(PRUNE_MODES)}"
    )
  n = graph.weights.shape[-1]
  tri = upper_triangle(n)
  if mode == "threshold":
    keep = graph.weights >= level
  else:
    flat = jnp.where(tri, graph.weights, jnp.nan).reshape(
        graph.weights.shape[:-2] + (n * n,)
    )
    cut = jnp.nanquantile(flat, level, axis=-1)
    keep = graph.weights >= cut[..., None, None]
    # Level 1 drops every edge, as a threshold above the largest weight would.
    keep = keep & (jnp.asarray(level) < 1.0)
  return effective(keep & tri)


def num_edges(masks: jax.Array) -> jax.Array:
  """Number of edges per mask set (summed over DAGs)."""
  return jnp.sum(masks, axis=(-3, -2, -1))
