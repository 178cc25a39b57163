"""``gram-jax compare``: SwiftNet candidates against baselines, side by side.

  gram-jax compare --config experiments/configs/compare_digits.py \\
      --workdir runs/compare [--config.<field>=<value> ...]

Every model (SwiftNet candidates from arch.json files or from a GRAM
search workdir at several pruning levels, and registered baselines such as
``mobilenet_v2@0.35``) is trained with the same recipe on the same data
(`gram_jax.fulltrain`), exported to float32 TFLite and timed on this host
with LiteRT (`gram_jax.export.latency`). The workdir holds one training
workdir per model under ``models/<name>/`` (with ``model.tflite`` and
``latency.json``) and the comparison: ``comparison.md``, ``.csv``,
``.json`` and ``comparison.png`` (top-1 vs MACs and vs latency).

A model whose ``result.json`` and ``latency.json`` exist is not trained or
timed again, so a killed comparison resumes where it stopped and adding a
model to the config only trains that one. A finished model trained with a
different dataset or recipe is an error (use a new --workdir).

Definitions (also in docs/baselines.md):

  * accuracy density: top-1 (%) per million MACs [SN Table 1];
  * similar accuracy: a baseline is *similar* to a SwiftNet candidate when
    their top-1 differ by at most ``similar_points`` percentage points
    (config, default 1.0). The *matched* baseline is the fastest similar
    one (lowest median latency);
  * latency ratio: matched baseline latency / SwiftNet latency (> 1: the
    SwiftNet is faster; the paper's "2.42x faster at similar accuracy");
  * density ratio: SwiftNet density / matched baseline density, and in the
    summary the best SwiftNet density over the best baseline density (the
    paper's "2.15x accuracy density").
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
from typing import Any, Dict, List, Sequence, Tuple

from gram_jax import fulltrain
from gram_jax import io
from gram_jax.errors import GramJaxError

ROWS = ("name", "kind", "top1", "top5", "macs", "params", "density",
        "latency_ms", "latency_p90_ms", "tflite_max_abs_diff",
        "similar_baseline", "latency_ratio", "density_ratio")


@dataclasses.dataclass(frozen=True)
class Candidate:
  """One model of the comparison."""
  name: str
  kind: str                        # "swiftnet" | "baseline"
  arch: Any = None                 # ArchSpec (swiftnet)
  model: str = ""                  # registry name (baseline)
  width: float = 1.0
  source: str = ""                 # where it came from, for the table


@dataclasses.dataclass(frozen=True)
class CompareConfig:
  """A validated comparison config (see experiments/configs/compare_*)."""
  dataset: str
  data_dir: str
  recipe: fulltrain.Recipe
  candidates: Tuple[Candidate, ...]
  threads: int
  runs: int
  warmup: int
  similar_points: float
  raw: Dict[str, Any]


def _field(d: Dict[str, Any], key: str, where: str):
  if key not in d:
    raise GramJaxError(f"config.{where}{key}: missing")
  return d[key]


def parse_config(d: Dict[str, Any]) -> CompareConfig:
  """Validates a plain config dict (everything checked before any work)."""
  from gram_jax import data as data_lib  # pylint: disable=import-outside-toplevel
  from gram_jax.models import registry  # pylint: disable=import-outside-toplevel
  allowed = {"dataset", "data_dir", "recipe", "swiftnet", "baselines",
             "latency", "similar_points"}
  for key in d:
    if key not in allowed:
      raise GramJaxError(f"config.{key}: unknown field; allowed: "
                         f"{', '.join(sorted(allowed))}")
  dataset = _field(d, "dataset", "")
  if dataset not in data_lib.DATASETS:
    raise GramJaxError(f"config.dataset: {dataset!r} is not allowed; "
                       f"allowed: {', '.join(data_lib.DATASETS)}")
  recipe_over = dict(d.get("recipe") or {})
  fields = {f.name for f in dataclasses.fields(fulltrain.Recipe)}
  for key in recipe_over:
    if key not in fields:
      raise GramJaxError(f"config.recipe.{key}: unknown field; allowed: "
                         f"{', '.join(sorted(fields))}")
  base = dataclasses.asdict(fulltrain.RECIPES.get(dataset,
                                                  fulltrain.Recipe()))
  base.update({k: tuple(v) if isinstance(v, list) else v
               for k, v in recipe_over.items()})
  try:
    recipe = fulltrain.Recipe(**base)
  except TypeError as e:
    raise GramJaxError(f"config.recipe: {e}") from None

  cands: List[Candidate] = []
  sw = dict(d.get("swiftnet") or {})
  cands += _swiftnet_candidates(sw, dataset)
  for i, item in enumerate(d.get("baselines") or ()):
    where = f"config.baselines[{i}]"
    if not isinstance(item, str) or not item:
      raise GramJaxError(f"{where}: {item!r} is not allowed; allowed: "
                         "'name' or 'name@width', e.g. mobilenet_v2@0.35")
    name, _, w = item.partition("@")
    try:
      width = float(w) if w else 1.0
    except ValueError:
      raise GramJaxError(f"{where}: width {w!r} is not a number") from None
    if name not in registry.MODELS:
      raise GramJaxError(f"{where}: model {name!r} is not allowed; "
                         f"allowed: {', '.join(sorted(registry.MODELS))}")
    if not width > 0 or not math.isfinite(width):
      raise GramJaxError(f"{where}: width {w!r} is not allowed; allowed: "
                         "a number > 0")
    cands.append(Candidate(f"{name}-{width:g}", "baseline", model=name,
                           width=width, source=item))
  if not any(c.kind == "swiftnet" for c in cands):
    raise GramJaxError("config.swiftnet: no SwiftNet candidate; set "
                       "swiftnet.archs or swiftnet.search_workdir")
  if not any(c.kind == "baseline" for c in cands):
    raise GramJaxError("config.baselines: empty; allowed: names such as "
                       "mobilenet_v2@0.35, fbnet_96_035_1")
  names = [c.name for c in cands]
  for n in names:
    if names.count(n) > 1:
      raise GramJaxError(f"config: two models are named {n!r}; list each "
                         "once")
  lat = dict(d.get("latency") or {})
  for key in lat:
    if key not in ("threads", "runs", "warmup"):
      raise GramJaxError(f"config.latency.{key}: unknown field; allowed: "
                         "runs, threads, warmup")
  threads, runs, warmup = (lat.get("threads", 1), lat.get("runs", 50),
                           lat.get("warmup", 10))
  for key, value, lo in (("threads", threads, 1), ("runs", runs, 1),
                         ("warmup", warmup, 0)):
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
      raise GramJaxError(f"config.latency.{key}: {value!r} is not allowed; "
                         f"allowed: an integer >= {lo}")
  similar = d.get("similar_points", 1.0)
  if isinstance(similar, bool) or not isinstance(similar, (int, float)) \
      or not similar >= 0:
    raise GramJaxError(f"config.similar_points: {similar!r} is not allowed; "
                       "allowed: a number >= 0 (percentage points)")
  return CompareConfig(dataset, d.get("data_dir") or "", recipe,
                       tuple(cands), threads, runs, warmup, float(similar),
                       d)


def _swiftnet_candidates(sw: Dict[str, Any], dataset: str
                         ) -> List[Candidate]:
  from gram_jax import arch as arch_lib  # pylint: disable=import-outside-toplevel
  from gram_jax import data as data_lib  # pylint: disable=import-outside-toplevel
  from gram_jax import derive  # pylint: disable=import-outside-toplevel
  allowed = {"archs", "search_workdir", "prune_levels", "prune_mode",
             "upscale"}
  for key in sw:
    if key not in allowed:
      raise GramJaxError(f"config.swiftnet.{key}: unknown field; allowed: "
                         f"{', '.join(sorted(allowed))}")
  upscale = sw.get("upscale", 1.0)
  if isinstance(upscale, bool) or not isinstance(upscale, (int, float)) \
      or not upscale > 0:
    raise GramJaxError(f"config.swiftnet.upscale: {upscale!r} is not "
                       "allowed; allowed: a number > 0")
  out = []
  for i, path in enumerate(sw.get("archs") or ()):
    if not os.path.isfile(path):
      raise GramJaxError(f"config.swiftnet.archs[{i}]: {path}: no such file")
    spec = arch_lib.ArchSpec.load(path)
    if upscale != 1.0:
      spec = arch_lib.upscale(spec, upscale)
    stem = os.path.splitext(os.path.basename(path))[0]
    out.append(Candidate(f"swiftnet-{stem}", "swiftnet", arch=spec,
                         source=path))
  wd = sw.get("search_workdir") or ""
  levels = tuple(sw.get("prune_levels") or ())
  if wd:
    graph_path = os.path.join(wd, "metagraph.json")
    if not os.path.isfile(graph_path):
      raise GramJaxError(f"config.swiftnet.search_workdir: {wd} holds no "
                         "metagraph.json (run gram-jax search there first)")
    if not levels:
      raise GramJaxError("config.swiftnet.prune_levels: empty; allowed: "
                         "levels in [0, 1], e.g. (0.3, 0.4, 0.5)")
    for lv in levels:
      if isinstance(lv, bool) or not isinstance(lv, (int, float)) \
          or not 0 <= lv <= 1:
        raise GramJaxError(f"config.swiftnet.prune_levels: {lv!r} is not "
                           "allowed; allowed: numbers in [0, 1]")
    mode = sw.get("prune_mode", "threshold")
    from gram_jax import metagraph as mg  # pylint: disable=import-outside-toplevel
    if mode not in mg.PRUNE_MODES:
      raise GramJaxError(f"config.swiftnet.prune_mode: {mode!r} is not "
                         f"allowed; allowed: {', '.join(mg.PRUNE_MODES)}")
    graph = io.load_metagraph(graph_path)
    shape, classes = data_lib.info(dataset)
    rows = derive.profile(graph, levels, input_shape=shape,
                          num_classes=classes, mode=mode)
    for lv, row in zip(levels, rows):
      spec = row["spec"]
      if upscale != 1.0:
        spec = arch_lib.upscale(spec, upscale)
      out.append(Candidate(f"swiftnet-L{float(lv):.2f}", "swiftnet",
                           arch=spec, source=f"{wd} level {lv:g}"))
  elif levels:
    raise GramJaxError("config.swiftnet.prune_levels: set "
                       "swiftnet.search_workdir too")
  return out


# --- running ------------------------------------------------------------------


def _network_config(c: Candidate, cfg: CompareConfig) -> Dict[str, Any]:
  """The network part of the model's config.json, as fulltrain writes it."""
  from gram_jax import data as data_lib  # pylint: disable=import-outside-toplevel
  classes = data_lib.info(cfg.dataset)[1]
  if c.kind == "swiftnet":
    spec = fulltrain.adapt_spec(c.arch, num_classes=classes,
                                stem=cfg.recipe.stem)
    return {"arch": spec.to_dict()}
  return {"model": {"name": c.model, "width": float(c.width),
                    "num_classes": classes}}


