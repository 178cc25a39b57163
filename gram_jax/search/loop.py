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

import functools
import json
import math
import os
from typing import Any, Dict, List, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from gram_jax import arch as arch_lib
from gram_jax import cost as cost_lib
from gram_jax import data as data_lib
from gram_jax import io
from gram_jax import metagraph as mg
from gram_jax import run as run_lib
from gram_jax import train as train_lib
from gram_jax.cost import lut
from gram_jax.export import latency, tflite
from gram_jax.models import ExactNet
from gram_jax.report import plots
from gram_jax.scale import batched, distributed
from gram_jax.search import base
from gram_jax.search import config as config_lib
from gram_jax.search import gram as gram_lib
from gram_jax.search import rewards

CONFIG = "config.json"
CANDIDATES = "candidates.jsonl"
METAGRAPH = "metagraph.json"
ARCH = "arch.json"


class SearchResult(NamedTuple):
  """One search, or (``search.num_seeds > 1``) several: then `state` is
  stacked over seeds, `spec` is None, `records` holds every seed's lines and
  `seeds` one `SearchResult` per seed (its workdir is ``seed_<seed>/``)."""

  state: gram_lib.GramState
  spec: Optional[arch_lib.ArchSpec]
  records: List[Dict[str, Any]]
  complete: bool
  input_shape: tuple
  num_classes: int
  seeds: tuple = ()
  workdir: str = ""


def make_strategy(s: config_lib.GramSettings):
  """The `SearchStrategy` that `search.strategy` names, with its settings."""
  if s.strategy == "random":
    return gram_lib.random_search()
  return gram_lib.gram(
      alpha=s.alpha,
      beta0=s.beta0,
      beta_momentum=s.beta_momentum,
      normalization=s.normalization,
  )


# Fields that may differ on resume: the length of the run, and how (not
# what) it computes: batching and device count change only float rounding.
_MAY_CHANGE = ("search.iterations", "search.batch_candidates", "search.devices")


def _with_defaults(old: Dict[str, Any]) -> Dict[str, Any]:
  """A stored config with the fields added since it was written at their
  defaults."""
  return config_lib.merge_defaults(
      json.loads(json.dumps(config_lib.SearchConfig().to_dict())), old
  )


def prepare_workdir(config: config_lib.SearchConfig, workdir: str) -> bool:
  """Creates `workdir` or checks it holds a run of the same config.

  Returns True when resuming. Only ``search.iterations`` (to extend or
  shorten a run), ``search.batch_candidates`` and ``search.devices`` may
  differ; any other difference is a `ConfigError` and nothing in the
  workdir is touched.
  """
  return run_lib.prepare_workdir(
      workdir,
      config.to_dict(),
      may_change=_MAY_CHANGE,
      upgrade=_with_defaults,
      error=config_lib.ConfigError,
  )


def _state_tree(
    state: gram_lib.GramState, squeeze: bool = False
) -> Dict[str, np.ndarray]:
  """The checkpointed arrays; `squeeze` drops a seed axis of size 1, so a
  one-seed run keeps the checkpoint layout it always had."""
  tree = {
      "weights": np.asarray(state.graph.weights),
      "ops": np.asarray(state.graph.ops),
      "baseline": np.asarray(state.baseline),
      "step": np.asarray(state.step),
  }
  return {k: np.asarray(v[0]) for k, v in tree.items()} if squeeze else tree


def _from_tree(
    state: gram_lib.GramState, tree: Dict[str, np.ndarray], num_seeds: int
) -> gram_lib.GramState:
  """`state` (stacked over seeds) with the arrays of a checkpoint tree."""
  if num_seeds == 1:
    tree = {k: np.asarray(v)[None] for k, v in tree.items()}
  graph = state.graph.replace(
      weights=jnp.asarray(tree["weights"]), ops=jnp.asarray(tree["ops"])
  )
  return state._replace(
      graph=graph,
      baseline=jnp.asarray(tree["baseline"]),
      step=jnp.asarray(tree["step"]),
  )


def _stack(tree, n: int):
  return jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + jnp.shape(x)), tree)


def _index(tree, i: int):
  return jax.tree.map(lambda x: x[i], tree)


def seed_dirs(config: config_lib.SearchConfig, workdir: str) -> List[str]:
  """Where each seed's outputs go: the workdir itself for one seed."""
  n = config.search.num_seeds
  if n == 1:
    return [workdir]
  return [os.path.join(workdir, f"seed_{config.seed + i}") for i in range(n)]


