"""Full training of a found network: recipes, resumable runs, metrics.

`gram-jax train --arch arch.json --dataset <name> --workdir <dir>` trains
`ExactNet(spec)`, and `gram-jax train --model mobilenet_v2 --width 0.35
[--resolution 96] ...` a registered baseline (`gram_jax.models.registry`),
with a recipe chosen by dataset (override any field with
``--recipe.<field>=<value>``):

  * ``cifar10`` (and the other 32x32 / 28x28 TFDS sets): the paper's CIFAR-10
    recipe [SN §4.1]: momentum SGD, lr 0.01 x0.1 at 50% and 75% of the
    epochs, L2 5e-4, pad-4 crop + flip; 200 epochs of batch 128 (the paper
    gives neither; ALGORITHMS.md 1.5);
  * ``imagenet2012``: the adaptation recipe: a 3x3/2 stem conv (two at input
    128) added before the generated model, RMSProp lr 0.045 x0.94 every 2
    epochs, L2 1e-5, input 96 (ALGORITHMS.md 1.3 #11, 1.5);
  * ``digits``: Adam 4e-3, 40 epochs, in memory, offline.

Class count and input channels follow the dataset (task adaptation, paper
§4.4): a spec found on one dataset trains on another without a new search.
The workdir holds `config.json`, `metrics.jsonl` (one line per epoch),
TensorBoard events, orbax checkpoints (resumed at the last finished epoch),
and at the end `final/` (variables for `gram-jax export`), `arch.json` (or
`model.json` for a baseline) and `result.json`. ``recipe.stem`` applies to
SwiftNet architectures only: the baselines have their own stride-2 stem.

Every dataset but ImageNet is held in memory, where ``recipe.augment``
(crop after ``augment_pad`` pixels of padding, and flip) is applied per
batch, and ``recipe.val_examples`` training images can be held out as a
validation split (seeded by ``recipe.split_seed``). With one, each epoch
records the validation accuracy and the training accuracy on a fixed
unaugmented subset, and the test split is evaluated only once, at the end.
``--recipe-file`` reads the recipe from a JSON object of its fields, and
``--arch`` also takes a bundle (`write_bundle`: architecture, dataset and
recipe in one file, as `gram-jax compare` releases them), so that one
command retrains a compared row.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import time
from typing import Any, Callable, Dict, Iterator, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gram_jax import arch as arch_lib
from gram_jax import cost as cost_lib
from gram_jax import config as config_lib
from gram_jax import data as data_lib
from gram_jax import io
from gram_jax import run as run_lib
from gram_jax import train as train_lib
from gram_jax.errors import GramJaxError
from gram_jax.models import ExactNet
from gram_jax.models import registry
from gram_jax.space import parse_op

SCHEDULES = ("constant", "step", "exponential", "cosine")
AUGMENTS = ("none", "crop_flip")


@dataclasses.dataclass(frozen=True)
class Recipe:
  """Everything a full training run depends on (besides the spec)."""

  epochs: int = 40
  batch_size: int = 64
  optimizer: str = "adam"
  learning_rate: float = 4e-3
  schedule: str = "constant"
  decay_rate: float = 0.1  # "step": x0.1 at 50%, 75%; "exponential"
  decay_epochs: float = 2.0  # "exponential": every this many epochs
  weight_decay: float = 0.0  # coupled L2 on kernels
  augment: str = "none"
  augment_pad: int = 4  # "crop_flip": padding (pixels) before the crop
  input_size: int = 0  # 0: the dataset's native size
  stem: Tuple[str, ...] = ()  # convs added before the model ("conv3x3_32/2")
  eval_every: int = 1
  seed: int = 0
  max_examples: int = 0  # cap on training and test examples (0: all)
  val_examples: int = 0  # held out of the training split (0: none)
  train_examples: int = 0  # seeded subset of the rest (0: all of it)
  split_seed: int = -1  # seed of the held-out splits (-1: `seed`)
  # Training batches whose BatchNorm statistics replace the running
  # averages for every evaluation and in the saved network (precise BN;
  # 0: the running averages). The training state keeps its own.
  precise_bn: int = 0

  _checks = {
      "epochs": config_lib.in_range(1),
      "batch_size": config_lib.in_range(1),
      "optimizer": config_lib.one_of(train_lib.OPTIMIZERS),
      "learning_rate": config_lib.in_range(0, lo_open=True),
      "schedule": config_lib.one_of(SCHEDULES),
      "decay_rate": config_lib.in_range(0, 1, lo_open=True),
      "decay_epochs": config_lib.in_range(0, lo_open=True),
      "weight_decay": config_lib.in_range(0),
      "augment": config_lib.one_of(AUGMENTS),
      "augment_pad": config_lib.in_range(0),
      "input_size": config_lib.in_range(0),
      "eval_every": config_lib.in_range(1),
      "seed": config_lib.in_range(0),
      "max_examples": config_lib.in_range(0),
      "val_examples": config_lib.in_range(0),
      "train_examples": config_lib.in_range(0),
      "split_seed": (lambda v: v >= -1, ">= 0, or -1 for `seed`"),
      "precise_bn": config_lib.in_range(0),
  }

  def __post_init__(self):
    # Values come from JSON and config files too: the config layer checks
    # each field's type, then its `_checks` entry (one line naming it).
    config_lib.check_settings(self, "recipe")
    object.__setattr__(self, "stem", tuple(self.stem))
    for s in self.stem:
      parse_op(s, field="recipe.stem", allow_stride=True)


RECIPES = {
    "digits": Recipe(),
    "cifar10": Recipe(
        epochs=200,
        batch_size=128,
        optimizer="momentum",
        learning_rate=0.01,
        schedule="step",
        decay_rate=0.1,
        weight_decay=5e-4,
        augment="crop_flip",
    ),
    "imagenet2012": Recipe(
        epochs=100,
        batch_size=256,
        optimizer="rmsprop",
        learning_rate=0.045,
        schedule="exponential",
        decay_rate=0.94,
        decay_epochs=2.0,
        weight_decay=1e-5,
        input_size=96,
        stem=("conv3x3_32/2",),
    ),
}
for _name in ("mnist", "fashion_mnist", "svhn_cropped"):
  RECIPES[_name] = dataclasses.replace(
      RECIPES["cifar10"], epochs=50, augment="none"
  )


def recipe_for(
    dataset: str, overrides=(), *, base: Optional[Recipe] = None
) -> Recipe:
  """The default recipe of `dataset` (or `base`) with
  ``--recipe.<field>=<v>`` applied."""
  base = dataclasses.asdict(
      base if base is not None else RECIPES.get(dataset, Recipe())
  )
  for item in overrides:
    if not item.startswith("--recipe.") or "=" not in item:
      raise GramJaxError(
          f"{item.split('=')[0]}: unknown argument; allowed: "
          "--recipe.<field>=<value>"
      )
    key, text = item[len("--recipe.") :].split("=", 1)
    if key not in base:
      raise GramJaxError(
          f"recipe.{key}: unknown field; allowed: {', '.join(sorted(base))}"
      )
    # The type of the field's default decides how the text parses: a
    # recipe read from JSON may hold 2 where the field is a float.
    base[key] = config_lib.parse_value(
        text, getattr(Recipe(), key), f"recipe.{key}"
    )
  return Recipe(**base)


BUNDLE_FORMAT = "gram_jax.TrainBundle"


def with_recipe_defaults(d: Dict[str, Any]) -> Dict[str, Any]:
  """A recipe as recorded in a workdir's config.json, with the fields it
  lacks at their defaults: a run written before a field existed ran with
  the default, so it still resumes (and compares equal)."""
  defaults = json.loads(json.dumps(dataclasses.asdict(Recipe())))
  return {**{k: v for k, v in defaults.items() if k not in d}, **d}


def _with_old_recipe_defaults(old: Dict[str, Any]) -> Dict[str, Any]:
  """A stored config.json with `with_recipe_defaults` applied to its
  recipe."""
  if isinstance(old.get("recipe"), dict):
    old = {**old, "recipe": with_recipe_defaults(old["recipe"])}
  return old


def recipe_from_dict(d: Any, where: str = "recipe") -> Recipe:
  """A `Recipe` from a JSON object of its fields (all optional)."""
  if not isinstance(d, dict):
    raise GramJaxError(f"{where}: expected an object of recipe fields")
  names = {f.name for f in dataclasses.fields(Recipe)}
  unknown = sorted(set(d) - names)
  if unknown:
    raise GramJaxError(
        f"{where}.{unknown[0]}: unknown field; allowed: "
        f"{', '.join(sorted(names))}"
    )
  try:
    return Recipe(**d)
  except GramJaxError as e:
    raise GramJaxError(str(e).replace("recipe.", f"{where}.", 1)) from None


def write_bundle(
    path: str,
    spec: arch_lib.ArchSpec,
    dataset: str,
    recipe: Recipe,
    measured: Optional[Dict[str, Any]] = None,
) -> None:
  """One JSON file that `gram-jax train --arch <path>` retrains exactly.

  Holds the (already adapted) architecture, the dataset, the recipe and,
  for the reader, what the run that wrote it measured.
  """
  io.write_json_atomic(
      path,
      {
          "format": BUNDLE_FORMAT,
          "version": 1,
          "dataset": dataset,
          "recipe": json.loads(json.dumps(dataclasses.asdict(recipe))),
          "arch": spec.to_dict(),
          "measured": measured or {},
      },
  )


def load_arch_file(path: str):
  """``(spec, recipe or None, dataset or None)`` of an arch.json or of a
  bundle written by `write_bundle`."""
  d = io.read_json(path, arch_lib.SpecError)
  if isinstance(d, dict) and d.get("format") == BUNDLE_FORMAT:
    if d.get("version") != 1:
      raise arch_lib.SpecError(
          f"{path}.version: expected 1, got {d.get('version')!r}"
      )
    dataset = d.get("dataset")
    if dataset not in data_lib.DATASETS:
      raise arch_lib.SpecError(
          f"{path}.dataset: {dataset!r} is not "
          "allowed; allowed: "
          f"{', '.join(data_lib.DATASETS)}"
      )
    spec = arch_lib.ArchSpec.from_dict(d.get("arch"), where=f"{path}.arch")
    return spec, recipe_from_dict(d.get("recipe"), f"{path}.recipe"), dataset
  return arch_lib.ArchSpec.from_dict(d, where=path), None, None


def adapt_spec(
    spec: arch_lib.ArchSpec, *, num_classes: int, stem: Tuple[str, ...] = ()
) -> arch_lib.ArchSpec:
  """Task adaptation [SN §4.4]: the class count of the new dataset and the
  recipe's stem convs before the generated model."""
  extra = []
  for s in stem:
    op = parse_op(s, field="recipe.stem", allow_stride=True)
    extra.append(arch_lib.Conv(op.kernel, op.channels, op.stride))
  return dataclasses.replace(
      spec, num_classes=num_classes, stem=tuple(extra) + spec.stem
  )