def _check_finished(c: Candidate, model_dir: str, cfg: CompareConfig
                    ) -> bool:
  """True when the model is trained and timed; raises if trained otherwise."""
  result_path = os.path.join(model_dir, "result.json")
  config_path = os.path.join(model_dir, "config.json")
  if os.path.exists(config_path):
    with open(config_path) as f:
      old = json.load(f)
    want = json.loads(json.dumps(
        {"dataset": cfg.dataset, "recipe": dataclasses.asdict(cfg.recipe),
         **_network_config(c, cfg)}))
    from gram_jax.search.config import diff  # pylint: disable=import-outside-toplevel
    d = diff({k: old.get(k) for k in want}, want)
    if d:
      raise GramJaxError(f"{d[0]}: {model_dir} was trained with {d[1]!r}, "
                         f"this config has {d[2]!r}; use a new --workdir")
  if not (os.path.exists(result_path) and os.path.exists(
      os.path.join(model_dir, "latency.json"))):
    return False
  with open(result_path) as f:
    return bool(json.load(f).get("complete"))


def _train(c: Candidate, cfg: CompareConfig, model_dir: str,
           progress: bool) -> Dict[str, Any]:
  kw = dict(recipe=cfg.recipe, data_dir=cfg.data_dir or None,
            progress=progress)
  if c.kind == "swiftnet":
    return fulltrain.run_training(c.arch, cfg.dataset, model_dir, **kw)
  return fulltrain.run_model_training(c.model, cfg.dataset, model_dir,
                                      width=c.width, **kw)


