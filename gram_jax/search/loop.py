"""The GRAM search loop: a run is a directory (DESIGN.md decision 7).

``run_search(config, workdir)`` writes into `workdir`:

  config.json        the resolved config (a resumed run must match it)
  candidates.jsonl   one JSON line per iteration
  checkpoints/       orbax checkpoints of the whole search state
  metagraph.json     final edge weights and node ops per DAG
  arch.json          the ArchSpec pruned at ``search.prune_level``
  search_curves.png, edge_weights.png

Starting on an existing workdir resumes from the newest readable checkpoint.
Per-iteration keys are ``fold_in(key, step)``, so a run killed at any moment
and resumed writes the same `metagraph.json` as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from typing import Any, Dict, List, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from gram_jax import arch as arch_lib
from gram_jax import cost as cost_lib
from gram_jax import data as data_lib
from gram_jax import io
from gram_jax import metagraph as mg
from gram_jax import train as train_lib
from gram_jax.search import config as config_lib
from gram_jax.search import gram as gram_lib
from gram_jax.search import rewards

CONFIG = "config.json"
CANDIDATES = "candidates.jsonl"
METAGRAPH = "metagraph.json"
ARCH = "arch.json"


class SearchResult(NamedTuple):
  state: gram_lib.GramState
  spec: Optional[arch_lib.ArchSpec]
  records: List[Dict[str, Any]]
  complete: bool
  input_shape: tuple
  num_classes: int


def _strategy(s: config_lib.GramSettings):
  if s.strategy == "random":
    return gram_lib.random_search()
  return gram_lib.gram(alpha=s.alpha, beta0=s.beta0,
                       beta_momentum=s.beta_momentum,
                       normalization=s.normalization)


def prepare_workdir(config: config_lib.SearchConfig, workdir: str) -> bool:
  """Creates `workdir` or checks it holds a run of the same config.

  Returns True when resuming. Only ``search.iterations`` may differ (to
  extend or shorten a run); any other difference is a `ConfigError` and
  nothing in the workdir is touched.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG)
  new = config.to_dict()
  if not os.path.exists(path):
    io.write_json_atomic(path, new)
    return False
  try:
    with open(path) as f:
      old = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise config_lib.ConfigError(
        f"{path}: unreadable ({e}); use a new --workdir") from None
  old_cmp = json.loads(json.dumps(old))
  new_cmp = json.loads(json.dumps(new))
  old_cmp.get("search", {}).pop("iterations", None)
  new_cmp["search"].pop("iterations", None)
  d = config_lib.diff(old_cmp, new_cmp)
  if d:
    field, was, now = d
    raise config_lib.ConfigError(
        f"config.{field}: the workdir {workdir} holds a run with {field}="
        f"{was!r}, this config says {now!r}; use a new --workdir or the "
        "same config")
  if old != new:
    io.write_json_atomic(path, new)
  return True


def _state_tree(state: gram_lib.GramState) -> Dict[str, np.ndarray]:
  return {"weights": np.asarray(state.graph.weights),
          "ops": np.asarray(state.graph.ops),
          "baseline": np.asarray(state.baseline),
          "step": np.asarray(state.step)}


def _restore(manager: ocp.CheckpointManager, target: Dict[str, np.ndarray],
             workdir: str) -> Optional[Dict[str, np.ndarray]]:
  """The newest readable checkpoint; unreadable ones are moved aside."""
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      restored = manager.restore(step, args=ocp.args.StandardRestore(target))
      for key, value in target.items():
        if np.shape(restored[key]) != np.shape(value):
          raise ValueError(f"{key} has shape {np.shape(restored[key])}")
      return restored
    except Exception as e:  # any unreadable checkpoint: fall back  # pylint: disable=broad-except
      aside = os.path.join(workdir, "checkpoints_corrupt")
      os.makedirs(aside, exist_ok=True)
      src = os.path.join(manager.directory, str(step))
      warnings.warn(f"checkpoint {src} is unreadable ({type(e).__name__}: "
                    f"{str(e).splitlines()[0][:200] if str(e) else ''}); "
                    f"moved to {aside} and resuming from an earlier one")
      if os.path.exists(src):
        shutil.move(src, os.path.join(aside, f"{step}-{time.time_ns()}"))
      manager.reload()
  return None