def schedule_fn(recipe: Recipe, steps_per_epoch: int):
  lr, total = recipe.learning_rate, recipe.epochs * steps_per_epoch
  if recipe.schedule == "step":
    return optax.piecewise_constant_schedule(
        lr,
        {
            int(total * 0.5): recipe.decay_rate,
            int(total * 0.75): recipe.decay_rate,
        },
    )
  if recipe.schedule == "exponential":
    return optax.exponential_decay(
        lr,
        transition_steps=max(1, int(recipe.decay_epochs * steps_per_epoch)),
        decay_rate=recipe.decay_rate,
        staircase=True,
    )
  if recipe.schedule == "cosine":
    return optax.cosine_decay_schedule(lr, max(1, total))
  return lr


def crop_flip(
    x: np.ndarray, rng: np.random.Generator, pad: int, fill: np.ndarray
) -> np.ndarray:
  """Random crop after `pad` pixels of padding, and random horizontal flip.

  The in-memory form of `data.tfds_pipeline`'s ``crop_flip``: every image
  of the batch ``x: f32[N, H, W, C]`` gets its own offset and flip. The
  padding is `fill` (per channel): the images are already standardised, and
  the darkest training value stands for the black border the TFDS pipeline
  pads before standardising.
  """
  n, h, w, _ = x.shape
  if pad:
    padded = np.empty((n, h + 2 * pad, w + 2 * pad, x.shape[3]), x.dtype)
    padded[...] = fill
    padded[:, pad : pad + h, pad : pad + w] = x
    oy = rng.integers(0, 2 * pad + 1, n)
    ox = rng.integers(0, 2 * pad + 1, n)
    rows = (oy[:, None] + np.arange(h))[:, :, None]
    cols = (ox[:, None] + np.arange(w))[:, None, :]
    x = padded[np.arange(n)[:, None, None], rows, cols]
  else:
    x = x.copy()
  flip = rng.random(n) < 0.5
  x[flip] = x[flip, :, ::-1]
  return x


