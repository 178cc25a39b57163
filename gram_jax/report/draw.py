"""A drawing of an `ArchSpec`, like Figure 3 of the SwiftNet paper.

Hierarchies are stacked top to bottom; the m parallel DAGs of a hierarchy
stand side by side. Within a DAG, nodes are placed by depth (longest path
from node 0) and labelled with their op and output channels; sinks are
outlined in red.
"""

from __future__ import annotations

from typing import Dict

from gram_jax.arch import ArchSpec, Dag
from gram_jax.report.plots import pyplot


def _depths(dag: Dag) -> Dict[int, int]:
  depth = {}
  for node in dag.nodes:
    depth[node.id] = 1 + max((depth[u] for u in node.inputs), default=-1)
  return depth


def draw(spec: ArchSpec, path: str, *, title: str = "") -> None:
  plt = pyplot()
  m, h = spec.dags_per_hierarchy, spec.hierarchies
  depths = [_depths(d) for d in spec.dags]
  max_depth = [
      max(max(depths[i * m + j].values()) for j in range(m)) + 1
      for i in range(h)
  ]
  widest = max(max(list(_count_by_depth(d).values())) for d in spec.dags)
  col_w = max(2.6, 1.15 * widest)
  fig_h = sum(0.75 * d + 1.0 for d in max_depth) + 0.8
  fig, ax = plt.subplots(figsize=(col_w * m + 0.6, fig_h))
  ax.set_axis_off()
  y0 = 0.0
  for i in range(h):
    rows = max_depth[i]
    ax.text(
        -0.2,
        y0 + 0.05,
        f"hierarchy {i + 1}" + (" (after 2x2 pool)" if i else ""),
        fontsize=9,
        weight="bold",
        va="bottom",
    )
    for j in range(m):
      k = i * m + j
      dag, depth = spec.dags[k], depths[k]
      by_depth: Dict[int, list] = {}
      for node in dag.nodes:
        by_depth.setdefault(depth[node.id], []).append(node.id)
      pos = {}
      for d, ids in by_depth.items():
        for r, nid in enumerate(ids):
          x = j * col_w + col_w * (r + 1) / (len(ids) + 1)
          pos[nid] = (x, y0 - 0.6 - 0.75 * d)
      sinks = set(dag.outputs)
      for node in dag.nodes:
        for u in node.inputs:
          (x1, y1), (x2, y2) = pos[u], pos[node.id]
          span = depth[node.id] - depth[u]
          # Long edges would run straight through the nodes between them:
          # bend them, alternating sides, more for longer spans.
          rad = (
              0.0
              if span < 2
              else (0.12 + 0.05 * min(span, 6))
              * (1 if (u + node.id) % 2 else -1)
          )
          ax.annotate(
              "",
              xy=(x2, y2 + 0.16),
              xytext=(x1, y1 - 0.16),
              arrowprops=dict(
                  arrowstyle="-|>",
                  lw=0.6,
                  color="0.45",
                  shrinkA=0,
                  shrinkB=0,
                  connectionstyle=f"arc3,rad={rad}",
              ),
          )
      for node in dag.nodes:
        x, y = pos[node.id]
        ax.text(
            x,
            y,
            f"{node.kernel}x{node.kernel}\n{node.channels}",
            ha="center",
            va="center",
            fontsize=6.5,
            bbox=dict(
                boxstyle="round,pad=0.25",
                fc="#d8e6f3" if node.kernel == 1 else "#f6dcc0",
                ec="#c0392b" if node.id in sinks else "0.3",
                lw=1.2 if node.id in sinks else 0.6,
            ),
        )
      ax.text(
          j * col_w + col_w / 2,
          y0 - 0.25,
          f"DAG {j + 1}",
          ha="center",
          fontsize=8,
          color="0.3",
      )
    y0 -= 0.75 * rows + 1.0
  ax.set_xlim(-0.3, col_w * m + 0.1)
  ax.set_ylim(y0 + 0.3, 0.3)
  agg = "sum" if spec.aggregate == "sum" else "concat"
  ax.set_title(
      title
      or f"{spec.num_nodes} nodes, {spec.num_edges} edges (inputs: {agg}; output: {spec.dag_output}; red: sinks; blue 1x1, orange kxk)",
      fontsize=9,
  )
  fig.tight_layout()
  fig.savefig(path, dpi=130)
  plt.close(fig)


def _count_by_depth(dag: Dag) -> Dict[int, int]:
  counts: Dict[int, int] = {}
  for d in _depths(dag).values():
    counts[d] = counts.get(d, 0) + 1
  return counts