def search_data(config: config_lib.SearchConfig):
  """``(shared_seed, dataset, proxy split)`` of a search with `config`.

  Seeds share the proxy split and the node ops (the supernet's layout is
  static in the program); all they draw afterwards comes from their seed.
  """
  s = config.search
  shared_seed = config.seed if s.shared_seed < 0 else s.shared_seed
  ds = data_lib.load(
      config.dataset, data_dir=config.data_dir or None, seed=shared_seed
  )
  split = data_lib.proxy_split(
      ds,
      seed=shared_seed,
      num_train=config.proxy.num_train,
      num_val=config.proxy.num_val,
      per_class=config.proxy.per_class,
  )
  return shared_seed, ds, split


def proxy_trainer(
    config: config_lib.SearchConfig, ops, num_classes: int, split
) -> train_lib.ProxyTrainer:
  """The proxy trainer a search with `config` scores its candidates with."""
  t = config.train
  return train_lib.ProxyTrainer(
      config.space,
      ops,
      num_classes,
      x_train=split.x_train,
      y_train=split.y_train,
      x_val=split.x_val,
      y_val=split.y_val,
      epochs=t.epochs,
      batch_size=t.batch_size,
      learning_rate=t.learning_rate,
      optimizer=t.optimizer,
      select=t.select,
      schedule=t.schedule,
  )


def fit_final(
    config: config_lib.SearchConfig,
    spec: arch_lib.ArchSpec,
    ds,
    *,
    seed: int,
    progress: bool = False,
    desc: str = "train",
) -> train_lib.FitResult:
  """Trains `spec` from scratch on the whole of `ds` with ``config.final``
  (the quickstart's and the sweep's final training) and tests it."""
  f = config.final
  return train_lib.fit(
      ExactNet(spec),
      ds.x_train,
      ds.y_train,
      ds.x_test,
      ds.y_test,
      epochs=f.epochs,
      batch_size=f.batch_size,
      learning_rate=f.learning_rate,
      optimizer=f.optimizer,
      seed=seed,
      progress=progress,
      desc=desc,
  )


def batched_steps(strategy):
  """Jitted ``sample(states[S], keys[S, K]) -> masks[S, K, ...]`` and
  ``update(states[S], masks[S, K, ...], rewards[S, K]) -> (states,
  baselines[S, K])``: S searches at once; each applies its K candidates'
  updates in order (`gram.update_in_order`). `run_search` drives the same
  computation through `gram.ask_tell`."""
  sample = jax.vmap(jax.vmap(strategy.sample, in_axes=(None, 0)))
  update = functools.partial(gram_lib.update_in_order, strategy.update)
  return jax.jit(sample), jax.jit(jax.vmap(update))


def candidate_keys(base_keys: jax.Array, first: int, k: int) -> jax.Array:
  """``keys[s, i] = fold_in(base_keys[s], first + i)`` for i < k.

  With ``first = t * k`` every candidate of a run has its own index, and one
  candidate per iteration draws exactly the keys it always did (the keys
  `gram.ask_tell` samples with, and those the proxy training uses).
  """
  return jax.vmap(lambda key: base.fold_in_range(key, first, k))(base_keys)


def encode_edges(masks) -> List[str]:
  """Per-DAG hex strings of the edge bits (`arch.encode_mask` of each).

  With the run's node ops this rebuilds the candidate exactly
  (`decode_edges`), so any line of candidates.jsonl can be retrained.
  """
  return [arch_lib.encode_mask(m) for m in np.asarray(masks, bool)]


def decode_edges(edges: List[str], n: int) -> np.ndarray:
  """Inverse of `encode_edges`: ``bool[K, n, n]``."""
  masks = np.zeros((len(edges), n, n), bool)
  for k, text in enumerate(edges):
    masks[k] = arch_lib.decode_mask(text, n)
  return masks


def _checked_table(config: config_lib.SearchConfig, input_shape):
  """The latency table of ``cost="lut"``, checked against the space."""
  path = config.search.lut_path
  table = lut.LatencyTable.load(path)
  lut.check_table(
      table,
      config.space,
      input_shape,
      where=path,
      space_flag="config.space",
      shape_flag="config.dataset (input shape)",
  )
  return table