class _Data:
  """Training batches and the evaluation splits, in memory or from TFDS.

  Every dataset but ``imagenet2012`` is held in memory (`data.load`). There,
  ``recipe.val_examples`` images are held out of the training split as the
  validation split, and ``recipe.train_examples`` (if set) of the rest are
  trained on, both drawn with ``recipe.split_seed``: with a fixed split
  seed every model and training seed sees the same three splits.
  ``train_eval`` is a fixed, unaugmented subset of the training images (as
  many as the validation split) on which the training accuracy is measured.
  """

  def __init__(self, name: str, recipe: Recipe, data_dir: Optional[str]):
    self.name, self.recipe, self.data_dir = name, recipe, data_dir
    size = recipe.input_size or None
    self.val = self.train_eval = None
    split_seed = recipe.seed if recipe.split_seed < 0 else recipe.split_seed
    if name != "imagenet2012" or recipe.max_examples:
      ds = data_lib.load(
          name,
          data_dir=data_dir,
          image_size=size,
          max_examples=recipe.max_examples or None,
          seed=split_seed,
      )
      self.memory = ds
      self.image_shape = tuple(int(d) for d in ds.image_shape)
      self.num_classes = ds.num_classes
      x, y = ds.x_train, ds.y_train
      if recipe.val_examples or recipe.train_examples:
        need = recipe.val_examples + max(
            recipe.train_examples, recipe.batch_size
        )
        if need > len(x):
          raise GramJaxError(
              f"recipe.val_examples: {recipe.val_examples} validation + "
              f"{max(recipe.train_examples, recipe.batch_size)} training "
              f"images need {need}, the training split has {len(x)}"
          )
        order = np.random.default_rng(split_seed).permutation(len(x))
        held, rest = order[: recipe.val_examples], order[recipe.val_examples :]
        if recipe.train_examples:
          rest = rest[: recipe.train_examples]
        if recipe.val_examples:
          self.val = (x[held], y[held])
          k = min(len(rest), recipe.val_examples)
          self.train_eval = (x[rest[:k]], y[rest[:k]])
        x, y = x[rest], y[rest]
      self.x_train, self.y_train = x, y
      # Darkest value per channel: the padding colour of `crop_flip`.
      self.fill = x.min(axis=(0, 1, 2))
      self.train_size = len(x)
    else:
      if recipe.val_examples or recipe.train_examples:
        raise GramJaxError(
            "recipe.val_examples: held-out splits need the "
            f"dataset in memory; {name} is streamed from "
            "TFDS (allowed: 0)"
        )
      self.memory = None
      shape, self.num_classes = data_lib.info(name)
      if size:
        shape = (size, size, shape[2])
      self.image_shape = tuple(shape)
      import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

      try:
        builder = tfds.builder(name, data_dir=data_dir)
        self.train_size = builder.info.splits["train"].num_examples
      except Exception:  # pylint: disable=broad-except
        self.train_size = 0
      if not self.train_size:
        raise data_lib.DatasetError(
            f"dataset {name!r} is not downloaded in "
            f"{data_dir or '~/tensorflow_datasets'}; download it with "
            f"tfds.load({name!r}, download=True) on a machine with network"
        )
    self.steps = self.train_size // recipe.batch_size
    if self.steps < 1:
      raise GramJaxError(
          f"recipe.batch_size: {recipe.batch_size} is larger "
          f"than the training set ({self.train_size})"
      )

  def train_epoch(self, epoch: int) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    seed = self.recipe.seed * 100003 + epoch
    if self.memory is not None:
      # Its own stream: the batch order stays what it was without
      # augmentation.
      rng = np.random.default_rng([seed, 1])
      for x, y in data_lib.batches(
          self.x_train, self.y_train, self.recipe.batch_size, seed=seed
      ):
        if self.recipe.augment == "crop_flip":
          x = crop_flip(x, rng, self.recipe.augment_pad, self.fill)
        yield x, y
      return
    ds = data_lib.tfds_pipeline(
        self.name,
        "train",
        batch_size=self.recipe.batch_size,
        data_dir=self.data_dir,
        image_size=self.recipe.input_size or None,
        train=True,
        seed=seed,
        augment=self.recipe.augment,
    )
    for x, y in ds.take(self.steps).as_numpy_iterator():
      yield x, y

  def eval_batches(self, batch_size: int, split: str = "test"):
    """``(x, y, weight)`` batches of `batch_size` (in memory: the last one
    padded, weight 0 on the padding, so one compiled program serves every
    split)."""
    if self.memory is not None:
      x, y = {
          "test": (self.memory.x_test, self.memory.y_test),
          "val": self.val,
          "train": self.train_eval,
      }[split]
      for idx, weight in train_lib.padded_chunks(len(y), batch_size):
        yield x[idx], y[idx], weight
      return
    split = "validation" if self.name == "imagenet2012" else "test"
    ds = data_lib.tfds_pipeline(
        self.name,
        split,
        batch_size=batch_size,
        data_dir=self.data_dir,
        image_size=self.recipe.input_size or None,
        train=False,
    )
    for x, y in ds.as_numpy_iterator():
      yield x, y, np.ones(len(y), np.float32)


