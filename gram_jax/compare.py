"""``gram-jax compare``: SwiftNet against baselines under one protocol.

  gram-jax compare --config experiments/configs/compare_fashion_mnist.py \\
      --workdir runs/compare_fmnist [--config.<field>=<value> ...]

The protocol (docs/baselines.md, "The comparison protocol"), enforced by
`parse_config` before any work:

  * one ``recipe`` block (optimizer, schedule, epochs, batch, augmentation
    with padding, validation split, training subset) trains every model;
    its key fields must be written out, augmentation must be ``crop_flip``
    and a validation split must be held out. A SwiftNet family or a baseline
    entry that sets a training field is refused (one line naming it);
    ``recipe.seed`` (use ``seeds``), ``recipe.stem`` (an architecture
    choice: ``swiftnet.<family>.stem``), ``recipe.eval_every`` (the curves
    need every epoch) and ``recipe.max_examples`` (it would cut the test
    split) are not allowed;
  * every model sees the same images: the dataset's training split minus
    the seeded validation split (``recipe.split_seed``, the same for every
    model and seed), the same augmentation, and the dataset's whole test
    split, which is evaluated once, after the last epoch. The validation
    split makes every choice (the matched baseline, the row a summary
    quotes); the test split only fills the table;
  * every model is trained with each of ``seeds`` (at least two): the
    table gives mean +- sample standard deviation;
  * SwiftNet families (``swiftnet.<family>``) come from a search workdir,
    a metagraph.json or arch.json files, pruned at several levels and
    up-scaled by several factors, with an optional adaptation stem in front
    (so DAGs searched at a low resolution do not run at the full one). Each
    family states its role: ``searched`` (searched on this dataset) or
    ``transfer`` (searched on another task and used with no new search, the
    paper's Table 4 setting); the dataset it was searched on is checked
    against the role;
  * baselines are registered models in their published form with their own
    scaling knob, ``"name@width"``.

For every model and seed the workdir holds a `gram-jax train` workdir
(``models/<name>/seed<k>/``, with ``metrics.jsonl``: per-epoch training and
validation accuracy) and ``int8.json`` (the int8 TFLite test accuracy);
``models/<name>/latency.json`` holds the float32 and int8 TFLite host
latencies (LiteRT, ``latency.threads`` threads, median of ``latency.runs``)
of the first seed's exports. The comparison: ``results.md``, ``.csv``,
``.json``, ``pareto.png`` (top-1 vs MACs and vs latency, one marker per
family), ``curves.png`` (training and validation accuracy per epoch) and
``release/`` (one `fulltrain.write_bundle` file per SwiftNet row, which
``gram-jax train --arch <file>`` retrains, and ``recipe.json`` for the
baselines' ``gram-jax train --model ... --recipe-file``).

Everything resumes: a training run from its last epoch, and a finished
seed (``result.json`` and ``int8.json``) or model (``latency.json``) is
not redone. A finished run trained with another dataset, recipe or
architecture is an error (use a new --workdir).

Definitions:

  * accuracy density: test top-1 (%) per million MACs [SN Table 1];
  * similar accuracy: mean validation top-1 within ``similar_points``
    points (default 0.5). For each SwiftNet row and baseline family the
    matched baseline is the fastest similar one (float32 latency);
  * latency ratio: matched baseline latency / SwiftNet latency (> 1: the
    SwiftNet is faster; the paper's 2.42x against MobileNetV2, 1.47x
    against FBNet);
  * density ratio: SwiftNet density / baseline density; in the summary the
    SwiftNet row and the baseline row with the best validation density
    (the paper's 2.15x against MobileNetV2, 2.35x against FBNet).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from gram_jax import config as config_lib
from gram_jax import fulltrain
from gram_jax import io
from gram_jax import run as run_lib
from gram_jax.errors import GramJaxError

# The paper's figures the summary sets ours beside [SN abstract, Table 2:
# ImageNet at 96x96, Pixel 1 latency; Table 4: Fashion-MNIST].
PAPER = {
    "density_ratio": {"mobilenet_v2": 2.15, "fbnet": 2.35},
    "latency_ratio": {"mobilenet_v2": 2.42, "fbnet": 1.47},
    "table4": {
        "dataset": "fashion_mnist",
        "top1": 93.56,
        "macs": 0.86e6,
        "density": 108.79,
    },
}
# Published results for scale, quoted under a table of that dataset
# (Fashion-MNIST benchmark list).
PUBLISHED = {
    "fashion_mnist": (
        "MobileNet 95.0% (flip augmentation), ResNet18 94.9%, "
        "a 2-conv net with < 100 K parameters 92.5%, human "
        "83.5%"
    ),
}
BASELINE_FAMILIES = ("mobilenet_v2", "fbnet")
FRONT_MACS = 5e6  # "SwiftNet's front at or above ... under 5 M MACs"
# Training accuracy still rising by more than this over the last quarter of
# the epochs (points) is flagged in results.md: the recipe may be too short.
PLATEAU_POINTS = 1.0
ROLES = ("searched", "transfer")

TOP_FIELDS = (
    "dataset",
    "data_dir",
    "recipe",
    "seeds",
    "swiftnet",
    "baselines",
    "latency",
    "int8",
    "similar_points",
)
# The config layer's schemas (`config.check_group`) of the plain groups.
LATENCY_FIELDS = {
    "threads": (1, int, config_lib.in_range(1)),
    "runs": (50, int, config_lib.in_range(1)),
    "warmup": (10, int, config_lib.in_range(0)),
}
INT8_FIELDS = {"calibration": (500, int, config_lib.in_range(1))}
SIMILAR_FIELD = (0.5, float, config_lib.in_range(0))  # percentage points
# Recipe fields the protocol needs written out (not left to defaults that
# could change under it).
REQUIRED_RECIPE = (
    "epochs",
    "batch_size",
    "optimizer",
    "learning_rate",
    "schedule",
    "weight_decay",
    "augment",
    "augment_pad",
    "val_examples",
    "split_seed",
)
FORBIDDEN_RECIPE = {
    "seed": "set config.seeds (at least two seeds per row)",
    "stem": (
        "the adaptation stem is part of a SwiftNet architecture: set "
        "config.swiftnet.<family>.stem"
    ),
    "eval_every": "the curves need an evaluation every epoch",
    "max_examples": (
        "it also cuts the test split; use config.recipe.train_examples"
    ),
}
FAMILY_FIELDS = (
    "role",
    "searched_on",
    "search_workdir",
    "metagraph",
    "archs",
    "prune_levels",
    "prune_mode",
    "upscales",
    "upscale_divisor",
    "stem",
)

CSV_FIELDS = (
    "name",
    "family",
    "kind",
    "top1",
    "top1_std",
    "val_top1",
    "val_top1_std",
    "int8_top1",
    "int8_top1_std",
    "macs",
    "params",
    "density",
    "latency_ms",
    "latency_int8_ms",
    "train_top1",
    "train_gain_last_quarter",
    "level",
    "upscale",
    "dag_input",
    "searched_on",
    "source",
)


@dataclasses.dataclass(frozen=True)
class Candidate:
  """One model (row) of the comparison."""

  name: str
  kind: str  # "swiftnet" | "baseline"
  family: str  # swiftnet.<family> key | baseline family
  arch: Any = None  # adapted ArchSpec (swiftnet)
  model: str = ""  # registry name (baseline)
  width: float = 1.0
  source: str = ""  # where it came from, for the table
  role: str = ""  # swiftnet: searched | transfer
  searched_on: str = ""
  level: Optional[float] = None
  upscale: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class CompareConfig:
  """A validated comparison config (see experiments/configs/compare_*)."""

  dataset: str
  data_dir: str
  recipe: fulltrain.Recipe  # seed 0; each run replaces the seed
  seeds: Tuple[int, ...]
  candidates: Tuple[Candidate, ...]
  threads: int
  runs: int
  warmup: int
  calibration: int
  similar_points: float
  raw: Dict[str, Any]


def _err(msg: str) -> GramJaxError:
  return GramJaxError(msg)


def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
  return (
      isinstance(v, (int, float))
      and not isinstance(v, bool)
      and math.isfinite(v)
  )


def _recipe_names() -> Tuple[str, ...]:
  return tuple(f.name for f in dataclasses.fields(fulltrain.Recipe))


def _per_model(where: str, key: str) -> GramJaxError:
  return _err(
      f"{where}.{key}: a per-model training setting is not "
      "allowed; every model trains with config.recipe (the "
      "protocol)"
  )


def parse_config(d: Dict[str, Any]) -> CompareConfig:
  """Validates a plain config dict (everything checked before any work)."""
  from gram_jax import data as data_lib  # pylint: disable=import-outside-toplevel

  unknown = sorted(set(d) - set(TOP_FIELDS))
  if unknown:
    raise _err(
        f"config.{unknown[0]}: unknown field; allowed: {', '.join(TOP_FIELDS)}"
    )
  if "dataset" not in d:
    raise _err("config.dataset: missing")
  dataset = d["dataset"]
  if dataset not in data_lib.DATASETS or dataset == "imagenet2012":
    allowed = [n for n in data_lib.DATASETS if n != "imagenet2012"]
    raise _err(
        f"config.dataset: {dataset!r} is not allowed; allowed: "
        f"{', '.join(allowed)} (the protocol holds the dataset in "
        "memory to carve the validation split)"
    )
  data_dir = d.get("data_dir") or ""
  if not isinstance(data_dir, str):
    raise _err(
        f"config.data_dir: {data_dir!r} is not allowed; allowed: a "
        "path string ('' for the default)"
    )
  recipe = _protocol_recipe(d.get("recipe"))
  seeds = d.get("seeds")
  if isinstance(seeds, (list, tuple)):
    seeds = tuple(seeds)
  if (
      not isinstance(seeds, tuple)
      or len(seeds) < 2
      or not all(_is_int(s) and s >= 0 for s in seeds)
      or len(set(seeds)) != len(seeds)
  ):
    raise _err(
        f"config.seeds: {d.get('seeds')!r} is not allowed; allowed: "
        "at least two distinct integers >= 0 (mean +- std per row)"
    )

  cands: List[Candidate] = []
  families = d.get("swiftnet")
  if not isinstance(families, dict) or not families:
    raise _err(
        "config.swiftnet: no SwiftNet family; allowed: a group of "
        "families, e.g. swiftnet.searched = {role, search_workdir, "
        "prune_levels, ...}"
    )
  shape, classes = data_lib.info(dataset)
  if recipe.input_size:
    shape = (recipe.input_size, recipe.input_size, shape[2])
  for fam, fd in families.items():
    cands += _family(fam, fd, dataset, shape, classes)
  cands += _baselines(d.get("baselines"))
  names = [c.name for c in cands]
  for n in names:
    if names.count(n) > 1:
      raise _err(f"config: two models are named {n!r}; list each once")

  lat = config_lib.check_group(
      d.get("latency"), LATENCY_FIELDS, "config.latency"
  )
  q = config_lib.check_group(d.get("int8"), INT8_FIELDS, "config.int8")
  similar = config_lib.check_group(
      {"similar_points": d.get("similar_points", 0.5)},
      {"similar_points": SIMILAR_FIELD},
      "config",
  )["similar_points"]
  return CompareConfig(
      dataset,
      data_dir,
      recipe,
      seeds,
      tuple(cands),
      lat["threads"],
      lat["runs"],
      lat["warmup"],
      q["calibration"],
      similar,
      d,
  )


def _protocol_recipe(r: Any) -> fulltrain.Recipe:
  if not isinstance(r, dict):
    raise _err(
        "config.recipe: missing; allowed: a group of recipe fields "
        f"({', '.join(REQUIRED_RECIPE)} at least)"
    )
  names = _recipe_names()
  for key in r:
    if key in FORBIDDEN_RECIPE:
      raise _err(
          f"config.recipe.{key}: not allowed in the protocol; "
          f"{FORBIDDEN_RECIPE[key]}"
      )
    if key not in names:
      raise _err(
          f"config.recipe.{key}: unknown field; allowed: "
          f"{', '.join(n for n in names if n not in FORBIDDEN_RECIPE)}"
      )
  for key in REQUIRED_RECIPE:
    if key not in r:
      raise _err(
          f"config.recipe.{key}: missing; the protocol writes out "
          f"{', '.join(REQUIRED_RECIPE)}"
      )
  try:
    recipe = fulltrain.Recipe(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in r.items()}
    )
  except GramJaxError as e:
    raise _err(f"config.{e}") from None
  if recipe.augment != "crop_flip":
    raise _err(
        f"config.recipe.augment: {recipe.augment!r} is not allowed; "
        "allowed: crop_flip (the protocol: random crop with padding "
        "and horizontal flip for every model)"
    )
  if recipe.augment_pad < 1:
    raise _err(
        f"config.recipe.augment_pad: {recipe.augment_pad!r} is not "
        "allowed; allowed: an integer >= 1 (crop with padding)"
    )
  if recipe.val_examples < 1:
    raise _err(
        f"config.recipe.val_examples: {recipe.val_examples!r} is not "
        "allowed; allowed: an integer >= 1 (choices are made on a "
        "validation split held out of the training split)"
    )
  if recipe.split_seed < 0:
    raise _err(
        f"config.recipe.split_seed: {recipe.split_seed!r} is not "
        "allowed; allowed: an integer >= 0 (one split for every "
        "model and seed)"
    )
  return recipe


def _search_dataset(wd: str) -> str:
  """The dataset a search workdir's config.json names ('' if none)."""
  path = os.path.join(wd, "config.json")
  if not os.path.isfile(path):
    return ""
  d = io.read_json(path)
  return d.get("dataset", "") if isinstance(d, dict) else ""