def _module(c: Candidate, result: Dict[str, Any]):
  from gram_jax import arch as arch_lib  # pylint: disable=import-outside-toplevel
  from gram_jax.models import ExactNet, registry  # pylint: disable=import-outside-toplevel
  if c.kind == "swiftnet":
    return ExactNet(arch_lib.ArchSpec.load(result["arch"]))
  with open(result["model_json"]) as f:
    desc = json.load(f)
  return registry.build(desc["name"], num_classes=desc["num_classes"],
                        width=desc["width"])


def _export_and_time(c: Candidate, cfg: CompareConfig, model_dir: str,
                     result: Dict[str, Any]) -> Dict[str, Any]:
  import numpy as np  # pylint: disable=import-outside-toplevel
  from gram_jax.export import latency, tflite  # pylint: disable=import-outside-toplevel
  shape = tuple(result["input_shape"])
  module = _module(c, result)
  variables = io.load_module_variables(result["variables"], module, shape)

  def forward(x):
    return module.apply(variables, x, train=False)

  model = tflite.function_to_tflite(forward, (1,) + shape)
  path = os.path.join(model_dir, "model.tflite")
  tflite.write_tflite(path, model)
  x = np.random.default_rng(0).standard_normal((4,) + shape).astype(
      np.float32)
  import jax  # pylint: disable=import-outside-toplevel
  diff = float(np.max(np.abs(latency.run_tflite(model, x)
                             - np.asarray(jax.jit(forward)(x)))))
  stats = latency.measure_tflite(path, threads=cfg.threads, runs=cfg.runs,
                                 warmup=cfg.warmup)
  stats["tflite_max_abs_diff"] = diff
  io.write_json_atomic(os.path.join(model_dir, "latency.json"), stats)
  return stats