def splits(
    dataset: str, recipe: Recipe, data_dir: Optional[str] = None
) -> "_Data":
  """The training, validation and test images a run with `recipe` sees
  (``x_train``, ``val``, ``memory.x_test``; see `_Data`)."""
  return _Data(dataset, recipe, data_dir)


class _Network(NamedTuple):
  """What the training loop needs to know about the network it trains."""

  module: Any  # Flax module, NHWC in, logits out
  config: Dict[str, Any]  # its part of config.json
  cost: Callable[[Tuple[int, ...]], Any]  # input shape -> Cost
  save: Callable[[str], Dict[str, Any]]  # workdir -> result.json fields


def run_training(
    spec: arch_lib.ArchSpec,
    dataset: str,
    workdir: str,
    *,
    recipe: Recipe,
    data_dir: Optional[str] = None,
    progress: bool = True,
    stop_after_epochs: Optional[int] = None,
) -> Dict[str, Any]:
  """Trains `spec` on `dataset` in `workdir` (resuming) and evaluates it."""
  data = _Data(dataset, recipe, data_dir)
  spec = adapt_spec(spec, num_classes=data.num_classes, stem=recipe.stem)

  def save(workdir):
    path = os.path.join(workdir, "arch.json")
    spec.save(path)
    return {"arch": path}

  network = _Network(
      ExactNet(spec),
      {"arch": spec.to_dict()},
      lambda shape: cost_lib.count(spec, shape),
      save,
  )
  return _run(
      network,
      data,
      dataset,
      workdir,
      recipe=recipe,
      progress=progress,
      stop_after_epochs=stop_after_epochs,
  )