def _family(
    fam: str, fd: Any, dataset: str, shape, classes: int
) -> List[Candidate]:
  from gram_jax import arch as arch_lib  # pylint: disable=import-outside-toplevel
  from gram_jax import data as data_lib  # pylint: disable=import-outside-toplevel
  from gram_jax import derive  # pylint: disable=import-outside-toplevel
  from gram_jax import metagraph as mg  # pylint: disable=import-outside-toplevel
  from gram_jax.space import parse_op  # pylint: disable=import-outside-toplevel

  where = f"config.swiftnet.{fam}"
  if not isinstance(fd, dict):
    raise _err(
        f"{where}: expected a group of fields: {', '.join(FAMILY_FIELDS)}"
    )
  recipe_names = set(_recipe_names())
  for key in fd:
    if key in recipe_names and key not in ("stem",):
      raise _per_model(where, key)
    if key not in FAMILY_FIELDS:
      raise _err(
          f"{where}.{key}: unknown field; allowed: {', '.join(FAMILY_FIELDS)}"
      )
  role = fd.get("role")
  if role not in ROLES:
    raise _err(
        f"{where}.role: {role!r} is not allowed; allowed: "
        f"{', '.join(ROLES)} (searched on this dataset, or searched "
        "on another task and used with no new search)"
    )
  wd, graph_path = fd.get("search_workdir") or "", fd.get("metagraph") or ""
  archs = list(fd.get("archs") or ())
  if sum(map(bool, (wd, graph_path, archs))) != 1:
    raise _err(f"{where}: give exactly one of search_workdir, metagraph, archs")
  searched_on = fd.get("searched_on") or ""
  if wd:
    graph_path = os.path.join(wd, "metagraph.json")
    if not os.path.isfile(graph_path):
      raise _err(
          f"{where}.search_workdir: {wd} holds no metagraph.json "
          "(run gram-jax search there first)"
      )
    found = _search_dataset(wd)
    if found and searched_on and found != searched_on:
      raise _err(
          f"{where}.searched_on: {searched_on!r}, but {wd}/"
          f"config.json says the search ran on {found!r}"
      )
    searched_on = searched_on or found
  elif graph_path and not os.path.isfile(graph_path):
    raise _err(f"{where}.metagraph: {graph_path}: no such file")
  if searched_on not in data_lib.DATASETS:
    raise _err(
        f"{where}.searched_on: {searched_on!r} is not allowed; "
        f"allowed: {', '.join(data_lib.DATASETS)} (the dataset the "
        "meta-graph or architectures were searched on)"
    )
  if role == "searched" and searched_on != dataset:
    raise _err(
        f"{where}.role: 'searched' but the search ran on "
        f"{searched_on!r}, not {dataset!r}; allowed: transfer"
    )
  if role == "transfer" and searched_on == dataset:
    raise _err(
        f"{where}.role: 'transfer' but the search ran on "
        f"{dataset!r} itself; allowed: searched"
    )
  stem = fd.get("stem") or ()
  if isinstance(stem, str):
    stem = (stem,)
  for s in stem:
    parse_op(s, field=f"{where}.stem", allow_stride=True)
  upscales = fd.get("upscales", (1.0,))
  if isinstance(upscales, (int, float)):
    upscales = (upscales,)
  if not upscales or not all(_is_num(u) and u > 0 for u in upscales):
    raise _err(
        f"{where}.upscales: {upscales!r} is not allowed; allowed: "
        "a non-empty list of numbers > 0"
    )
  divisor = fd.get("upscale_divisor", 1)
  if not _is_int(divisor) or divisor < 1:
    raise _err(
        f"{where}.upscale_divisor: {divisor!r} is not allowed; "
        "allowed: an integer >= 1"
    )

  def finish(spec):
    return fulltrain.adapt_spec(spec, num_classes=classes, stem=tuple(stem))

  out = []
  levels = fd.get("prune_levels") or ()
  if isinstance(levels, (int, float)):
    levels = (levels,)
  if archs:
    if levels:
      raise _err(
          f"{where}.prune_levels: only used with search_workdir or metagraph"
      )
    for i, path in enumerate(archs):
      if not os.path.isfile(path):
        raise _err(f"{where}.archs[{i}]: {path}: no such file")
      spec = fulltrain.load_arch_file(path)[0]  # arch.json or a bundle
      stem_name = os.path.splitext(os.path.basename(path))[0]
      released = stem_name.startswith(f"{fam}-")  # a release bundle's name
      if released:
        stem_name = stem_name[len(fam) + 1 :]
      for u in upscales:
        s = (
            arch_lib.upscale(spec, float(u), divisor=divisor)
            if u != 1.0
            else spec
        )
        out.append(
            Candidate(
                f"{fam}-{stem_name}"
                + ("" if released and u == 1.0 else f"-x{float(u):g}"),
                "swiftnet",
                fam,
                arch=finish(s),
                source=path,
                role=role,
                searched_on=searched_on,
                upscale=float(u),
            )
        )
    return out
  if not levels or not all(_is_num(lv) and 0 <= lv <= 1 for lv in levels):
    raise _err(
        f"{where}.prune_levels: {levels!r} is not allowed; allowed: "
        "a non-empty list of levels in [0, 1]"
    )
  mode = fd.get("prune_mode", "threshold")
  if mode not in mg.PRUNE_MODES:
    raise _err(
        f"{where}.prune_mode: {mode!r} is not allowed; allowed: "
        f"{', '.join(mg.PRUNE_MODES)}"
    )
  graph = io.load_metagraph(graph_path)
  rows = derive.profile(
      graph, levels, input_shape=shape, num_classes=classes, mode=mode
  )
  for lv, row in zip(levels, rows):
    for u in upscales:
      spec = row["spec"]
      if u != 1.0:
        spec = arch_lib.upscale(spec, float(u), divisor=divisor)
      out.append(
          Candidate(
              f"{fam}-L{float(lv):.2f}-x{float(u):g}",
              "swiftnet",
              fam,
              arch=finish(spec),
              source=f"{graph_path} ({mode} {lv:g})",
              role=role,
              searched_on=searched_on,
              level=float(lv),
              upscale=float(u),
          )
      )
  return out


