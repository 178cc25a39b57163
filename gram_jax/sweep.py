"""`gram-jax sweep`: a hyperparameter grid, a table and a Pareto front.

  gram-jax sweep --config experiments/configs/quickstart.py --workdir runs/sw \
      --grid gamma=0.05,0.1 --grid prune_level=0.3,0.5 --grid seed=0,1

The grid is the product of the ``--grid`` values. Points are grouped so
that as little as possible is searched:

  * points that differ only in consecutive seeds are ONE search run with
    ``search.num_seeds`` seeds (one program, vmapped over seeds);
  * points that differ only in ``prune_level`` / ``prune_mode`` share their
    search: pruning happens after it.

Every group runs in its own resumable sub-workdir ``<workdir>/runs/<name>``;
an interrupted sweep restarts where it stopped. Each point's architecture is
then trained from scratch (``--eval proxy``: the search's proxy recipe and
split, all points of a group as one batch; ``--eval final``: the config's
final recipe on the whole dataset, test accuracy) and the sweep writes
``sweep.csv``, ``sweep.md``, ``sweep.json`` and ``pareto.png`` (accuracy vs
MACs, and vs latency when the search cost is a latency).

Other methods (Single-Path NAS's lambda, ...) plug in with `register_method`.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
from typing import Any, Callable, Dict, List, NamedTuple, Optional

import jax
import numpy as np

from gram_jax import arch as arch_lib
from gram_jax import cost as cost_lib
from gram_jax import io
from gram_jax import metagraph as mg
from gram_jax import run as run_lib
from gram_jax.errors import GramJaxError
from gram_jax.report.plots import pareto
from gram_jax.scale import batched, distributed
from gram_jax.search import config as config_lib
from gram_jax.search import loop

EVALS = ("proxy", "final", "none")

# grid name -> config field, for GRAM
GRAM_ALIASES = {
    "gamma": "search.gamma",
    "alpha": "search.alpha",
    "beta0": "search.beta0",
    "beta_momentum": "search.beta_momentum",
    "prune_level": "search.prune_level",
    "prune_mode": "search.prune_mode",
    "init_weight": "search.init_weight",
    "iterations": "search.iterations",
    "strategy": "search.strategy",
    "cost": "search.cost",
    "seed": "seed",
    "shared_seed": "search.shared_seed",
    "epochs": "train.epochs",
    "learning_rate": "train.learning_rate",
    "dataset": "dataset",
}
# Fields used only after the search: points differing in them share a run.
GRAM_DERIVE = ("search.prune_level", "search.prune_mode")


class Group(NamedTuple):
  """One run of a method: its sub-workdir name, the ``--config.x=y``
  overrides it runs with, and the grid points (field -> text) it answers."""

  name: str
  overrides: List[str]
  points: List[Dict[str, str]]


class SweepMethod(NamedTuple):
  """How a search method takes part in sweeps.

  aliases: short grid names -> config fields (any dotted field also works).
  plan: ``points -> [Group]`` (batch what the method can batch).
  run: ``(config_path, overrides, group, workdir, evaluate, progress) ->
    rows``, one dict per point with at least ``accuracy`` (in [0, 1]),
    ``macs`` and ``params``, optionally ``latency_ms``, ``arch``.
  """

  aliases: Dict[str, str]
  plan: Callable[[List[Dict[str, str]]], List[Group]]
  run: Callable[..., List[Dict[str, Any]]]


METHODS: Dict[str, SweepMethod] = {}


def register_method(name: str, method: SweepMethod) -> None:
  """Makes ``gram-jax sweep --method name`` available (e.g. for Single-Path
  NAS: ``aliases={"lambda": "search.lambda_"}``, `one_run_per_point`)."""
  if name in METHODS:
    raise ValueError(f"sweep method {name!r} is already registered")
  METHODS[name] = method


def _slug(point: Dict[str, str]) -> str:
  text = ",".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(point.items()))
  return (
      "".join(c if c.isalnum() or c in "=,.-_" else "_" for c in text) or "base"
  )


def one_run_per_point(points: List[Dict[str, str]]) -> List[Group]:
  """The plan of a method that batches nothing."""
  return [
      Group(_slug(p), [f"--config.{k}={v}" for k, v in sorted(p.items())], [p])
      for p in points
  ]


def parse_grid(
    items: List[str], aliases: Dict[str, str]
) -> Dict[str, List[str]]:
  """``["gamma=0.05,0.1", ...]`` -> ``{"search.gamma": ["0.05", "0.1"]}``."""
  grid: Dict[str, List[str]] = {}
  for item in items:
    if "=" not in item:
      raise GramJaxError(
          f"--grid: {item!r} is not allowed; allowed: "
          "name=v1,v2,... (e.g. gamma=0.05,0.1)"
      )
    name, text = item.split("=", 1)
    field = aliases.get(name.strip(), name.strip())
    if "." not in field and field not in aliases.values():
      raise GramJaxError(
          f"--grid: {name!r} is not allowed; allowed: "
          f"{', '.join(sorted(aliases))} or a dotted config field"
      )
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
      raise GramJaxError(f"--grid: {name} has no values")
    if field in grid:
      raise GramJaxError(f"--grid: {name} is given twice")
    grid[field] = values
  return grid


def expand(grid: Dict[str, List[str]]) -> List[Dict[str, str]]:
  keys = sorted(grid)
  return [
      dict(zip(keys, combo))
      for combo in itertools.product(*(grid[k] for k in keys))
  ]


def gram_plan(points: List[Dict[str, str]]) -> List[Group]:
  """Groups GRAM points: shared search fields, consecutive seeds batched."""
  by_key: Dict[tuple, List[Dict[str, str]]] = {}
  for p in points:
    key = tuple(
        sorted(
            (k, v) for k, v in p.items() if k not in GRAM_DERIVE and k != "seed"
        )
    )
    by_key.setdefault(key, []).append(p)
  groups = []
  for key, pts in by_key.items():
    seeds = sorted({int(p["seed"]) for p in pts if "seed" in p})
    runs: List[List[int]] = []
    for seed in seeds:  # split into runs of consecutive seeds
      if runs and seed == runs[-1][-1] + 1:
        runs[-1].append(seed)
      else:
        runs.append([seed])
    for run in runs or [None]:
      base = dict(key)
      over = [f"--config.{k}={v}" for k, v in sorted(base.items())]
      name = _slug(base)
      if run is not None:
        over += [
            f"--config.seed={run[0]}",
            f"--config.search.num_seeds={len(run)}",
        ]
        name += (
            ("," if base else "")
            + f"seed={run[0]}"
            + (f"-{run[-1]}" if len(run) > 1 else "")
        )
      members = [p for p in pts if run is None or int(p.get("seed", -1)) in run]
      groups.append(Group(name, over, members))
  return groups


def _gram_run(
    config_path: Optional[str],
    overrides: List[str],
    group: Group,
    workdir: str,
    evaluate: str,
    progress: bool,
) -> List[Dict]:
  """Searches one group, then prunes and evaluates each of its points."""

  config = config_lib.resolve(config_path, overrides + group.overrides)
  s = config.search
  done_path = os.path.join(workdir, "points.json")
  if os.path.exists(done_path):
    with open(done_path) as f:
      cached = json.load(f)
    if cached.get("points") == group.points:
      return cached["rows"]
  result = loop.run_search(config, workdir, progress=progress)
  runs = result.seeds or (result,)
  _, ds, split = loop.search_data(config)
  input_shape = result.input_shape
  ops = runs[0].state.graph.ops
  latency_fn = loop.latency_cost(config, ops, input_shape, ds.num_classes)
  specs, masks, seeds = [], [], []
  for p in group.points:
    seed = int(p.get("seed", config.seed))
    run = runs[seed - config.seed]
    level = float(p.get("search.prune_level", s.prune_level))
    mode = p.get("search.prune_mode", s.prune_mode)
    m = mg.prune(run.state.graph, level, mode=mode)
    masks.append(np.asarray(m))
    specs.append(
        arch_lib.from_masks(config.space, ops, m, num_classes=ds.num_classes)
    )
    seeds.append(seed)
  accs: List[Optional[float]] = [None] * len(specs)
  if evaluate == "proxy":
    trainer = loop.proxy_trainer(config, ops, ds.num_classes, split)
    mode = batched.resolve_mode(s.batch_candidates, devices=s.devices)
    mesh = distributed.make_mesh(s.devices) if mode == "vmap" else None
    fn = batched.make_evaluator(trainer, mode, mesh=mesh)
    keys = jax.numpy.stack(
        [jax.random.fold_in(jax.random.key(seed), 3) for seed in seeds]
    )
    accs = [r.accuracy for r in fn(np.stack(masks), keys)]
  elif evaluate == "final":
    for i, spec in enumerate(specs):
      fitted = loop.fit_final(config, spec, ds, seed=seeds[i])
      accs[i] = fitted.test_accuracy
  rows = []
  for p, spec, m, acc in zip(group.points, specs, masks, accs):
    c = cost_lib.count(spec, input_shape)
    row = {
        "accuracy": acc,
        "macs": c.macs,
        "params": c.params,
        "nodes": spec.num_nodes,
        "edges": spec.num_edges,
    }
    if latency_fn is not None:
      row["latency_ms"] = latency_fn(m, spec)
    if distributed.is_primary():
      path = os.path.join(workdir, f"arch_{_slug(p)}.json")
      io.write_json_atomic(path, spec.to_dict())
      row["arch"] = path
    rows.append(row)
  if distributed.is_primary():
    io.write_json_atomic(done_path, {"points": group.points, "rows": rows})
  return rows


register_method("gram", SweepMethod(GRAM_ALIASES, gram_plan, _gram_run))


def run_sweep(
    config_path: Optional[str],
    overrides: List[str],
    grid_items: List[str],
    workdir: str,
    *,
    method: str = "gram",
    evaluate: str = "proxy",
    progress: bool = True,
) -> List[Dict]:
  """Runs a sweep; returns one row per grid point (also written to disk)."""
  if method not in METHODS:
    raise GramJaxError(
        f"--method: {method!r} is not allowed; allowed: "
        f"{', '.join(sorted(METHODS))}"
    )
  if evaluate not in EVALS:
    raise GramJaxError(
        f"--eval: {evaluate!r} is not allowed; allowed: {', '.join(EVALS)}"
    )
  m = METHODS[method]
  grid = parse_grid(grid_items, m.aliases)
  groups = m.plan(expand(grid))
  if method == "gram":  # validate every run's config before any work
    for g in groups:
      config_lib.resolve(config_path, overrides + g.overrides)
  primary = distributed.is_primary()
  if primary:
    os.makedirs(workdir, exist_ok=True)
    io.write_json_atomic(
        os.path.join(workdir, "sweep_config.json"),
        {
            "config": config_path,
            "overrides": overrides,
            "grid": grid,
            "method": method,
            "eval": evaluate,
            "groups": [g._asdict() for g in groups],
        },
    )
  rows = []
  for i, g in enumerate(groups):
    if progress and primary:
      print(f"[sweep {i + 1}/{len(groups)}] {g.name}", flush=True)
    sub = os.path.join(workdir, "runs", g.name)
    out = m.run(config_path, overrides, g, sub, evaluate, progress)
    for p, r in zip(g.points, out):
      rows.append({
          "name": _slug(p),
          **{k.split(".")[-1]: v for k, v in p.items()},
          **r,
          "workdir": sub,
      })
  if primary:
    write_outputs(rows, workdir, list(grid))
  return rows


def write_outputs(rows: List[Dict], workdir: str, fields: List[str]) -> None:
  """sweep.json, sweep.csv, sweep.md and pareto.png."""
  io.write_json_atomic(os.path.join(workdir, "sweep.json"), rows)
  names = [f.split(".")[-1] for f in fields]
  lat = any(r.get("latency_ms") is not None for r in rows)
  cols = (
      ["name"]
      + names
      + ["accuracy", "macs", "params", "nodes", "edges"]
      + (["latency_ms"] if lat else [])
      + ["pareto", "workdir"]
  )
  front = set()
  for key in ["macs"] + (["latency_ms"] if lat else []):
    front |= pareto_front(rows, key)
  table = [{**r, "pareto": r["name"] in front} for r in rows]
  with open(os.path.join(workdir, "sweep.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(table)

  def fmt(c, v):
    if v is None:
      return "-"
    if c == "accuracy":
      return f"{100 * v:.2f}"
    if c == "macs":
      return f"{v / 1e6:.3f}"
    if c == "latency_ms":
      return f"{v:.3f}"
    if c == "pareto":
      return "yes" if v else ""
    return str(v)

  head = [
      {"accuracy": "accuracy (%)", "macs": "M MACs"}.get(c, c)
      for c in cols
      if c != "workdir"
  ]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in table:
    lines.append(
        "| "
        + " | ".join(fmt(c, r.get(c)) for c in cols if c != "workdir")
        + " |"
    )
  with open(os.path.join(workdir, "sweep.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  evaluated = [r for r in rows if r.get("accuracy") is not None]
  if evaluated:
    pareto(
        [{**r, "top1": 100 * r["accuracy"]} for r in evaluated],
        os.path.join(workdir, "pareto.png"),
    )


def pareto_front(rows: List[Dict], key: str) -> set:
  """Names of the points no other point beats on both accuracy and `key`."""
  pts = [
      r
      for r in rows
      if r.get("accuracy") is not None and r.get(key) is not None
  ]
  front, best = set(), -1.0
  for r in sorted(pts, key=lambda r: (r[key], -r["accuracy"])):
    if r["accuracy"] > best:
      front.add(r["name"])
      best = r["accuracy"]
  return front


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--config", help="Python config file (get_config)")
  run_lib.add_arguments(
      parser, workdir_help="sweep directory; an existing one is resumed"
  )
  parser.add_argument(
      "--grid",
      action="append",
      default=[],
      help="name=v1,v2,... (repeat); names: "
      + ", ".join(sorted(GRAM_ALIASES))
      + ", or any dotted config field",
  )
  parser.add_argument(
      "--method", default="gram", help="search method (default gram)"
  )
  parser.add_argument(
      "--eval",
      default="proxy",
      choices=EVALS,
      help="how each point's architecture is scored",
  )
  distributed.add_arguments(parser)
  parser.epilog = "Fixed overrides for every point: --config.<field>=<v>."


def run(args: argparse.Namespace, rest) -> int:
  if not args.grid:
    raise GramJaxError(
        "--grid: at least one is required, e.g. --grid gamma=0.05,0.1"
    )
  distributed.initialize_from_args(args)
  rows = run_sweep(
      args.config,
      rest,
      args.grid,
      args.workdir,
      method=args.method,
      evaluate=args.eval,
      progress=not args.no_progress,
  )
  if distributed.is_primary():
    with open(os.path.join(args.workdir, "sweep.md")) as f:
      print(f.read(), end="")
    print(
        f"{len(rows)} points: {os.path.join(args.workdir, 'sweep.csv')}, "
        "sweep.md, pareto.png"
    )
  return 0