def run_model_training(
    model: str,
    dataset: str,
    workdir: str,
    *,
    recipe: Recipe,
    width: float = 1.0,
    data_dir: Optional[str] = None,
    progress: bool = True,
    stop_after_epochs: Optional[int] = None,
) -> Dict[str, Any]:
  """Trains the registered baseline `model` at `width` like `run_training`.

  The class count and input channels follow the dataset; the input size is
  ``recipe.input_size`` (0: the dataset's). ``recipe.stem`` is not used.
  `result.json` gets ``model``, ``width`` and ``model_json`` (a
  `model.json` naming the model, width, classes and input shape) instead
  of ``arch``.
  """
  registry.spec(model, width)  # bad name or width: fail before any work
  data = _Data(dataset, recipe, data_dir)
  classes = data.num_classes
  module = registry.build(model, num_classes=classes, width=width)
  desc = {"name": model, "width": float(width), "num_classes": classes}

  def save(workdir):
    path = os.path.join(workdir, "model.json")
    io.write_json_atomic(path, {**desc, "input_shape": list(data.image_shape)})
    return {"model": model, "width": float(width), "model_json": path}

  network = _Network(
      module,
      {"model": desc},
      lambda shape: registry.cost(
          model, shape, num_classes=classes, width=width
      ),
      save,
  )
  return _run(
      network,
      data,
      dataset,
      workdir,
      recipe=recipe,
      progress=progress,
      stop_after_epochs=stop_after_epochs,
  )