def _baselines(items: Any) -> List[Candidate]:
  from gram_jax.models import mobile, registry  # pylint: disable=import-outside-toplevel

  if not isinstance(items, (list, tuple)) or not items:
    raise _err(
        "config.baselines: empty; allowed: names such as "
        "mobilenet_v2@0.35, fbnet_96_035_1"
    )
  out = []
  recipe_names = set(_recipe_names())
  for i, item in enumerate(items):
    where = f"config.baselines[{i}]"
    if isinstance(item, dict):
      extra = sorted(set(item) & recipe_names)
      if extra:
        raise _per_model(where, extra[0])
    if not isinstance(item, str) or not item:
      raise _err(
          f"{where}: {item!r} is not allowed; allowed: 'name' or "
          "'name@width', e.g. mobilenet_v2@0.35"
      )
    name, _, w = item.partition("@")
    if name not in registry.MODELS:
      raise _err(
          f"{where}: model {name!r} is not allowed; allowed: "
          f"{', '.join(sorted(registry.MODELS))}"
      )
    try:
      width = mobile.check_width(float(w) if w else 1.0)
    except (ValueError, GramJaxError):
      raise _err(
          f"{where}: width {w!r} is not allowed; allowed: a number > 0"
      ) from None
    family = "fbnet" if name.startswith("fbnet") else name
    out.append(
        Candidate(
            f"{name}-{width:g}",
            "baseline",
            family,
            model=name,
            width=width,
            source=item,
        )
    )
  return out