def encode_edges(masks) -> List[str]:
  """Per-DAG hex strings of the upper-triangle edge bits (row-major i < j).

  With the run's node ops this rebuilds the candidate exactly
  (`decode_edges`), so any line of candidates.jsonl can be retrained.
  """
  masks = np.asarray(masks, bool)
  n = masks.shape[-1]
  rows, cols = np.triu_indices(n, 1)
  out = []
  for k in range(masks.shape[0]):
    bits = masks[k, rows, cols]
    value = int("".join("1" if b else "0" for b in bits) or "0", 2)
    out.append(format(value, "x"))
  return out


def decode_edges(edges: List[str], n: int) -> np.ndarray:
  """Inverse of `encode_edges`: ``bool[K, n, n]``."""
  rows, cols = np.triu_indices(n, 1)
  masks = np.zeros((len(edges), n, n), bool)
  for k, text in enumerate(edges):
    bits = format(int(text, 16), f"0{len(rows)}b")[-len(rows):]
    masks[k, rows, cols] = [b == "1" for b in bits]
  return masks


def _checked_table(config: config_lib.SearchConfig, input_shape):
  """The latency table of ``cost="lut"``, checked against the space."""
  from gram_jax.cost import lut  # pylint: disable=import-outside-toplevel
  path = config.search.lut_path
  table = lut.LatencyTable.load(path)
  lut.check_table(table, config.space, input_shape, where=path,
                  space_flag="config.space",
                  shape_flag="config.dataset (input shape)")
  return table