def _run(
    network: _Network,
    data: "_Data",
    dataset: str,
    workdir: str,
    *,
    recipe: Recipe,
    progress: bool,
    stop_after_epochs: Optional[int],
) -> Dict[str, Any]:
  run_cfg = {
      "dataset": dataset,
      "recipe": dataclasses.asdict(recipe),
      **network.config,
  }
  run_lib.prepare_workdir(
      workdir, run_cfg, upgrade=_with_old_recipe_defaults, prefix=""
  )

  net = network.module
  x0 = jnp.zeros((1,) + data.image_shape)
  variables = jax.jit(net.init)(jax.random.key(recipe.seed), x0)
  tx = train_lib.make_optimizer(
      recipe.optimizer, schedule_fn(recipe, data.steps)
  )
  opt_state = tx.init(variables["params"])
  train_step = train_lib.make_train_step(
      net.apply, tx, weight_decay=recipe.weight_decay
  )
  step = jax.jit(train_step, donate_argnums=(0, 1))
  evaluate = jax.jit(train_lib.make_eval_step(net.apply, top_k=5))
  moments = jax.jit(train_lib.make_bn_moments(net.apply))

  def for_eval(variables):
    """The variables evaluations see: precise BN statistics from the
    first `recipe.precise_bn` batches of epoch 0's order, if asked for."""
    if not recipe.precise_bn:
      return variables
    batches = (jnp.asarray(x) for x, _ in data.train_epoch(0))
    return train_lib.recompute_batch_stats(
        moments, variables, itertools.islice(batches, recipe.precise_bn)
    )

  ckpt = run_lib.Checkpoints(workdir, max_to_keep=2)
  start = 0
  restored = ckpt.restore({"variables": variables, "opt_state": opt_state})
  if restored is not None:
    variables = restored.tree["variables"]
    opt_state = restored.tree["opt_state"]
    start = restored.step

  def run_eval(variables, split="test"):
    correct = top5 = loss = 0.0
    n = 0
    for x, y, w in data.eval_batches(500, split):
      c, c5, l = evaluate(
          variables,
          jnp.asarray(x),
          jnp.asarray(y, jnp.int32),
          jnp.asarray(w, jnp.float32),
      )
      correct, top5, loss, n = (
          correct + c,
          top5 + c5,
          loss + l,
          n + float(np.sum(w)),
      )
    return float(correct) / n, float(top5) / n, float(loss) / n

  end = (
      recipe.epochs
      if stop_after_epochs is None
      else min(recipe.epochs, start + stop_after_epochs)
  )
  bar = run_lib.progress_bar(
      progress and start < end,
      total=recipe.epochs,
      initial=start,
      desc=f"train on {dataset}",
      unit="epoch",
  )
  # Epoch lines past the restored epoch are dropped; each written line also
  # goes to TensorBoard.
  with run_lib.JsonlLog(
      os.path.join(workdir, "metrics.jsonl"),
      key="epoch",
      before=start + 1,
      tensorboard=os.path.join(workdir, "tensorboard"),
  ) as metrics:
    seen = None  # what the last evaluation saw
    for epoch in range(start, end):
      t0 = time.perf_counter()
      losses = []
      for x, y in data.train_epoch(epoch):
        variables, opt_state, loss = step(
            variables, opt_state, jnp.asarray(x), jnp.asarray(y, jnp.int32)
        )
        losses.append(loss)
      train_loss = float(jnp.mean(jnp.stack(losses)))
      if not math.isfinite(train_loss):
        raise GramJaxError(
            f"training diverged at epoch {epoch + 1} (loss "
            f"{train_loss}); lower recipe.learning_rate"
        )
      rec = {
          "epoch": epoch + 1,
          "train_loss": train_loss,
          "seconds": time.perf_counter() - t0,
      }
      if (epoch + 1) % recipe.eval_every == 0 or epoch + 1 == recipe.epochs:
        seen = for_eval(variables)
        if data.val is not None:
          # With a validation split the test split is not looked at during
          # training: it is evaluated once, after the last epoch.
          rec["val_top1"], _, rec["val_loss"] = run_eval(seen, "val")
          rec["train_top1"], _, rec["train_eval_loss"] = run_eval(seen, "train")
        else:
          rec["top1"], rec["top5"], rec["test_loss"] = run_eval(seen)
      metrics.write(rec)
      ckpt.save(epoch + 1, {"variables": variables, "opt_state": opt_state})
      if bar is not None:
        shown = rec.get("top1", rec.get("val_top1", float("nan")))
        bar.set_postfix(
            loss=f"{train_loss:.3f}", top1=f"{shown:.4f}", refresh=False
        )
        bar.update(1)
  ckpt.close()
  if bar is not None:
    bar.close()
  if end < recipe.epochs:
    return {"complete": False, "epoch": end}
  # The last epoch was evaluated (unless this call only resumed a finished
  # run): its statistics are the final network's.
  variables = for_eval(variables) if seen is None else seen
  top1, top5, test_loss = run_eval(variables)
  held = {}
  if data.val is not None:
    held["val_top1"] = run_eval(variables, "val")[0]
    held["train_top1"] = run_eval(variables, "train")[0]
    held["val_examples"] = len(data.val[1])
  c = network.cost(data.image_shape)
  final = os.path.join(workdir, "final")
  if not os.path.exists(final):
    io.save_variables(final, variables)
  described = network.save(workdir)
  result = {
      "complete": True,
      "dataset": dataset,
      "top1": top1,
      "top5": top5,
      "test_loss": test_loss,
      "macs": c.macs,
      "params": c.params,
      "accuracy_density": cost_lib.accuracy_density(100 * top1, c.macs),
      "input_shape": list(data.image_shape),
      "epochs": recipe.epochs,
      "train_examples": data.train_size,
      **held,
      **described,
      "variables": final,
  }
  io.write_json_atomic(os.path.join(workdir, "result.json"), result)
  return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--arch", help="arch.json to train (or --model)")
  parser.add_argument(
      "--model",
      help="a registered baseline instead of --arch: "
      + ", ".join(sorted(registry.MODELS)),
  )
  parser.add_argument(
      "--width",
      type=float,
      default=None,
      help="width multiplier of --model (default 1.0)",
  )
  parser.add_argument(
      "--resolution",
      type=int,
      default=None,
      help="input size (images resized to it); the same as --recipe.input_size",
  )
  parser.add_argument(
      "--dataset",
      default=None,
      choices=data_lib.DATASETS,
      help="default: the dataset of an --arch bundle, else digits",
  )
  run_lib.add_arguments(parser, stop_after="--stop-after-epochs")
  parser.add_argument("--data-dir", default=None)
  parser.add_argument(
      "--recipe-file",
      default=None,
      help=(
          "a JSON object of recipe fields (e.g. a gram-jax "
          "compare release/recipe.json) in place of the "
          "dataset's default recipe"
      ),
  )
  parser.add_argument(
      "--upscale",
      type=float,
      default=1.0,
      help="node-wise channel up-scaling factor [SN §3.3]",
  )
  parser.epilog = (
      "Override recipe fields with --recipe.<field>=<value>, "
      "e.g. --recipe.epochs=10"
  )