def run_compare(cfg: CompareConfig, workdir: str, *,
                progress: bool = True) -> Dict[str, Any]:
  """Trains, exports and times every model (resuming), writes the table."""
  os.makedirs(os.path.join(workdir, "models"), exist_ok=True)
  io.write_json_atomic(os.path.join(workdir, "config.json"),
                       json.loads(json.dumps(cfg.raw, default=list)))
  rows = []
  for i, c in enumerate(cfg.candidates):
    model_dir = os.path.join(workdir, "models", c.name)
    done = _check_finished(c, model_dir, cfg)
    print(f"[{i + 1}/{len(cfg.candidates)}] {c.name}: "
          f"{'finished before' if done else 'training'}", flush=True)
    if done:
      with open(os.path.join(model_dir, "result.json")) as f:
        result = json.load(f)
      with open(os.path.join(model_dir, "latency.json")) as f:
        stats = json.load(f)
    else:
      result = _train(c, cfg, model_dir, progress)
      stats = _export_and_time(c, cfg, model_dir, result)
    rows.append(_row(c, result, stats))
  rows = match_baselines(rows, cfg.similar_points)
  summary = summarise(rows)
  out = {"dataset": cfg.dataset, "recipe": dataclasses.asdict(cfg.recipe),
         "similar_points": cfg.similar_points,
         "latency": {"threads": cfg.threads, "runs": cfg.runs,
                     "warmup": cfg.warmup,
                     "machine": stats.get("machine"),
                     "versions": stats.get("versions")},
         "rows": rows, "summary": summary}
  out = json.loads(json.dumps(out, default=list))
  write_outputs(out, workdir)
  return out


