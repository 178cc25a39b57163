"""`gram-jax experiment`: a paper table as one resumable command.

An experiment config (``experiments/configs/table*.py``) names a GRAM search
(or the finished search run of another experiment, for task adaptation), the
pruning levels, channel up-scaling factors, datasets and input sizes to
derive and fully train, and the recipe changes. The command runs, in
``--workdir``:

  search/                       the GRAM search (skipped with `from_workdir`)
  <dataset>[_<size>]/l<level>_x<scale>/
                                one `gram-jax train` run per derived network
  results.md, results.csv, results.json
                                one row per trained network, with the paper's
                                numbers beside ours where the config has them
  pareto.png                    top-1 vs MACs (and vs host latency)

Every stage resumes: the search from its checkpoints, a training run from
its own, and a finished network (its ``result.json``) is not trained again.

  gram-jax experiment --config experiments/configs/table1_cifar10.py:runlocal \\
      --workdir runs/table1_local
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import time
from typing import Any, Dict, List, Optional, Sequence

import jax.numpy as jnp
import numpy as np

from gram_jax import arch as arch_lib
from gram_jax import data as data_lib
from gram_jax import fulltrain
from gram_jax import io
from gram_jax import metagraph as mg
from gram_jax import run as run_lib
from gram_jax.errors import GramJaxError, parse_bool
from gram_jax.report.plots import pareto
from gram_jax.search import config as config_lib
from gram_jax.search import loop

FIELDS = (
    "name",
    "search",
    "from_workdir",
    "levels",
    "prune_mode",
    "upscales",
    "upscale_divisor",
    "datasets",
    "input_sizes",
    "recipe",
    "measure_latency",
    "latency_threads",
    "reference",
)


class ExperimentError(GramJaxError):
  """An experiment config field has a value that is not allowed."""


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A validated experiment config (see the module docstring)."""

  name: str
  search: Optional[config_lib.SearchConfig]
  from_workdir: str
  levels: tuple
  prune_mode: str
  upscales: tuple
  upscale_divisor: int
  datasets: tuple
  input_sizes: tuple
  recipe: Dict[str, Any]
  measure_latency: bool
  latency_threads: int
  reference: tuple


def _list(d, key, typ, check, allowed):
  v = d[key]
  if isinstance(v, (str, int, float)):
    v = [v]
  v = list(v)
  if not v or not all(
      isinstance(x, typ) and not isinstance(x, bool) and check(x) for x in v
  ):
    raise ExperimentError(
        f"config.{key}: {v!r} is not allowed; allowed: a "
        f"non-empty list of {allowed}"
    )
  return tuple(v)


def from_dict(d: Dict[str, Any]) -> Experiment:
  """Validates a plain dict (a config file's ``get_config().to_dict()``)."""
  config_lib.check_fields(d, FIELDS, ExperimentError)
  from_workdir = d["from_workdir"]
  if not isinstance(from_workdir, str):
    raise ExperimentError(
        "config.from_workdir: expected a path string ('' to search)"
    )
  search = None
  if not from_workdir:
    if not isinstance(d["search"], dict) or not d["search"]:
      raise ExperimentError(
          "config.search: a search config is needed when "
          "config.from_workdir is ''"
      )
    try:
      search = config_lib.SearchConfig.from_dict(d["search"])
    except GramJaxError as e:
      msg = str(e)
      raise ExperimentError(
          msg.replace("config.", "config.search.", 1)
      ) from None
  levels = _list(
      d, "levels", (int, float), lambda x: 0 <= x <= 1, "numbers in [0, 1]"
  )
  if d["prune_mode"] not in mg.PRUNE_MODES:
    raise ExperimentError(
        f"config.prune_mode: {d['prune_mode']!r} is not "
        f"allowed; allowed: {', '.join(mg.PRUNE_MODES)}"
    )
  upscales = _list(d, "upscales", (int, float), lambda x: x > 0, "numbers > 0")
  divisor = d["upscale_divisor"]
  if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
    raise ExperimentError(
        f"config.upscale_divisor: {divisor!r} is not "
        "allowed; allowed: an integer >= 1"
    )
  datasets = _list(
      d,
      "datasets",
      str,
      lambda x: x in data_lib.INFO,
      ", ".join(sorted(data_lib.INFO)),
  )
  sizes = _list(
      d, "input_sizes", int, lambda x: x >= 0, "integers >= 0 (0: the recipe's)"
  )
  recipe = d["recipe"]
  if not isinstance(recipe, dict):
    raise ExperimentError("config.recipe: expected a group of recipe fields")
  for ds in datasets:  # every recipe field must be valid for every dataset
    _recipe(ds, recipe, 0)
  threads = d["latency_threads"]
  if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
    raise ExperimentError(
        f"config.latency_threads: {threads!r} is not "
        "allowed; allowed: an integer >= 1"
    )
  reference = d["reference"]
  if not isinstance(reference, (list, tuple)) or not all(
      isinstance(r, dict) for r in reference
  ):
    raise ExperimentError(
        "config.reference: expected a list of rows "
        "(dicts) of the paper's numbers"
    )
  measure_latency = parse_bool(
      d["measure_latency"], "config.measure_latency", ExperimentError
  )
  return Experiment(
      name=str(d["name"]),
      search=search,
      from_workdir=from_workdir,
      levels=levels,
      prune_mode=d["prune_mode"],
      upscales=upscales,
      upscale_divisor=divisor,
      datasets=datasets,
      input_sizes=sizes,
      recipe=dict(recipe),
      measure_latency=measure_latency,
      latency_threads=threads,
      reference=tuple(reference),
  )