def run(args: argparse.Namespace, rest) -> int:
  if bool(args.arch) == bool(args.model):
    raise GramJaxError(
        "--arch / --model: give exactly one (an arch.json, or a baseline: "
        + ", ".join(sorted(registry.MODELS))
        + ")"
    )
  if args.model and args.upscale != 1.0:
    raise GramJaxError(
        "--upscale: only used with --arch (baselines scale with --width)"
    )
  if args.arch and args.width is not None:
    raise GramJaxError(
        "--width: only used with --model (architectures scale with --upscale)"
    )
  if args.resolution is not None:
    if args.resolution < 1:
      raise GramJaxError(
          f"--resolution: {args.resolution} is not allowed; "
          "allowed: an integer >= 1"
      )
    rest = list(rest) + [f"--recipe.input_size={args.resolution}"]
    given = {r for r in rest if r.startswith("--recipe.input_size=")}
    if len(given) > 1:
      raise GramJaxError(
          "--resolution: conflicts with --recipe.input_size; give one"
      )
  spec = base = None
  if args.arch:
    # A bundle (gram-jax compare's release files) brings its recipe and
    # dataset: the command alone retrains the row it came from.
    spec, base, bundle_dataset = load_arch_file(args.arch)
    if args.dataset is None:
      args.dataset = bundle_dataset
  if args.dataset is None:
    args.dataset = "digits"
  if args.recipe_file:
    if base is not None:
      raise GramJaxError(
          "--recipe-file: --arch is a bundle that brings its "
          "own recipe; give one of them"
      )
    base = recipe_from_dict(io.read_json(args.recipe_file), args.recipe_file)
  recipe = recipe_for(args.dataset, rest, base=base)
  if args.model:
    result = run_model_training(
        args.model,
        args.dataset,
        args.workdir,
        recipe=recipe,
        width=1.0 if args.width is None else args.width,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        stop_after_epochs=args.stop_after_epochs,
    )
  else:
    if args.upscale != 1.0:
      spec = arch_lib.upscale(spec, args.upscale)
    result = run_training(
        spec,
        args.dataset,
        args.workdir,
        recipe=recipe,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        stop_after_epochs=args.stop_after_epochs,
    )
  if not result["complete"]:
    print(run_lib.stopped("epoch", result["epoch"], recipe.epochs))
    return 0
  print(json.dumps(result, indent=1))
  return 0