def _row(c: Candidate, result: Dict[str, Any], stats: Dict[str, Any]
         ) -> Dict[str, Any]:
  top1 = 100.0 * result["top1"]
  return {"name": c.name, "kind": c.kind, "source": c.source,
          "top1": top1, "top5": 100.0 * result["top5"],
          "macs": int(result["macs"]), "params": int(result["params"]),
          "density": top1 / (result["macs"] / 1e6) if result["macs"]
                     else math.inf,
          "latency_ms": stats["median_ms"], "latency_p90_ms": stats["p90_ms"],
          "tflite_max_abs_diff": stats.get("tflite_max_abs_diff"),
          "input_shape": result["input_shape"]}


def match_baselines(rows: List[Dict[str, Any]], similar_points: float
                    ) -> List[Dict[str, Any]]:
  """Adds ``similar_baseline``, ``latency_ratio`` and ``density_ratio`` to
  each SwiftNet row (None when no baseline is within `similar_points`)."""
  bases = [r for r in rows if r["kind"] == "baseline"]
  out = []
  for r in rows:
    r = dict(r, similar_baseline=None, latency_ratio=None,
             density_ratio=None)
    if r["kind"] == "swiftnet":
      near = [b for b in bases
              if abs(b["top1"] - r["top1"]) <= similar_points + 1e-9]
      if near:
        b = min(near, key=lambda b: (b["latency_ms"], b["name"]))
        r["similar_baseline"] = b["name"]
        r["latency_ratio"] = b["latency_ms"] / r["latency_ms"]
        r["density_ratio"] = r["density"] / b["density"]
    out.append(r)
  return out