def resolve(path: str, overrides: Sequence[str]) -> Experiment:
  return from_dict(config_lib.load_overridden(path, overrides))


def _recipe(
    dataset: str, fields: Dict[str, Any], size: int
) -> fulltrain.Recipe:
  base = dataclasses.asdict(fulltrain.recipe_for(dataset))
  for key, value in fields.items():
    if key not in base:
      raise ExperimentError(
          f"config.recipe.{key}: unknown field; allowed: "
          f"{', '.join(sorted(base))}"
      )
    base[key] = tuple(value) if isinstance(base[key], tuple) else value
  if size:
    base["input_size"] = size
  try:
    return fulltrain.Recipe(**base)
  except GramJaxError as e:
    raise ExperimentError(f"config.{e}") from None


def runs(exp: Experiment) -> List[Dict[str, Any]]:
  """The networks to train: dataset, input size, level, scale, subdir."""
  out = []
  for ds in exp.datasets:
    for size in exp.input_sizes:
      for level in exp.levels:
        for scale in exp.upscales:
          sub = ds + (f"_{size}" if size else "")
          out.append({
              "dataset": ds,
              "input_size": size,
              "level": float(level),
              "upscale": float(scale),
              "dir": os.path.join(sub, f"l{level:g}_x{scale:g}"),
          })
  return out


def derive(
    graph: mg.MetaGraph,
    level: float,
    scale: float,
    *,
    mode: str,
    divisor: int,
    num_classes: int,
) -> arch_lib.ArchSpec:
  """The pruned (and up-scaled) architecture of `graph` at `level`."""
  masks = np.asarray(mg.prune(graph, jnp.float32(level), mode=mode))
  spec = arch_lib.from_masks(
      graph.space, graph.ops, masks, num_classes=num_classes
  )
  if scale != 1.0:
    spec = arch_lib.upscale(spec, scale, divisor=divisor)
  return spec


def host_latency(result: Dict[str, Any], threads: int) -> float:
  """LiteRT median ms of a trained network's TFLite export (`result` is a
  `fulltrain` result)."""
  from gram_jax.export import latency, tflite  # pylint: disable=import-outside-toplevel

  spec = arch_lib.ArchSpec.load(result["arch"])
  shape = tuple(result["input_shape"])
  variables = io.load_variables(result["variables"], spec, shape)
  model = tflite.to_tflite(spec, variables, shape)
  stats = latency.measure_tflite(model, threads=threads, runs=50, warmup=10)
  return float(stats["median_ms"])


def run_experiment(
    exp: Experiment, workdir: str, *, progress: bool = True
) -> List[Dict[str, Any]]:
  """Runs (or resumes) every stage; returns the result rows."""
  os.makedirs(workdir, exist_ok=True)
  if exp.from_workdir:
    mg_path = os.path.join(exp.from_workdir, "metagraph.json")
    if not os.path.exists(mg_path):
      raise ExperimentError(
          f"config.from_workdir: {mg_path} does not exist "
          "(finish that search first)"
      )
    graph = io.load_metagraph(mg_path)
  else:
    result = loop.run_search(
        exp.search, os.path.join(workdir, "search"), progress=progress
    )
    graph = result.state.graph
  rows = []
  plan = runs(exp)
  for i, r in enumerate(plan):
    sub = os.path.join(workdir, r["dir"])
    done = os.path.join(sub, "result.json")
    classes = data_lib.info(r["dataset"])[1]
    spec = derive(
        graph,
        r["level"],
        r["upscale"],
        mode=exp.prune_mode,
        divisor=exp.upscale_divisor,
        num_classes=classes,
    )
    recipe = _recipe(r["dataset"], exp.recipe, r["input_size"])
    res = io.read_json(done, ExperimentError) if os.path.exists(done) else {}
    # Finished once this loop added its fields: a run killed after the
    # training wrote result.json trains it again (nothing is left to train:
    # it is evaluated) and measures its latency.
    if "train_seconds" in res:
      _check_same_run(sub, spec, recipe)
    else:
      print(
          f"[{i + 1}/{len(plan)}] {r['dir']}: level {r['level']:g}, "
          f"up-scaling {r['upscale']:g}",
          flush=True,
      )
      t0 = time.time()
      res = fulltrain.run_training(
          spec, r["dataset"], sub, recipe=recipe, progress=progress
      )
      res["train_seconds"] = round(time.time() - t0, 1)
      if exp.measure_latency:
        res["latency_ms"] = host_latency(res, exp.latency_threads)
        res["latency_threads"] = exp.latency_threads
      io.write_json_atomic(done, res)
    rows.append({
        **r,
        "top1": 100 * res["top1"],
        "top5": 100 * res["top5"],
        "macs": res["macs"],
        "params": res["params"],
        "density": res["accuracy_density"],
        "latency_ms": res.get("latency_ms"),
        "input_shape": res["input_shape"],
        "train_seconds": res.get("train_seconds"),
    })
  write_results(exp, rows, workdir)
  return rows


