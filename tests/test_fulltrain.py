"""`gram-jax train`: recipes, resume, task adaptation."""

import json
import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from gram_jax import arch
from gram_jax import cli
from gram_jax import fulltrain
from gram_jax import metagraph as mg
from gram_jax.errors import GramJaxError
from gram_jax.space import SearchSpace


@pytest.fixture
def arch_file(tmp_path):
  space = SearchSpace(hierarchies=2, dags_per_hierarchy=2, nodes=4, width=0.25)
  g = mg.init(space, jax.random.key(0), init_weight=0.6)
  spec = arch.from_masks(
      space, g.ops, mg.sample(g, jax.random.key(1)), num_classes=10
  )
  path = str(tmp_path / "arch.json")
  spec.save(path)
  return path


def test_recipes_and_overrides():
  r = fulltrain.recipe_for("cifar10")
  assert (
      r.optimizer,
      r.learning_rate,
      r.schedule,
      r.weight_decay,
      r.augment,
  ) == ("momentum", 0.01, "step", 5e-4, "crop_flip")
  sched = fulltrain.schedule_fn(r, steps_per_epoch=10)
  total = r.epochs * 10
  assert sched(0) == pytest.approx(0.01)
  assert sched(int(total * 0.6)) == pytest.approx(0.001)
  assert sched(int(total * 0.8)) == pytest.approx(0.0001)
  im = fulltrain.recipe_for("imagenet2012")
  s = fulltrain.schedule_fn(im, steps_per_epoch=10)
  assert s(25) == pytest.approx(0.045 * 0.94)
  assert im.stem == ("conv3x3_32/2",) and im.input_size == 96
  assert fulltrain.recipe_for("digits", ["--recipe.epochs=3"]).epochs == 3
  with pytest.raises(GramJaxError, match="recipe.epochs: 'x' is not"):
    fulltrain.recipe_for("digits", ["--recipe.epochs=x"])
  with pytest.raises(GramJaxError, match="recipe.bogus: unknown field"):
    fulltrain.recipe_for("digits", ["--recipe.bogus=1"])
  with pytest.raises(GramJaxError, match="recipe.schedule"):
    fulltrain.recipe_for("digits", ["--recipe.schedule=linear"])


def test_train_resumes_to_the_same_result(tmp_path, arch_file, capsys):
  args = [
      "train",
      "--arch",
      arch_file,
      "--dataset",
      "digits",
      "--no-progress",
      "--recipe.epochs=3",
      "--recipe.batch_size=128",
  ]
  ref, run = str(tmp_path / "ref"), str(tmp_path / "run")
  assert cli.main(args + ["--workdir", ref]) == 0
  assert cli.main(args + ["--workdir", run, "--stop-after-epochs=1"]) == 0
  assert "resume" in capsys.readouterr().out
  assert cli.main(args + ["--workdir", run]) == 0
  a = json.load(open(os.path.join(ref, "result.json")))
  b = json.load(open(os.path.join(run, "result.json")))
  assert a["top1"] == b["top1"] and a["top5"] == b["top5"]
  assert a["top1"] > 0.5
  lines = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
  assert [l["epoch"] for l in lines] == [1, 2, 3]
  assert os.listdir(os.path.join(run, "tensorboard"))
  # a different recipe on the same workdir is refused
  capsys.readouterr()
  assert cli.main(args + ["--recipe.epochs=5", "--workdir", run]) == 2
  assert "recipe.epochs" in capsys.readouterr().err


def test_precise_bn_changes_only_the_evaluated_statistics(tmp_path, arch_file):
  """recipe.precise_bn: the same training (the checkpointed state and the
  params do not change), BN statistics recomputed for evaluation and in the
  saved network."""
  from gram_jax import io  # pylint: disable=import-outside-toplevel

  spec = arch.ArchSpec.load(arch_file)
  runs = {}
  for k in (0, 4):
    recipe = fulltrain.recipe_for(
        "digits",
        [
            "--recipe.epochs=1",
            "--recipe.batch_size=128",
            f"--recipe.precise_bn={k}",
        ],
    )
    wd = str(tmp_path / f"bn{k}")
    result = fulltrain.run_training(
        spec, "digits", wd, recipe=recipe, progress=False
    )
    runs[k] = (
        result,
        io.load_variables(
            os.path.join(wd, "final"),
            arch.ArchSpec.load(result["arch"]),
            result["input_shape"],
        ),
    )
  (_, v0), (r4, v4) = runs[0], runs[4]
  assert jax.tree.all(jax.tree.map(np.array_equal, v0["params"], v4["params"]))
  diffs = jax.tree.leaves(
      jax.tree.map(
          lambda a, b: float(np.abs(a - b).max()),
          v0["batch_stats"],
          v4["batch_stats"],
      )
  )
  assert max(diffs) > 1e-3
  assert 0.0 < r4["top1"] <= 1.0
  with pytest.raises(GramJaxError, match="recipe.precise_bn"):
    fulltrain.recipe_for("digits", ["--recipe.precise_bn=-1"])


def test_adaptation_to_another_dataset(tmp_path, arch_file):
  """A digits spec (1 channel, 10 classes) trains on 3-channel images with
  1000 classes and the ImageNet stem, with no new search."""
  with tfds.testing.mock_data(num_examples=48):
    result = fulltrain.run_training(
        arch.ArchSpec.load(arch_file),
        "imagenet2012",
        str(tmp_path / "run"),
        progress=False,
        recipe=fulltrain.recipe_for(
            "imagenet2012",
            [
                "--recipe.epochs=1",
                "--recipe.batch_size=16",
                "--recipe.input_size=32",
                "--recipe.max_examples=48",
            ],
        ),
    )
  spec = arch.ArchSpec.load(result["arch"])
  assert spec.num_classes == 1000
  assert spec.stem[0] == arch.Conv(3, 32, 2)
  assert result["input_shape"] == [32, 32, 3]