# --- running ------------------------------------------------------------------


def _network_config(c: Candidate, classes: int) -> Dict[str, Any]:
  """The network part of a seed's config.json, as fulltrain writes it."""
  if c.kind == "swiftnet":
    return {"arch": c.arch.to_dict()}
  return {
      "model": {
          "name": c.model,
          "width": float(c.width),
          "num_classes": classes,
      }
  }


def _check_same(
    c: Candidate,
    seed_dir: str,
    cfg: CompareConfig,
    recipe: fulltrain.Recipe,
    classes: int,
) -> None:
  """A finished seed is reused only if it is the run this config asks for."""
  path = os.path.join(seed_dir, "config.json")
  if not os.path.exists(path):
    return
  old = io.read_json(path)
  want = json.loads(
      json.dumps({
          "dataset": cfg.dataset,
          "recipe": dataclasses.asdict(recipe),
          **_network_config(c, classes),
      })
  )
  from gram_jax.config import diff  # pylint: disable=import-outside-toplevel

  old = dict(old)
  if isinstance(old.get("recipe"), dict):
    old["recipe"] = fulltrain.with_recipe_defaults(old["recipe"])
  d = diff({k: old.get(k) for k in want}, want)
  if d:
    raise _err(
        f"{d[0]}: {seed_dir} was trained with {d[1]!r}, this config "
        f"has {d[2]!r}; use a new --workdir"
    )


def _complete(path: str) -> bool:
  if not os.path.exists(path):
    return False
  return bool(io.read_json(path).get("complete"))


def _module(c: Candidate, result: Dict[str, Any]):
  from gram_jax import arch as arch_lib  # pylint: disable=import-outside-toplevel
  from gram_jax.models import ExactNet, registry  # pylint: disable=import-outside-toplevel

  if c.kind == "swiftnet":
    return ExactNet(arch_lib.ArchSpec.load(result["arch"]))
  desc = io.read_json(result["model_json"])
  return registry.build(
      desc["name"], num_classes=desc["num_classes"], width=desc["width"]
  )


def _export(
    c: Candidate,
    seed_dir: str,
    result: Dict[str, Any],
    data,
    calibration: int,
    float_too: bool,
) -> Dict[str, Any]:
  """int8 TFLite (and float32 when `float_too`) of a trained seed; the int8
  test accuracy and the float32 export's agreement with JAX."""
  import jax  # pylint: disable=import-outside-toplevel
  from gram_jax.export import latency, tflite  # pylint: disable=import-outside-toplevel

  shape = tuple(result["input_shape"])
  module = _module(c, result)
  variables = io.load_module_variables(result["variables"], module, shape)

  def forward(x):
    return module.apply(variables, x, train=False)

  out: Dict[str, Any] = {}
  if float_too:
    model = tflite.function_to_tflite(forward, (1,) + shape)
    tflite.write_tflite(os.path.join(seed_dir, "model.tflite"), model)
    x = data.memory.x_test[:8]
    out["tflite_max_abs_diff"] = float(
        np.max(
            np.abs(
                latency.run_tflite(model, x) - np.asarray(jax.jit(forward)(x))
            )
        )
    )
  # Calibration: the first training images (already in a seeded random
  # order), unaugmented, preprocessed as for training.
  rep = data.x_train[:calibration]
  q = tflite.function_to_tflite(
      forward, (1,) + shape, int8=True, representative=rep
  )
  tflite.write_tflite(os.path.join(seed_dir, "model_int8.tflite"), q)
  logits = latency.run_tflite(q, data.memory.x_test)
  pred = np.argmax(logits, -1)
  out["int8_top1"] = float(np.mean(pred == data.memory.y_test))
  out["test_examples"] = int(len(pred))
  return out