def summarise(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
  """Best densities and the best latency ratio at similar accuracy."""
  sw = [r for r in rows if r["kind"] == "swiftnet"]
  bs = [r for r in rows if r["kind"] == "baseline"]
  best_sw = max(sw, key=lambda r: r["density"])
  best_b = max(bs, key=lambda r: r["density"])
  ratios = [r for r in sw if r["latency_ratio"] is not None]
  best_ratio = max(ratios, key=lambda r: r["latency_ratio"]) if ratios \
      else None
  return {
      "best_swiftnet_density": {"name": best_sw["name"],
                                "density": best_sw["density"]},
      "best_baseline_density": {"name": best_b["name"],
                                "density": best_b["density"]},
      "density_ratio_best": best_sw["density"] / best_b["density"],
      "latency_ratio_best": None if best_ratio is None else {
          "swiftnet": best_ratio["name"],
          "baseline": best_ratio["similar_baseline"],
          "ratio": best_ratio["latency_ratio"]},
  }


# --- outputs ------------------------------------------------------------------


def _fmt(v, digits=2):
  if v is None:
    return "-"
  if isinstance(v, float):
    return f"{v:.{digits}f}"
  return str(v)


def markdown(out: Dict[str, Any]) -> str:
  """The comparison table as Markdown."""
  lines = [f"Comparison on {out['dataset']} ({out['recipe']['epochs']} "
           f"epochs, input {'x'.join(map(str, out['rows'][0]['input_shape']))}"
           f"); latency: LiteRT float32, {out['latency']['threads']} "
           f"thread(s), median of {out['latency']['runs']} runs on this host."
           f" Similar accuracy: within {out['similar_points']:g} points.",
           "",
           "| model | kind | top-1 % | MACs (M) | params (M) | density "
           "(%/M-MACs) | latency (ms) | similar baseline | latency ratio | "
           "density ratio |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for r in out["rows"]:
    lines.append(
        f"| {r['name']} | {r['kind']} | {r['top1']:.2f} | "
        f"{r['macs'] / 1e6:.3f} | {r['params'] / 1e6:.3f} | "
        f"{_fmt(r['density'])} | {r['latency_ms']:.3f} | "
        f"{r['similar_baseline'] or '-'} | {_fmt(r['latency_ratio'])} | "
        f"{_fmt(r['density_ratio'])} |")
  s = out["summary"]
  lines += ["", f"Best density: {s['best_swiftnet_density']['name']} "
            f"{s['best_swiftnet_density']['density']:.2f} vs "
            f"{s['best_baseline_density']['name']} "
            f"{s['best_baseline_density']['density']:.2f} "
            f"({s['density_ratio_best']:.2f}x)."]
  lr = s["latency_ratio_best"]
  lines.append(f"Largest latency ratio at similar accuracy: {lr['swiftnet']}"
               f" vs {lr['baseline']}: {lr['ratio']:.2f}x." if lr else
               "No baseline within the similar-accuracy band of any "
               "SwiftNet candidate.")
  return "\n".join(lines) + "\n"


def write_outputs(out: Dict[str, Any], workdir: str) -> None:
  io.write_json_atomic(os.path.join(workdir, "comparison.json"), out)
  io.write_bytes_atomic(os.path.join(workdir, "comparison.md"),
                        markdown(out).encode())
  path = os.path.join(workdir, "comparison.csv")
  with open(path + ".tmp", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(ROWS) + ["source"],
                       extrasaction="ignore")
    w.writeheader()
    w.writerows(out["rows"])
  os.replace(path + ".tmp", path)
  plot(out, os.path.join(workdir, "comparison.png"))


def plot(out: Dict[str, Any], path: str) -> None:
  """Top-1 vs MACs (log) and top-1 vs host latency, one marker per kind."""
  from gram_jax.report.plots import _pyplot  # pylint: disable=import-outside-toplevel
  plt = _pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
  style = {"swiftnet": ("o", "tab:red"), "baseline": ("s", "tab:blue")}
  for ax, key, label in ((axes[0], "macs", "MACs (M, log)"),
                         (axes[1], "latency_ms", "host TFLite latency (ms)")):
    for kind, (marker, color) in style.items():
      rs = [r for r in out["rows"] if r["kind"] == kind]
      xs = [r[key] / 1e6 if key == "macs" else r[key] for r in rs]
      ax.scatter(xs, [r["top1"] for r in rs], marker=marker, color=color,
                 label=kind, zorder=3)
      for x, r in zip(xs, rs):
        text = r["name"]
        if key == "macs":
          text += f" ({r['density']:.1f}%/M)"
        ax.annotate(text, (x, r["top1"]), fontsize=7,
                    textcoords="offset points", xytext=(4, 3))
    if key == "macs":
      ax.set_xscale("log")
    ax.set(xlabel=label, ylabel="top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend()
  axes[0].set_title("Accuracy vs MACs (label: accuracy density)")
  axes[1].set_title(f"Accuracy vs latency ({out['latency']['threads']} "
                    "thread(s))")
  fig.savefig(path, dpi=110)
  plt.close(fig)


# --- command ------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--config", required=True,
                      help="a compare config, e.g. "
                      "experiments/configs/compare_digits.py")
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--no-progress", action="store_true")
  parser.epilog = ("Override config fields with --config.<field>=<value>, "
                   "e.g. --config.recipe.epochs=2")


def load(path: str, overrides: Sequence[str]) -> CompareConfig:
  """Config file + ``--config.x=y`` overrides -> `CompareConfig`."""
  from gram_jax.search import config as config_lib  # pylint: disable=import-outside-toplevel
  raw = config_lib.load_config_file(path)
  d = raw.to_dict() if hasattr(raw, "to_dict") else dict(raw)
  d = config_lib.apply_overrides(config_lib._plain(d), list(overrides))  # pylint: disable=protected-access
  return parse_config(d)


def run(args: argparse.Namespace, rest) -> int:
  cfg = load(args.config, rest)
  out = run_compare(cfg, args.workdir, progress=not args.no_progress)
  print(markdown(out), end="")
  print(f"wrote {os.path.join(args.workdir, 'comparison.md')} (.csv, "
        ".json, .png)")
  return 0