def _check_same_run(
    sub: str, spec: arch_lib.ArchSpec, recipe: fulltrain.Recipe
) -> None:
  """A finished network is reused only if it is the one this config asks
  for (same derived architecture and recipe)."""
  old = io.read_json(os.path.join(sub, "config.json"), ExperimentError)
  want = fulltrain.adapt_spec(
      spec, num_classes=spec.num_classes, stem=recipe.stem
  ).to_dict()
  old_recipe = old.get("recipe")
  if isinstance(old_recipe, dict):
    old_recipe = fulltrain.with_recipe_defaults(old_recipe)
  if old.get("arch") != json.loads(
      json.dumps(want)
  ) or old_recipe != json.loads(json.dumps(dataclasses.asdict(recipe))):
    raise ExperimentError(
        f"--workdir: {sub} holds a network trained for another config "
        "(architecture or recipe differ, e.g. prune_mode, search or recipe "
        "fields changed); use a new --workdir or delete that directory"
    )


def _paper(exp: Experiment, row: Dict[str, Any]) -> Optional[Dict[str, Any]]:
  for ref in exp.reference:
    if all(
        ref.get(k) == row[k]
        for k in ("dataset", "level", "upscale", "input_size")
        if k in ref
    ):
      return ref
  return None


def write_results(
    exp: Experiment, rows: List[Dict[str, Any]], workdir: str
) -> None:
  """results.{md,csv,json} and pareto.png in `workdir`."""
  lines = [
      f"# {exp.name}",
      "",
      (
          "| dataset | input | level | up-scale | top-1 % | top-5 % | "
          "M MACs | K params | density | host ms | paper top-1 % | "
          "paper M MACs |"
      ),
      "|" + "---|" * 12,
  ]
  for r in rows:
    ref = _paper(exp, r) or {}
    lat = f"{r['latency_ms']:.3f}" if r.get("latency_ms") else "–"
    lines.append(
        f"| {r['dataset']} | {'x'.join(map(str, r['input_shape']))} | "
        f"{r['level']:g} | {r['upscale']:g} | {r['top1']:.2f} | "
        f"{r['top5']:.2f} | {r['macs'] / 1e6:.3f} | {r['params'] / 1e3:.1f}"
        f" | {r['density']:.2f} | {lat} | {ref.get('top1', '–')} | "
        f"{ref.get('mmacs', '–')} |"
    )
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  keys = [
      "dataset",
      "input_size",
      "level",
      "upscale",
      "top1",
      "top5",
      "macs",
      "params",
      "density",
      "latency_ms",
      "train_seconds",
      "dir",
  ]
  with open(os.path.join(workdir, "results.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
  io.write_json_atomic(
      os.path.join(workdir, "results.json"),
      {"name": exp.name, "rows": rows, "reference": list(exp.reference)},
  )
  if rows:
    pareto(
        [{**r, "name": f"{r['level']:g}x{r['upscale']:g}"} for r in rows],
        os.path.join(workdir, "pareto.png"),
    )
  print("\n".join(lines))


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
      "--config",
      required=True,
      help="experiment config (file.py or file.py:runlocal)",
  )
  run_lib.add_arguments(parser)
  parser.epilog = (
      "Override any field with --config.<field>=<value>, e.g. "
      "--config.levels=0.3,0.5 or "
      "--config.search.search.iterations=100"
  )


def run(args: argparse.Namespace, rest) -> int:
  exp = resolve(args.config, rest)
  run_experiment(exp, args.workdir, progress=not args.no_progress)
  return 0