def _latency(
    model_dir: str, seed_dir: str, cfg: CompareConfig
) -> Dict[str, Any]:
  from gram_jax.export import latency  # pylint: disable=import-outside-toplevel

  stats = {}
  for key, file in (("float32", "model.tflite"), ("int8", "model_int8.tflite")):
    stats[key] = latency.measure_tflite(
        os.path.join(seed_dir, file),
        threads=cfg.threads,
        runs=cfg.runs,
        warmup=cfg.warmup,
    )
  io.write_json_atomic(os.path.join(model_dir, "latency.json"), stats)
  return stats


def run_compare(
    cfg: CompareConfig, workdir: str, *, progress: bool = True
) -> Dict[str, Any]:
  """Trains, exports and times every model and seed (resuming); writes the
  results."""
  from gram_jax import data as data_lib  # pylint: disable=import-outside-toplevel

  os.makedirs(os.path.join(workdir, "models"), exist_ok=True)
  io.write_json_atomic(
      os.path.join(workdir, "config.json"),
      json.loads(json.dumps(cfg.raw, default=list)),
  )
  classes = data_lib.info(cfg.dataset)[1]
  data = None  # loaded once, on the first run that needs it
  records = []
  total = len(cfg.candidates) * len(cfg.seeds)
  k = 0
  for c in cfg.candidates:
    model_dir = os.path.join(workdir, "models", c.name)
    seeds = []
    for j, seed in enumerate(cfg.seeds):
      k += 1
      seed_dir = os.path.join(model_dir, f"seed{seed}")
      recipe = dataclasses.replace(cfg.recipe, seed=seed)
      _check_same(c, seed_dir, cfg, recipe, classes)
      result_path = os.path.join(seed_dir, "result.json")
      int8_path = os.path.join(seed_dir, "int8.json")
      done = (
          _complete(result_path)
          and os.path.exists(int8_path)
          and (j > 0 or os.path.exists(os.path.join(model_dir, "latency.json")))
      )
      print(
          f"[{k}/{total}] {c.name} seed {seed}: "
          f"{'finished before' if done else 'running'}",
          flush=True,
      )
      if not _complete(result_path):
        kw = dict(
            recipe=recipe, data_dir=cfg.data_dir or None, progress=progress
        )
        if c.kind == "swiftnet":
          fulltrain.run_training(c.arch, cfg.dataset, seed_dir, **kw)
        else:
          fulltrain.run_model_training(
              c.model, cfg.dataset, seed_dir, width=c.width, **kw
          )
      result = io.read_json(result_path)
      if not os.path.exists(int8_path):
        if data is None:
          data = fulltrain.splits(cfg.dataset, cfg.recipe, cfg.data_dir or None)
        io.write_json_atomic(
            int8_path,
            _export(
                c, seed_dir, result, data, cfg.calibration, float_too=j == 0
            ),
        )
      seeds.append({
          "seed": seed,
          "result": result,
          "int8": io.read_json(int8_path),
          "curve": io.read_jsonl(
              os.path.join(seed_dir, "metrics.jsonl"), "epoch", math.inf
          ),
      })
    lat_path = os.path.join(model_dir, "latency.json")
    lat = (
        io.read_json(lat_path)
        if os.path.exists(lat_path)
        else _latency(
            model_dir, os.path.join(model_dir, f"seed{cfg.seeds[0]}"), cfg
        )
    )
    records.append((c, seeds, lat))
  rows = [make_row(c, seeds, lat) for c, seeds, lat in records]
  rows = match_baselines(rows, cfg.similar_points)
  first = records[0][2]["float32"]
  r0 = records[0][1][0]["result"]
  out = {
      "dataset": cfg.dataset,
      "recipe": dataclasses.asdict(cfg.recipe),
      "seeds": list(cfg.seeds),
      "splits": {
          "train": r0.get("train_examples"),
          "val": r0.get("val_examples"),
          "test": records[0][1][0]["int8"].get("test_examples"),
      },
      "similar_points": cfg.similar_points,
      "latency": {
          "threads": cfg.threads,
          "runs": cfg.runs,
          "warmup": cfg.warmup,
          "machine": first.get("machine"),
          "versions": first.get("versions"),
      },
      "rows": rows,
      "summary": summarise(rows),
      "paper": PAPER,
      "curves": {
          c.name: [s["curve"] for s in seeds] for c, seeds, _ in records
      },
  }
  out = json.loads(json.dumps(out, default=list))
  write_outputs(out, workdir)
  write_release(cfg, records, rows, workdir)
  return out


def _mean_std(values: Sequence[float]) -> Tuple[float, float]:
  v = np.asarray(values, dtype=np.float64)
  return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def train_gain(curve: List[Dict[str, Any]]) -> Optional[float]:
  """Training accuracy gained over the last quarter of the epochs (points):
  near 0 when training has plateaued."""
  acc = [r["train_top1"] for r in curve if "train_top1" in r]
  if len(acc) < 2:
    return None
  start = acc[max(0, int(0.75 * len(acc)) - 1)]
  return 100.0 * (acc[-1] - start)