def latency_cost(config: config_lib.SearchConfig, ops, input_shape,
                 num_classes: int):
  """``fn(masks, spec) -> ms`` for a latency cost, or None for ``macs``."""
  s = config.search
  if s.cost == "lut":
    from gram_jax.cost import lut  # pylint: disable=import-outside-toplevel
    table = _checked_table(config, input_shape)
    predict = jax.jit(lut.jax_predictor(table, config.space, ops,
                                        input_shape))
    return lambda masks, spec: float(predict(masks))
  if s.cost == "measured":
    from gram_jax.export import latency, tflite  # pylint: disable=import-outside-toplevel
    from gram_jax.models import ExactNet  # pylint: disable=import-outside-toplevel
    del num_classes

    def measure(masks, spec):
      del masks
      # Latency does not depend on weight values: random ones will do.
      variables = ExactNet(spec).init(jax.random.key(0),
                                      jnp.zeros((1,) + tuple(input_shape)))
      model = tflite.to_tflite(spec, variables, input_shape)
      stats = latency.measure_tflite(model, threads=s.latency_threads,
                                     runs=s.latency_runs,
                                     warmup=max(3, s.latency_runs // 5))
      return float(stats["median_ms"])

    return measure
  return None


def metagraph_dict(state: gram_lib.GramState) -> Dict[str, Any]:
  g = state.graph
  space = g.space
  ops = np.asarray(g.ops)
  return {
      "format": "gram_jax.MetaGraph", "version": 1,
      "space": space.to_dict(),
      "step": int(state.step), "baseline": float(state.baseline),
      "dags": [{"ops": [space.ops[int(o)] for o in ops[k]],
                "weights": np.asarray(g.weights[k]).round(8).tolist()}
               for k in range(space.num_dags)],
  }


def run_search(config: config_lib.SearchConfig, workdir: str, *,
               progress: bool = True,
               stop_after: Optional[int] = None) -> SearchResult:
  """Runs (or resumes) a GRAM search.

  Args:
    config: validated settings.
    workdir: the run directory.
    progress: show a progress bar.
    stop_after: stop after this many iterations of this call (for tests and
      benchmarks); the run stays resumable.

  Returns:
    A `SearchResult`; `spec` is the pruned architecture once the run is
    complete.
  """
  if config.search.cost == "lut":   # a table for another space: fail early
    _checked_table(config, data_lib.info(config.dataset)[0])
  resumed = prepare_workdir(config, workdir)
  ds = data_lib.load(config.dataset, data_dir=config.data_dir or None,
                     seed=config.seed)
  split = data_lib.proxy_split(ds, seed=config.seed,
                               num_train=config.proxy.num_train,
                               num_val=config.proxy.num_val,
                               per_class=config.proxy.per_class)
  space, s = config.space, config.search
  root = jax.random.key(config.seed)
  graph_key, sample_key, train_key = (jax.random.fold_in(root, i)
                                      for i in range(3))
  strategy = _strategy(s)
  state = strategy.init(mg.init(space, graph_key, init_weight=s.init_weight),
                        graph_key)

  ckpt_dir = os.path.abspath(os.path.join(workdir, "checkpoints"))
  manager = ocp.CheckpointManager(
      ckpt_dir, options=ocp.CheckpointManagerOptions(
          max_to_keep=config.keep_checkpoints, create=True))
  start = 0
  if resumed:
    restored = _restore(manager, _state_tree(state), workdir)
    if restored is not None:
      graph = state.graph.replace(weights=jnp.asarray(restored["weights"]),
                                  ops=jnp.asarray(restored["ops"]))
      state = state._replace(graph=graph,
                             baseline=jnp.asarray(restored["baseline"]),
                             step=jnp.asarray(restored["step"]))
      start = int(restored["step"])
  cand_path = os.path.join(workdir, CANDIDATES)
  records = io.read_jsonl(cand_path, "step", start)
  io.write_jsonl_atomic(cand_path, records)

  trainer = train_lib.ProxyTrainer(
      space, state.graph.ops, ds.num_classes,
      x_train=split.x_train, y_train=split.y_train, x_val=split.x_val,
      y_val=split.y_val, epochs=config.train.epochs,
      batch_size=config.train.batch_size,
      learning_rate=config.train.learning_rate,
      optimizer=config.train.optimizer, select=config.train.select)
  sample = jax.jit(strategy.sample)
  update = jax.jit(strategy.update)
  input_shape = tuple(int(d) for d in ds.image_shape)

  latency_fn = latency_cost(config, state.graph.ops, input_shape,
                            ds.num_classes)
  total = s.iterations
  end = total if stop_after is None else min(total, start + stop_after)
  bar = None
  if progress and start < end:
    from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
    bar = tqdm(total=total, initial=start, desc="GRAM search", unit="it",
               dynamic_ncols=True)
  with open(cand_path, "a") as out:
    for t in range(start, end):
      t0 = time.perf_counter()
      masks = sample(state, jax.random.fold_in(sample_key, t))
      spec = arch_lib.from_masks(space, state.graph.ops, masks,
                                 num_classes=ds.num_classes)
      cost = cost_lib.count(spec, input_shape)
      result = trainer(masks, jax.random.fold_in(train_key, t))
      latency_ms = None
      if latency_fn is None:
        tau = rewards.macs_cost(cost.macs)
      else:
        tau = latency_ms = latency_fn(masks, spec)
      r = rewards.reward(result.accuracy, tau, s.gamma)
      baseline = float(state.baseline)
      state = update(state, masks, jnp.float32(r))
      rec = {"step": t, "accuracy": result.accuracy,
             "val_loss": None if math.isnan(result.loss) else result.loss,
             "diverged": result.diverged, "macs": cost.macs,
             "params": cost.params, "cost": tau, "reward": r,
             "baseline": baseline, "advantage": r - baseline,
             "live_edges": spec.num_edges, "live_nodes": spec.num_nodes,
             "seconds": time.perf_counter() - t0,
             "edges": encode_edges(masks)}
      if latency_ms is not None:
        rec["latency_ms"] = latency_ms
      out.write(json.dumps(rec) + "\n")
      out.flush()
      records.append(rec)
      if (t + 1) % config.checkpoint_every == 0 or t + 1 == total:
        manager.save(t + 1, args=ocp.args.StandardSave(_state_tree(state)))
      if bar is not None:
        bar.set_postfix(acc=f"{result.accuracy:.3f}", reward=f"{r:.3f}",
                        beta=f"{float(state.baseline):.3f}",
                        edges=spec.num_edges, refresh=False)
        bar.update(1)
  manager.wait_until_finished()
  manager.close()
  if bar is not None:
    bar.close()

  complete = int(state.step) >= total
  spec = None
  if complete:
    spec = finish(state, records, workdir, num_classes=ds.num_classes,
                  level=s.prune_level, mode=s.prune_mode)
  return SearchResult(state=state, spec=spec, records=records,
                      complete=complete, input_shape=input_shape,
                      num_classes=ds.num_classes)


def finish(state: gram_lib.GramState, records: List[Dict[str, Any]],
           workdir: str, *, num_classes: int, level: float,
           mode: str) -> arch_lib.ArchSpec:
  """Writes metagraph.json, arch.json and the plots of a finished search."""
  io.write_json_atomic(os.path.join(workdir, METAGRAPH),
                       metagraph_dict(state))
  masks = mg.prune(state.graph, level, mode=mode)
  spec = arch_lib.from_masks(state.graph.space, state.graph.ops, masks,
                             num_classes=num_classes)
  io.write_json_atomic(os.path.join(workdir, ARCH), spec.to_dict())
  from gram_jax.report import plots  # pylint: disable=import-outside-toplevel
  plots.search_curves(records, os.path.join(workdir, "search_curves.png"))
  plots.edge_weights(state.graph, os.path.join(workdir, "edge_weights.png"))
  return spec
