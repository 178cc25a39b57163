"""`gram-jax ablation`: GRAM against random search at an equal budget.

The ablation the SwiftNet paper's method has to win: the same space, proxy
split, iterations, cost and gamma, one GRAM search and one random search per
seed (a seed fixes the node ops and the proxy split, so GRAM seed s and
random seed s search the very same meta-graph). Each run's network is then
derived at one MACs budget and trained with one recipe on the whole
training set:

  * ``gram / pruned``: the GRAM meta-graph pruned to the budget (the largest
    network of a fine sweep of pruning levels whose MACs fit), the paper's
    derivation [SN §3.3];
  * ``<strategy> / best-sample``: the sampled candidate with the best proxy
    reward among those within the budget (random search's natural output,
    and GRAM's for reference).

Command (one command, every stage resumes):

  gram-jax ablation --config experiments/configs/ablation_fashion_mnist.py:runlocal \
      --workdir runs/ablation_fmnist

Outputs in the workdir: ``search/<strategy>_seed<s>/`` (search runs),
``train/<strategy>_<kind>_seed<s>/`` (full trainings), ``results.md``,
``results.csv``, ``results.json``, ``ablation_curves.png`` (proxy reward and
sampled edges per iteration, mean and band over seeds) and
``weight_spread.png`` (the GRAM weights' quantiles per iteration, replayed
exactly from ``candidates.jsonl``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import time
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from gram_jax import arch as arch_lib
from gram_jax import cost as cost_lib
from gram_jax import derive
from gram_jax import experiment
from gram_jax import fulltrain
from gram_jax import io
from gram_jax import metagraph as mg
from gram_jax import run as run_lib
from gram_jax.errors import GramJaxError, parse_bool
from gram_jax.search import config as config_lib
from gram_jax.search import loop

FIELDS = (
    "name",
    "search",
    "strategies",
    "seeds",
    "max_macs",
    "prune_mode",
    "prune_step",
    "recipe",
    "measure_latency",
    "latency_threads",
)
STRATEGIES = ("gram", "random")


class AblationError(GramJaxError):
  """A bad ablation config."""


class Ablation(NamedTuple):
  name: str
  search: config_lib.SearchConfig
  strategies: Tuple[str, ...]
  seeds: Tuple[int, ...]
  max_macs: float  # 0: the median MACs of random search's samples
  prune_mode: str
  prune_step: float
  recipe: fulltrain.Recipe
  measure_latency: bool
  latency_threads: int


def _int_list(d, key, lo):
  v = d[key]
  if (
      not isinstance(v, (list, tuple))
      or not v
      or not all(
          isinstance(x, int) and not isinstance(x, bool) and x >= lo for x in v
      )
  ):
    raise AblationError(
        f"config.{key}: {v!r} is not allowed; allowed: a "
        f"non-empty list of integers >= {lo}"
    )
  if len(set(v)) != len(v):
    raise AblationError(
        f"config.{key}: {list(v)!r} repeats a value; allowed: distinct values"
    )
  return tuple(v)


def _number(d, key, ok, allowed):
  v = d[key]
  if isinstance(v, bool) or not isinstance(v, (int, float)) or not ok(v):
    raise AblationError(
        f"config.{key}: {v!r} is not allowed; allowed: {allowed}"
    )
  return v


def from_dict(d: Dict[str, Any]) -> Ablation:
  """Validates a plain dict (a config file's ``get_config().to_dict()``)."""
  config_lib.check_fields(d, FIELDS, AblationError)
  try:
    search = config_lib.SearchConfig.from_dict(d["search"])
  except GramJaxError as e:
    raise AblationError(
        str(e).replace("config.", "config.search.", 1)
    ) from None
  if search.search.num_seeds != 1:
    raise AblationError(
        f"config.search.search.num_seeds: {search.search.num_seeds} is not "
        "allowed; allowed: 1 (list the seeds in config.seeds)"
    )
  strategies = d["strategies"]
  if (
      not isinstance(strategies, (list, tuple))
      or not strategies
      or any(s not in STRATEGIES for s in strategies)
      or len(set(strategies)) != len(strategies)
  ):
    raise AblationError(
        f"config.strategies: {strategies!r} is not allowed; "
        f"allowed: distinct names from {', '.join(STRATEGIES)}"
    )
  seeds = _int_list(d, "seeds", 0)
  max_macs = _number(
      d,
      "max_macs",
      lambda v: v >= 0,
      "a number >= 0 (0: the median MACs of random search's samples)",
  )
  if d["prune_mode"] not in mg.PRUNE_MODES:
    raise AblationError(
        f"config.prune_mode: {d['prune_mode']!r} is not "
        f"allowed; allowed: {', '.join(mg.PRUNE_MODES)}"
    )
  step = _number(
      d, "prune_step", lambda v: 0 < v <= 0.5, "a number in (0, 0.5]"
  )
  if not isinstance(d["recipe"], dict):
    raise AblationError("config.recipe: expected a group of recipe fields")
  items = [
      f"--recipe.{k}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
      for k, v in d["recipe"].items()
  ]
  try:
    recipe = fulltrain.recipe_for(search.dataset, items)
  except GramJaxError as e:
    raise AblationError(
        str(e).replace("recipe.", "config.recipe.", 1)
    ) from None
  measure_latency = parse_bool(
      d["measure_latency"], "config.measure_latency", AblationError
  )
  threads = _number(
      d,
      "latency_threads",
      lambda v: isinstance(v, int) and v >= 1,
      "an integer >= 1",
  )
  return Ablation(
      name=str(d["name"]),
      search=search,
      strategies=tuple(strategies),
      seeds=seeds,
      max_macs=float(max_macs),
      prune_mode=d["prune_mode"],
      prune_step=float(step),
      recipe=recipe,
      measure_latency=measure_latency,
      latency_threads=int(threads),
  )


def resolve(path: str, overrides: Sequence[str]) -> Ablation:
  return from_dict(config_lib.load_overridden(path, overrides))


def search_config(
    abl: Ablation, strategy: str, seed: int
) -> config_lib.SearchConfig:
  """The search of one (strategy, seed): only those two fields differ."""
  return dataclasses.replace(
      abl.search,
      seed=seed,
      search=dataclasses.replace(abl.search.search, strategy=strategy),
  )


def replay_weights(
    config: config_lib.SearchConfig, records: List[Dict[str, Any]]
) -> np.ndarray:
  """``f32[T + 1, K, n, n]``: the meta-graph weights before each iteration
  and after the last, recomputed from the logged candidates and rewards.

  The search applies exactly these updates, so this needs no per-iteration
  checkpoint; `tests/test_ablation.py` checks it against the final state.
  """
  s = config.search
  shared = config.seed if s.shared_seed < 0 else s.shared_seed
  key = jax.random.fold_in(jax.random.key(shared), 0)
  strategy = loop.make_strategy(s)
  state = strategy.init(
      mg.init(config.space, key, init_weight=s.init_weight), key
  )
  n = config.space.nodes
  masks = jnp.asarray(
      np.stack([loop.decode_edges(r["edges"], n) for r in records])
  )
  rewards = jnp.asarray([r["reward"] for r in records], jnp.float32)

  def body(st, xs):
    st = strategy.update(st, xs[0], xs[1])
    return st, st.graph.weights

  _, after = jax.jit(lambda st, m, r: jax.lax.scan(body, st, (m, r)))(
      state, masks, rewards
  )
  return np.concatenate(
      [np.asarray(state.graph.weights)[None], np.asarray(after)]
  )


def budget(abl: Ablation, records: Dict[Tuple[str, int], List[Dict]]) -> float:
  """The MACs budget: the config's, or the median of random's samples (of
  all samples when random is not run)."""
  if abl.max_macs > 0:
    return abl.max_macs
  pool = [
      r["macs"]
      for (strategy, _), rs in records.items()
      for r in rs
      if strategy == "random" or "random" not in abl.strategies
  ]
  return float(np.median(pool))


def best_sample(space, ops, records, max_macs: float, num_classes: int):
  """The best-rewarded logged candidate within `max_macs` (ties: earliest)."""
  ok = [r for r in records if r["macs"] <= max_macs]
  if not ok:
    raise AblationError(
        f"config.max_macs: {max_macs:g} is below every "
        "sampled candidate's MACs; raise it"
    )
  best = max(ok, key=lambda r: (r["reward"], -r["step"]))
  masks = loop.decode_edges(best["edges"], space.nodes)
  spec = arch_lib.from_masks(space, ops, masks, num_classes=num_classes)
  return spec, best


def pruned(
    graph: mg.MetaGraph,
    max_macs: float,
    *,
    mode: str,
    step: float,
    input_shape,
    num_classes: int,
):
  """The meta-graph pruned to the largest network within `max_macs`."""
  levels = np.round(np.arange(0.0, 1.0 + 1e-9, step), 6)
  rows = derive.profile(
      graph, levels, input_shape=input_shape, num_classes=num_classes, mode=mode
  )
  chosen = derive.select(rows, max_macs=max_macs)
  return chosen["spec"], chosen["level"]


def run_ablation(
    abl: Ablation,
    workdir: str,
    *,
    progress: bool = True,
    searches_only: bool = False,
) -> List[Dict[str, Any]]:
  """Runs (or resumes) every search and training; returns the result rows.

  With `searches_only` it stops after the searches (returns no rows): the
  searches of one workdir can then run as several processes or machines
  (e.g. ``--config.strategies=gram`` and ``--config.strategies=random``),
  and a last call without it derives, trains and tabulates.
  """
  os.makedirs(workdir, exist_ok=True)
  if not searches_only:
    io.write_json_atomic(
        os.path.join(workdir, "ablation.json"),
        {
            "name": abl.name,
            "strategies": list(abl.strategies),
            "seeds": list(abl.seeds),
            "max_macs": abl.max_macs,
            "prune_mode": abl.prune_mode,
            "prune_step": abl.prune_step,
            "recipe": dataclasses.asdict(abl.recipe),
            "search": abl.search.to_dict(),
        },
    )
  results, records = {}, {}
  for strategy in abl.strategies:
    for seed in abl.seeds:
      cfg = search_config(abl, strategy, seed)
      sub = os.path.join(workdir, "search", f"{strategy}_seed{seed}")
      print(f"search {strategy} seed {seed}: {sub}", flush=True)
      res = loop.run_search(cfg, sub, progress=progress)
      results[strategy, seed], records[strategy, seed] = res, res.records
  if searches_only:
    return []
  limit = budget(abl, records)
  print(f"MACs budget: {limit:.0f}", flush=True)
  rows = []
  for (strategy, seed), res in results.items():
    graph = res.state.graph
    kinds = []
    if strategy != "random":
      spec, level = pruned(
          graph,
          limit,
          mode=abl.prune_mode,
          step=abl.prune_step,
          input_shape=res.input_shape,
          num_classes=res.num_classes,
      )
      kinds.append(("pruned", spec, {"level": level}))
    spec, best = best_sample(
        graph.space, graph.ops, res.records, limit, res.num_classes
    )
    kinds.append((
        "best-sample",
        spec,
        {
            "step": best["step"],
            "proxy_reward": best["reward"],
            "proxy_accuracy": best["accuracy"],
        },
    ))
    for kind, spec, extra in kinds:
      sub = os.path.join(workdir, "train", f"{strategy}_{kind}_seed{seed}")
      done = os.path.join(sub, "result.json")
      if os.path.exists(done):
        out = io.read_json(done, AblationError)
        if out.get("arch_json") != json.loads(json.dumps(spec.to_dict())):
          raise AblationError(
              f"{sub}: holds a network trained for another derivation "
              "(search or budget changed); use a new --workdir"
          )
      else:
        print(
            f"train {strategy} / {kind} seed {seed}: "
            f"{cost_lib.count(spec, res.input_shape).macs} MACs",
            flush=True,
        )
        t0 = time.time()
        out = fulltrain.run_training(
            spec,
            abl.search.dataset,
            sub,
            recipe=abl.recipe,
            data_dir=abl.search.data_dir or None,
            progress=progress,
        )
        out["train_seconds"] = round(time.time() - t0, 1)
        out["arch_json"] = spec.to_dict()
        if abl.measure_latency:
          out["latency_ms"] = experiment.host_latency(out, abl.latency_threads)
        io.write_json_atomic(done, out)
      rows.append({
          "strategy": strategy,
          "kind": kind,
          "seed": seed,
          "top1": 100 * out["top1"],
          "macs": out["macs"],
          "params": out["params"],
          "latency_ms": out.get("latency_ms"),
          "edges": spec.num_edges,
          "nodes": spec.num_nodes,
          **extra,
      })
  write_results(abl, rows, limit, records, workdir)
  return rows


def _mean_std(values):
  v = np.asarray(values, np.float64)
  return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def summarise(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
  """Mean and standard deviation over seeds of each (strategy, kind)."""
  out = []
  for key in dict.fromkeys((r["strategy"], r["kind"]) for r in rows):
    rs = [r for r in rows if (r["strategy"], r["kind"]) == key]
    s = {"strategy": key[0], "kind": key[1], "n": len(rs)}
    for field in ("top1", "macs", "params", "latency_ms"):
      vals = [r[field] for r in rs if r.get(field) is not None]
      if vals:
        s[field], s[field + "_std"] = _mean_std(vals)
    out.append(s)
  return out


def paired(
    rows: List[Dict[str, Any]], a: Tuple[str, str], b: Tuple[str, str]
) -> Optional[Dict[str, float]]:
  """Per-seed difference of top-1 between two (strategy, kind) rows: mean,
  standard error, and the number of seeds where `a` wins."""
  by = {(r["strategy"], r["kind"], r["seed"]): r["top1"] for r in rows}
  seeds = sorted({r["seed"] for r in rows})
  d = [
      by[a + (s,)] - by[b + (s,)]
      for s in seeds
      if a + (s,) in by and b + (s,) in by
  ]
  if not d:
    return None
  mean, std = _mean_std(d)
  return {
      "mean": mean,
      "sem": std / math.sqrt(len(d)),
      "n": len(d),
      "wins": int(sum(x > 0 for x in d)),
  }


def write_results(abl: Ablation, rows, limit, records, workdir) -> None:
  summary = summarise(rows)
  diffs = {}
  if "gram" in abl.strategies and "random" in abl.strategies:
    for kind in ("pruned", "best-sample"):
      p = paired(rows, ("gram", kind), ("random", "best-sample"))
      if p:
        diffs[f"gram/{kind} - random/best-sample"] = p
  io.write_json_atomic(
      os.path.join(workdir, "results.json"),
      {
          "name": abl.name,
          "max_macs": limit,
          "rows": rows,
          "summary": summary,
          "paired_top1_difference": diffs,
      },
  )
  fields = [
      "strategy",
      "kind",
      "seed",
      "top1",
      "macs",
      "params",
      "latency_ms",
      "edges",
      "nodes",
      "level",
      "step",
      "proxy_reward",
      "proxy_accuracy",
  ]
  with open(os.path.join(workdir, "results.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
  seeds = ", ".join(map(str, abl.seeds))
  lines = [
      f"# {abl.name}",
      "",
      (
          f"{abl.search.dataset}, {abl.search.search.iterations} iterations "
          f"per search, seeds {seeds}; MACs budget {limit / 1e6:.3f} M; "
          f"full training: {abl.recipe.epochs} epochs, "
          f"{abl.recipe.optimizer} lr {abl.recipe.learning_rate:g}, "
          f"batch {abl.recipe.batch_size}; top-1 on the test split."
      ),
      "",
      "| strategy | network | seeds | top-1 % | M MACs | K params | host ms |",
      "|---|---|---|---|---|---|---|",
  ]
  for s in summary:
    lat = (
        f"{s['latency_ms']:.3f} ± {s['latency_ms_std']:.3f}"
        if "latency_ms" in s
        else ""
    )
    lines.append(
        f"| {s['strategy']} | {s['kind']} | {s['n']} | "
        f"{s['top1']:.2f} ± {s['top1_std']:.2f} | "
        f"{s['macs'] / 1e6:.3f} ± {s['macs_std'] / 1e6:.3f} | "
        f"{s['params'] / 1e3:.1f} | {lat} |"
    )
  for name, p in diffs.items():
    lines += [
        "",
        (
            f"{name}: {p['mean']:+.2f} ± {p['sem']:.2f} points "
            f"(mean ± standard error over {p['n']} paired seeds; "
            f"{p['wins']} of {p['n']} seeds positive)"
        ),
    ]
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))
  plot_curves(records, os.path.join(workdir, "ablation_curves.png"))
  spreads = {}
  for (strategy, seed), recs in records.items():
    if strategy != "random" and recs:
      spreads[seed] = replay_weights(search_config(abl, strategy, seed), recs)
  if spreads:
    plot_weight_spread(spreads, os.path.join(workdir, "weight_spread.png"))


def _band(series: List[np.ndarray], window: int):
  from gram_jax.report.plots import smooth  # pylint: disable=import-outside-toplevel

  t = min(len(s) for s in series)
  a = np.stack([smooth(s[:t], window) for s in series])
  return np.arange(t), a.mean(0), a.min(0), a.max(0)


def plot_curves(records, path: str, window: int = 10) -> None:
  """Proxy reward and sampled edges per iteration: mean line, min-max band
  over seeds (rolling mean over `window` iterations), one colour per
  strategy."""
  from gram_jax.report.plots import pyplot  # pylint: disable=import-outside-toplevel

  plt = pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  for strategy in dict.fromkeys(s for s, _ in records):
    runs = [rs for (s, _), rs in records.items() if s == strategy and rs]
    if not runs:
      continue
    for ax, field in zip(axes, ("reward", "live_edges")):
      x, mean, lo, hi = _band(
          [np.asarray([r[field] for r in rs], float) for rs in runs], window
      )
      (line,) = ax.plot(x, mean, label=f"{strategy} ({len(runs)} seeds)")
      ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)
  axes[0].set(
      xlabel="iteration",
      ylabel=f"proxy reward (mean of {window})",
      title="Proxy reward of the sampled candidates",
  )
  axes[1].set(
      xlabel="iteration",
      ylabel=f"edges (mean of {window})",
      title="Edges of the sampled candidates",
  )
  axes[0].legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_weight_spread(spreads: Dict[int, np.ndarray], path: str) -> None:
  """Quantiles of the edge weights per iteration (one line style per seed)."""
  from gram_jax.report.plots import pyplot  # pylint: disable=import-outside-toplevel

  plt = pyplot()
  fig, ax = plt.subplots(figsize=(6, 3.8))
  qs = (0.05, 0.25, 0.5, 0.75, 0.95)
  colors = ["#c6dbef", "#6baed6", "#08306b", "#6baed6", "#c6dbef"]
  for i, (seed, w) in enumerate(sorted(spreads.items())):
    n = w.shape[-1]
    rows, cols = np.triu_indices(n, 1)
    flat = w[:, :, rows, cols].reshape(len(w), -1)
    quant = np.quantile(flat, qs, axis=1)
    style = ["-", "--", ":", "-."][i % 4]
    for q, c, values in zip(qs, colors, quant):
      ax.plot(
          values,
          style,
          color=c,
          lw=1.2,
          label=f"q{int(q * 100)}" if i == 0 else None,
      )
  ax.set(
      xlabel="iteration",
      ylabel="edge weight (sampling probability)",
      title="GRAM edge weights: quantiles per iteration",
      ylim=(0, 1),
  )
  ax.legend(fontsize=8, ncol=5, loc="lower center")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
      "--config",
      required=True,
      help="ablation config (file.py or file.py:runlocal)",
  )
  run_lib.add_arguments(parser)
  parser.add_argument(
      "--searches-only",
      action="store_true",
      help=(
          "stop after the searches (run strategies or seeds "
          "as separate processes, then once without this flag)"
      ),
  )
  parser.epilog = (
      "Override any field with --config.<field>=<value>, e.g. "
      "--config.seeds=0,1 or "
      "--config.search.search.iterations=100"
  )


def run(args: argparse.Namespace, rest) -> int:
  abl = resolve(args.config, rest)
  run_ablation(
      abl,
      args.workdir,
      progress=not args.no_progress,
      searches_only=args.searches_only,
  )
  return 0