def make_row(
    c: Candidate, seeds: List[Dict[str, Any]], lat: Dict[str, Any]
) -> Dict[str, Any]:
  """One table row: means and sample stds over the seeds."""
  res = [s["result"] for s in seeds]
  top1, top1_std = _mean_std([100 * r["top1"] for r in res])
  val, val_std = _mean_std([100 * r["val_top1"] for r in res])
  q, q_std = _mean_std([100 * s["int8"]["int8_top1"] for s in seeds])
  train, _ = _mean_std([100 * r["train_top1"] for r in res])
  gains = [g for g in (train_gain(s["curve"]) for s in seeds) if g is not None]
  macs = int(res[0]["macs"])
  row = {
      "name": c.name,
      "family": c.family,
      "kind": c.kind,
      "role": c.role,
      "searched_on": c.searched_on,
      "source": c.source,
      "level": c.level,
      "upscale": c.upscale,
      "seeds": [s["seed"] for s in seeds],
      "top1": top1,
      "top1_std": top1_std,
      "top1_seeds": [100 * r["top1"] for r in res],
      "val_top1": val,
      "val_top1_std": val_std,
      "int8_top1": q,
      "int8_top1_std": q_std,
      "train_top1": train,
      "train_gain_last_quarter": float(np.mean(gains)) if gains else None,
      "macs": macs,
      "params": int(res[0]["params"]),
      "density": top1 / (macs / 1e6),
      "val_density": val / (macs / 1e6),
      "latency_ms": lat["float32"]["median_ms"],
      "latency_int8_ms": lat["int8"]["median_ms"],
      "tflite_max_abs_diff": seeds[0]["int8"].get("tflite_max_abs_diff"),
      "input_shape": res[0]["input_shape"],
      "epochs": res[0]["epochs"],
  }
  if c.kind == "swiftnet":
    h = res[0]["input_shape"][0]
    for conv in c.arch.stem:
      h = -(-h // conv.stride)
    row["dag_input"] = f"{h}x{h}"
  else:
    row["dag_input"] = None
  return row


def match_baselines(
    rows: List[Dict[str, Any]], similar_points: float
) -> List[Dict[str, Any]]:
  """Adds ``match``: per baseline family, the fastest baseline whose mean
  validation top-1 is within `similar_points` of the SwiftNet row's, with
  the latency (float32, int8) and density ratios; None where none is."""
  out = []
  for r in rows:
    r = dict(r, match={})
    if r["kind"] == "swiftnet":
      for fam in sorted({b["family"] for b in rows if b["kind"] == "baseline"}):
        near = [
            b
            for b in rows
            if b["kind"] == "baseline"
            and b["family"] == fam
            and abs(b["val_top1"] - r["val_top1"]) <= similar_points + 1e-9
        ]
        if not near:
          r["match"][fam] = None
          continue
        b = min(near, key=lambda b: (b["latency_ms"], b["name"]))
        r["match"][fam] = {
            "baseline": b["name"],
            "latency_ratio": b["latency_ms"] / r["latency_ms"],
            "latency_ratio_int8": b["latency_int8_ms"] / r["latency_int8_ms"],
            "density_ratio": r["density"] / b["density"],
        }
    out.append(r)
  return out


def summarise(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
  """Per SwiftNet family: density and latency ratios against each baseline
  family (with the paper's), the Table 4 target and the front check."""
  sw_fams = sorted({r["family"] for r in rows if r["kind"] == "swiftnet"})
  b_fams = sorted({r["family"] for r in rows if r["kind"] == "baseline"})
  out = {}
  t4 = PAPER["table4"]
  for f in sw_fams:
    sw = [r for r in rows if r["family"] == f]
    best = max(sw, key=lambda r: (r["val_density"], r["name"]))
    fam = {"role": sw[0]["role"], "searched_on": sw[0]["searched_on"], "vs": {}}
    for b in b_fams:
      bs = [r for r in rows if r["family"] == b]
      best_b = max(bs, key=lambda r: (r["val_density"], r["name"]))
      pairs = [(r, r["match"][b]) for r in sw if r["match"].get(b)]
      top = max(pairs, key=lambda p: p[1]["latency_ratio"]) if pairs else None
      front = []
      for br in bs:
        if br["macs"] >= FRONT_MACS:
          continue
        faster = [
            r
            for r in sw
            if r["macs"] < FRONT_MACS and r["latency_ms"] <= br["latency_ms"]
        ]
        best_acc = max((r["top1"] for r in faster), default=None)
        front.append({
            "baseline": br["name"],
            "baseline_top1": br["top1"],
            "baseline_latency_ms": br["latency_ms"],
            "swiftnet_top1": best_acc,
            "at_or_above": best_acc is not None and best_acc >= br["top1"],
        })
      fam["vs"][b] = {
          "density": {
              "swiftnet": best["name"],
              "swiftnet_density": best["density"],
              "baseline": best_b["name"],
              "baseline_density": best_b["density"],
              "ratio": best["density"] / best_b["density"],
              "paper": PAPER["density_ratio"].get(b),
          },
          "latency": (
              None
              if top is None
              else {
                  "swiftnet": top[0]["name"],
                  "baseline": top[1]["baseline"],
                  "ratio": top[1]["latency_ratio"],
                  "ratio_int8": top[1]["latency_ratio_int8"],
                  "paper": PAPER["latency_ratio"].get(b),
              }
          ),
          "front": front,
      }
    small = [r for r in sw if r["macs"] <= t4["macs"]]
    pick = (
        max(small, key=lambda r: (r["val_top1"], r["name"])) if small else None
    )
    fam["table4"] = {
        "budget_macs": t4["macs"],
        "paper_top1": t4["top1"],
        "paper_density": t4["density"],
        "row": None if pick is None else pick["name"],
        "top1": None if pick is None else pick["top1"],
        "top1_std": None if pick is None else pick["top1_std"],
        "macs": None if pick is None else pick["macs"],
        "met": pick is not None and pick["top1"] >= t4["top1"],
    }
    out[f] = fam
  return out


# --- outputs ------------------------------------------------------------------


def _f(v, digits=2, suffix=""):
  if v is None:
    return "-"
  return f"{v:.{digits}f}{suffix}"


def _pm(m, s, digits=2):
  return f"{m:.{digits}f} ± {s:.{digits}f}"


def markdown(out: Dict[str, Any]) -> str:
  """The comparison as Markdown: the protocol, the table, the summary."""
  rec, sp, lat = out["recipe"], out["splits"], out["latency"]
  b_fams = sorted({r["family"] for r in out["rows"] if r["kind"] == "baseline"})
  shape = "x".join(map(str, out["rows"][0]["input_shape"]))
  machine = (lat.get("machine") or {}).get("cpu_model") or "this host"
  lines = [
      (
          f"Comparison on {out['dataset']} ({shape} inputs for every model)."
          f" Protocol: {sp['train']} training images, {sp['val']} validation"
          " images held out of the training split (split seed"
          f" {rec['split_seed']}), the {sp['test']}-image test split evaluated"
          f" once after training; {rec['epochs']} epochs of batch"
          f" {rec['batch_size']}, {rec['optimizer']} lr"
          f" {rec['learning_rate']:g} ({rec['schedule']}), L2"
          f" {rec['weight_decay']:g}, random crop (padding"
          f" {rec['augment_pad']}) + horizontal flip; seeds"
          f" {', '.join(map(str, out['seeds']))} (mean ± sample std). Latency:"
          f" TFLite on LiteRT, {lat['threads']} thread(s), median of"
          f" {lat['runs']} runs on {machine}. Similar accuracy: mean validation"
          f" top-1 within {out['similar_points']:g} points."
      ),
      "",
      "| model | family | test top-1 % | val top-1 % | int8 top-1 % | "
      "M MACs | M params | density (%/M MACs) | f32 ms | int8 ms | "
      "train gain, last 25% (pts) | DAG input | "
      + " | ".join(f"similar {b} (latency ratio)" for b in b_fams)
      + " |",
      "|" + "---|" * (12 + len(b_fams)),
  ]
  for r in out["rows"]:
    cells = []
    for b in b_fams:
      m = r["match"].get(b) if r["kind"] == "swiftnet" else None
      cells.append(f"{m['baseline']} ({m['latency_ratio']:.2f}x)" if m else "-")
    lines.append(
        f"| {r['name']} | {r['family']} | {_pm(r['top1'], r['top1_std'])} "
        f"| {_pm(r['val_top1'], r['val_top1_std'])} | "
        f"{_pm(r['int8_top1'], r['int8_top1_std'])} | "
        f"{r['macs'] / 1e6:.3f} | {r['params'] / 1e6:.3f} | "
        f"{r['density']:.2f} | {r['latency_ms']:.3f} | "
        f"{r['latency_int8_ms']:.3f} | "
        f"{_f(r['train_gain_last_quarter'])} | {r['dag_input'] or '-'} | "
        + " | ".join(cells)
        + " |"
    )
  rising = [
      r["name"]
      for r in out["rows"]
      if (r.get("train_gain_last_quarter") or 0) > PLATEAU_POINTS
  ]
  lines += [
      "",
      "Not plateaued (training top-1 rose by more than "
      f"{PLATEAU_POINTS:g} point over the last quarter of the epochs; "
      f"see curves.png): {', '.join(rising)}."
      if rising
      else (
          "Every model's training top-1 rose by at most "
          f"{PLATEAU_POINTS:g} point over the last quarter of the epochs "
          "(curves.png)."
      ),
  ]
  lines += ["", "SwiftNet families:"]
  for f, s in out["summary"].items():
    lines.append(
        f"* `{f}`: {s['role']}, meta-graph searched on {s['searched_on']}"
        + (
            " (used here with no new search: the paper's Table 4 setting)"
            if s["role"] == "transfer"
            else ""
        )
    )
  lines += [
      "",
      (
          "| SwiftNet family | against | density ratio (ours) | "
          "paper | latency ratio at similar accuracy (ours, f32 / int8) | "
          "paper | front at or above under 5 M MACs |"
      ),
      "|---|---|---|---|---|---|---|",
  ]
  for f, s in out["summary"].items():
    for b, v in s["vs"].items():
      d, lr = v["density"], v["latency"]
      dens = (
          f"{d['ratio']:.2f}x ({d['swiftnet']} {d['swiftnet_density']:.1f}"
          f" vs {d['baseline']} {d['baseline_density']:.1f})"
      )
      lat_s = (
          f"{lr['ratio']:.2f}x / {lr['ratio_int8']:.2f}x "
          f"({lr['swiftnet']} vs {lr['baseline']})"
          if lr
          else "no baseline within the band"
      )
      fr = v["front"]
      front = (
          f"{sum(p['at_or_above'] for p in fr)} of {len(fr)} {b} points"
          if fr
          else "no baseline under 5 M MACs"
      )
      paper_lat = PAPER["latency_ratio"].get(b)
      lines.append(
          f"| {f} | {b} | {dens} | {_f(d['paper'], suffix='x')} | "
          f"{lat_s} | {_f(paper_lat, suffix='x')} | {front} |"
      )
  lines += [
      "",
      (
          "Paper ratios: ImageNet 96x96, Pixel 1 latency [SN Table 2]; "
          "ours: this dataset and host. Rows a summary quotes are chosen on "
          "the validation split (best validation density; the fastest "
          "baseline within the band of validation accuracy), their test "
          "numbers reported."
      ),
  ]
  if out["dataset"] in PUBLISHED:
    lines.append(
        f"Published {out['dataset']} results, for scale (other "
        f"recipes): {PUBLISHED[out['dataset']]}."
    )
  t4 = PAPER["table4"]
  for f, s in out["summary"].items():
    t = s["table4"]
    if t["row"] is None:
      lines.append(
          f"Table 4 target (>= {t4['top1']}% at <= "
          f"{t4['macs'] / 1e6:g} M MACs), {f}: no row within the "
          "MACs budget."
      )
    else:
      lines.append(
          f"Table 4 target (>= {t4['top1']}% at <= {t4['macs'] / 1e6:g} M "
          f"MACs, paper density {t4['density']}), {f}: {t['row']} (best "
          f"validation top-1 within the budget) {_pm(t['top1'], t['top1_std'])}"
          f"% at {t['macs'] / 1e6:.3f} M MACs: "
          f"{'met' if t['met'] else 'not met'}."
      )
  return "\n".join(lines) + "\n"


def write_outputs(out: Dict[str, Any], workdir: str) -> None:
  """results.{json,md,csv}, pareto.png and curves.png in `workdir`."""
  io.write_json_atomic(os.path.join(workdir, "results.json"), out)
  io.write_bytes_atomic(
      os.path.join(workdir, "results.md"), markdown(out).encode()
  )
  path = os.path.join(workdir, "results.csv")
  with open(path + ".tmp", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(out["rows"])
  os.replace(path + ".tmp", path)
  plot_pareto(out, os.path.join(workdir, "pareto.png"))
  plot_curves(out, os.path.join(workdir, "curves.png"))


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_COLORS = (
    "tab:red",
    "tab:blue",
    "tab:green",
    "tab:orange",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:gray",
)


def _styles(out):
  fams = []
  for r in out["rows"]:
    if r["family"] not in fams:
      fams.append(r["family"])
  return {
      f: (_MARKERS[i % len(_MARKERS)], _COLORS[i % len(_COLORS)])
      for i, f in enumerate(fams)
  }


def plot_pareto(out: Dict[str, Any], path: str) -> None:
  """Test top-1 (mean, std bars) vs MACs, float32 and int8 latency; one
  marker per family."""
  from gram_jax.report.plots import pyplot  # pylint: disable=import-outside-toplevel

  plt = pyplot()
  styles = _styles(out)
  fig, axes = plt.subplots(1, 3, figsize=(17, 5), constrained_layout=True)
  for ax, key, label in (
      (axes[0], "macs", "MACs (M, log)"),
      (axes[1], "latency_ms", "float32 TFLite latency (ms)"),
      (axes[2], "latency_int8_ms", "int8 TFLite latency (ms)"),
  ):
    for fam, (marker, color) in styles.items():
      rs = [r for r in out["rows"] if r["family"] == fam]
      xs = [r[key] / 1e6 if key == "macs" else r[key] for r in rs]
      ax.errorbar(
          xs,
          [r["top1"] for r in rs],
          yerr=[r["top1_std"] for r in rs],
          fmt=marker,
          color=color,
          label=fam,
          capsize=3,
          zorder=3,
      )
      for x, r in zip(xs, rs):
        ax.annotate(
            r["name"].replace(fam + "-", ""),
            (x, r["top1"]),
            fontsize=6,
            textcoords="offset points",
            xytext=(4, 3),
        )
    ax.set_xscale("log")
    ax.set(xlabel=label, ylabel="test top-1 (%)")
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  axes[0].set_title(f"{out['dataset']}: accuracy vs MACs")
  axes[1].set_title(
      f"accuracy vs latency ({out['latency']['threads']} thread(s))"
  )
  axes[2].set_title("accuracy vs int8 latency")
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_curves(out: Dict[str, Any], path: str) -> None:
  """Training and validation top-1 per epoch of every model (mean over
  seeds): training has plateaued where the training curve is flat."""
  from gram_jax.report.plots import pyplot  # pylint: disable=import-outside-toplevel

  plt = pyplot()
  styles = _styles(out)
  fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), constrained_layout=True)
  family = {r["name"]: r["family"] for r in out["rows"]}
  for name, curves in out["curves"].items():
    _, color = styles[family[name]]
    for ax, key in ((axes[0], "train_top1"), (axes[1], "val_top1")):
      series = [[r[key] for r in c if key in r] for c in curves]
      n = min(len(s) for s in series)
      if not n:
        continue
      mean = 100 * np.mean([s[:n] for s in series], axis=0)
      ax.plot(np.arange(1, n + 1), mean, color=color, alpha=0.8, lw=1)
      ax.annotate(name, (n, mean[-1]), fontsize=6)
  for ax, what in (
      (axes[0], "training (fixed unaugmented subset)"),
      (axes[1], "validation"),
  ):
    ax.set(xlabel="epoch", ylabel="top-1 (%)", title=f"{what} accuracy")
    ax.grid(alpha=0.3)
  handles = [
      plt.Line2D([], [], color=c, label=f) for f, (_, c) in styles.items()
  ]
  axes[1].legend(handles=handles, fontsize=8)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_release(
    cfg: CompareConfig, records, rows: List[Dict[str, Any]], workdir: str
) -> None:
  """``release/``: a `fulltrain.write_bundle` file per SwiftNet row (the
  architecture with its stem, the recipe with the first seed, what it
  measured) and ``recipe.json`` for the baselines."""
  rel = os.path.join(workdir, "release")
  os.makedirs(rel, exist_ok=True)
  recipe = dataclasses.replace(cfg.recipe, seed=cfg.seeds[0])
  by_name = {r["name"]: r for r in rows}
  keep = (
      "top1",
      "top1_std",
      "val_top1",
      "int8_top1",
      "macs",
      "params",
      "density",
      "latency_ms",
      "latency_int8_ms",
      "seeds",
      "family",
      "role",
      "searched_on",
      "source",
  )
  for c, _, _ in records:
    if c.kind != "swiftnet":
      continue
    fulltrain.write_bundle(
        os.path.join(rel, f"{c.name}.json"),
        c.arch,
        cfg.dataset,
        recipe,
        {k: by_name[c.name][k] for k in keep},
    )
  io.write_json_atomic(
      os.path.join(rel, "recipe.json"),
      json.loads(json.dumps(dataclasses.asdict(recipe))),
  )


# --- command ------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
      "--config",
      required=True,
      help=(
          "a compare config, e.g. experiments/configs/"
          "compare_fashion_mnist.py:runlocal"
      ),
  )
  run_lib.add_arguments(parser)
  parser.epilog = (
      "Override config fields with --config.<field>=<value>, "
      "e.g. --config.recipe.epochs=2"
  )


def load(path: str, overrides: Sequence[str]) -> CompareConfig:
  """Config file + ``--config.x=y`` overrides -> `CompareConfig`."""
  from gram_jax import config as config_lib  # pylint: disable=import-outside-toplevel

  raw = config_lib.load_config_file(path)
  d = raw.to_dict() if hasattr(raw, "to_dict") else dict(raw)
  d = config_lib.apply_overrides(config_lib.plain(d), list(overrides))
  return parse_config(d)


def run(args: argparse.Namespace, rest) -> int:
  cfg = load(args.config, rest)
  out = run_compare(cfg, args.workdir, progress=not args.no_progress)
  print(markdown(out), end="")
  print(
      f"wrote {os.path.join(args.workdir, 'results.md')} (.csv, .json, "
      "pareto.png, curves.png, release/)"
  )
  return 0