def latency_cost(
    config: config_lib.SearchConfig, ops, input_shape, num_classes: int
):
  """``fn(masks, spec) -> ms`` for a latency cost, or None for ``macs``."""
  s = config.search
  if s.cost == "lut":
    table = _checked_table(config, input_shape)
    predict = jax.jit(lut.jax_predictor(table, config.space, ops, input_shape))
    return lambda masks, spec: float(predict(masks))
  if s.cost == "measured":
    del num_classes

    def measure(masks, spec):
      del masks
      # Latency does not depend on weight values: random ones will do.
      variables = ExactNet(spec).init(
          jax.random.key(0), jnp.zeros((1,) + tuple(input_shape))
      )
      model = tflite.to_tflite(spec, variables, input_shape)
      stats = latency.measure_tflite(
          model,
          threads=s.latency_threads,
          runs=s.latency_runs,
          warmup=max(3, s.latency_runs // 5),
      )
      return float(stats["median_ms"])

    return measure
  return None


def metagraph_dict(state: gram_lib.GramState) -> Dict[str, Any]:
  g = state.graph
  space = g.space
  ops = np.asarray(g.ops)
  return {
      "format": "gram_jax.MetaGraph",
      "version": 1,
      "space": space.to_dict(),
      "step": int(state.step),
      "baseline": float(state.baseline),
      "dags": [
          {
              "ops": [space.ops[int(o)] for o in ops[k]],
              "weights": np.asarray(g.weights[k]).round(8).tolist(),
          }
          for k in range(space.num_dags)
      ],
  }


def run_search(
    config: config_lib.SearchConfig,
    workdir: str,
    *,
    progress: bool = True,
    stop_after: Optional[int] = None,
) -> SearchResult:
  """Runs (or resumes) a GRAM search, or ``search.num_seeds`` of them.

  Each iteration samples ``search.candidates_per_iteration`` candidates per
  seed from the current weights, trains all of them (one after another, or
  as one vmapped program sharded over ``search.devices``: see
  docs/scale.md), and applies their updates in order. Under
  `jax.distributed` every process runs this function; they compute the same
  updates and only process 0 touches `workdir`.

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
  if config.search.cost == "lut":  # a table for another space: fail early
    _checked_table(config, data_lib.info(config.dataset)[0])
  space, s = config.space, config.search
  num_seeds, per_iter = s.num_seeds, s.candidates_per_iteration
  mode = batched.resolve_mode(s.batch_candidates, devices=s.devices)
  mesh = distributed.make_mesh(s.devices) if mode == "vmap" else None
  primary = distributed.is_primary()
  prepare_workdir(config, workdir)  # process 0 only
  dirs = seed_dirs(config, workdir)
  shared_seed, ds, split = search_data(config)
  graph_key = jax.random.fold_in(jax.random.key(shared_seed), 0)
  roots = [jax.random.key(config.seed + i) for i in range(num_seeds)]
  sample_keys = jnp.stack([jax.random.fold_in(r, 1) for r in roots])
  train_keys = jnp.stack([jax.random.fold_in(r, 2) for r in roots])
  strategy = make_strategy(s)
  state = _stack(
      strategy.init(
          mg.init(space, graph_key, init_weight=s.init_weight), graph_key
      ),
      num_seeds,
  )

  squeeze = num_seeds == 1
  # Every process takes part (process 0 reads, the others receive its
  # state); a fresh workdir has no checkpoint.
  ckpt = run_lib.Checkpoints(workdir, max_to_keep=config.keep_checkpoints)
  restored = ckpt.restore(_state_tree(state, squeeze))
  if restored is not None:
    state = _from_tree(state, restored.tree, num_seeds)

  ops = state.graph.ops[0]
  trainer = proxy_trainer(config, ops, ds.num_classes, split)
  evaluate = batched.make_evaluator(trainer, mode, mesh=mesh)
  # S seeds, each asking `per_iter` candidates a round, as one strategy.
  contract = base.jit_strategy(
      base.vmap_strategy(gram_lib.ask_tell(strategy, candidates=per_iter))
  )
  start = int(contract.rounds(state))
  input_shape = tuple(int(d) for d in ds.image_shape)

  latency_fn = latency_cost(config, ops, input_shape, ds.num_classes)
  total = s.iterations
  end = total if stop_after is None else min(total, start + stop_after)
  bar = run_lib.progress_bar(
      progress and start < end,
      total=total,
      initial=start,
      desc=("GRAM" if s.strategy == "gram" else s.strategy) + " search",
      unit="it",
  )
  # Lines past the restored step are dropped: a resumed run writes each once.
  logs = [
      run_lib.JsonlLog(
          os.path.join(d, CANDIDATES),
          key="step",
          before=start,
          tensorboard=os.path.join(d, "tensorboard"),
      )
      for d in dirs
  ]
  records = [log.records for log in logs]
  num = num_seeds * per_iter

  def score(masks, t):
    """Trains and costs round t's candidates: rewards ``[S, per_iter]``."""
    flat = masks.reshape((num,) + masks.shape[2:])
    results = evaluate(
        flat, candidate_keys(train_keys, t * per_iter, per_iter).reshape(num)
    )
    masks_np = np.asarray(masks)
    rows, rewards_ = [], np.zeros((num_seeds, per_iter), np.float32)
    for c in range(num):
      i, j = divmod(c, per_iter)
      spec = arch_lib.from_masks(
          space, ops, masks_np[i, j], num_classes=ds.num_classes
      )
      cost = cost_lib.count(spec, input_shape)
      latency_ms = None
      if latency_fn is None:
        tau = rewards.macs_cost(cost.macs)
      else:
        tau = latency_ms = latency_fn(masks_np[i, j], spec)
      r = rewards.reward(results[c].accuracy, tau, s.gamma)
      rewards_[i, j] = r
      rows.append((spec, cost, tau, latency_ms, r))
    return jnp.asarray(rewards_), (results, masks_np, rows)

  def log_round(rnd: base.Round):
    t, (results, masks_np, rows) = rnd.round, rnd.aux
    baselines = np.asarray(rnd.info)
    for c, (spec, cost, tau, latency_ms, r) in enumerate(rows):
      i, j = divmod(c, per_iter)
      res, base_ = results[c], float(baselines[i, j])
      rec = {
          "step": t,
          "accuracy": res.accuracy,
          "val_loss": None if math.isnan(res.loss) else res.loss,
          "diverged": res.diverged,
          "macs": cost.macs,
          "params": cost.params,
          "cost": tau,
          "reward": r,
          "baseline": base_,
          "advantage": r - base_,
          "live_edges": spec.num_edges,
          "live_nodes": spec.num_nodes,
          "seconds": rnd.seconds / num,
          "edges": encode_edges(masks_np[i, j]),
      }
      if per_iter > 1:
        rec["candidate"] = j
      if num_seeds > 1:
        rec["seed"] = config.seed + i
      if latency_ms is not None:
        rec["latency_ms"] = latency_ms
      logs[i].write(rec, flush=False)
    for log in logs:
      log.flush()
    if (t + 1) % config.checkpoint_every == 0 or t + 1 == total:
      ckpt.save(t + 1, _state_tree(rnd.new, squeeze))
    if bar is not None:
      accs = [res.accuracy for res in results]
      bar.set_postfix(
          acc=f"{max(accs):.3f}",
          reward=f"{float(np.max(rnd.rewards)):.3f}",
          beta=f"{float(rnd.new.baseline.mean()):.3f}",
          edges=rows[0][0].num_edges,
          refresh=False,
      )
      bar.update(1)

  try:
    state = base.run_rounds(
        contract, state, sample_keys, score, until=end, on_round=log_round
    )
  finally:
    for log in logs:
      log.close()
    ckpt.close()
    if bar is not None:
      bar.close()

  complete = int(state.step[0]) >= total * per_iter
  per_seed = []
  for i, d in enumerate(dirs):
    st = _index(state, i)
    spec = None
    if complete:
      if primary:
        spec = finish(
            st,
            records[i],
            d,
            num_classes=ds.num_classes,
            level=s.prune_level,
            mode=s.prune_mode,
        )
      else:
        spec = arch_lib.from_masks(
            space,
            ops,
            mg.prune(st.graph, s.prune_level, mode=s.prune_mode),
            num_classes=ds.num_classes,
        )
    per_seed.append(
        SearchResult(
            state=st,
            spec=spec,
            records=records[i],
            complete=complete,
            input_shape=input_shape,
            num_classes=ds.num_classes,
            workdir=d,
        )
    )
  if num_seeds == 1:
    return per_seed[0]
  return SearchResult(
      state=state,
      spec=None,
      records=[r for rs in records for r in rs],
      complete=complete,
      input_shape=input_shape,
      num_classes=ds.num_classes,
      seeds=tuple(per_seed),
      workdir=workdir,
  )


def finish(
    state: gram_lib.GramState,
    records: List[Dict[str, Any]],
    workdir: str,
    *,
    num_classes: int,
    level: float,
    mode: str,
) -> arch_lib.ArchSpec:
  """Writes metagraph.json, arch.json and the plots of a finished search."""
  io.write_json_atomic(os.path.join(workdir, METAGRAPH), metagraph_dict(state))
  masks = mg.prune(state.graph, level, mode=mode)
  spec = arch_lib.from_masks(
      state.graph.space, state.graph.ops, masks, num_classes=num_classes
  )
  io.write_json_atomic(os.path.join(workdir, ARCH), spec.to_dict())
  plots.search_curves(records, os.path.join(workdir, "search_curves.png"))
  plots.edge_weights(state.graph, os.path.join(workdir, "edge_weights.png"))
  return spec
