"""`gram-jax experiment`: the paper-table configs and a tiny end-to-end run."""

import json
import os

import pytest

from gram_jax import cli
from gram_jax import experiment
from gram_jax.search import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "experiments", "configs")
TINY_SEARCH = [
    "--config.search.space.hierarchies=1",
    "--config.search.space.dags_per_hierarchy=2",
    "--config.search.space.nodes=4",
    "--config.search.proxy.num_train=60",
    "--config.search.proxy.num_val=40",
    "--config.search.train.epochs=1",
    "--config.search.train.batch_size=20",
    "--config.search.search.iterations=3",
]


@pytest.mark.parametrize(
    "name", ["table1_cifar10", "table3_imagenet", "table4_adaptation"]
)
@pytest.mark.parametrize("variant", ["", ":runlocal"])
def test_table_configs_validate(name, variant):
  exp = experiment.resolve(os.path.join(CONFIGS, name + ".py") + variant, [])
  if variant:
    assert exp.datasets == ("digits",) and not exp.reference
  else:
    assert exp.reference and "digits" not in exp.datasets
  if name == "table3_imagenet":
    assert len(experiment.runs(exp)) == 12
    assert set(exp.upscales) == {1.0, 1.25, 1.5}


def test_bad_fields_are_one_line(tmp_path, capsys):
  config = os.path.join(CONFIGS, "table1_cifar10.py:runlocal")
  for override, expected in [
      ("--config.levels=0.3,1.5", "config.levels: "),
      ("--config.datasets=cifar11", "config.datasets: "),
      ("--config.prune_mode=median", "config.prune_mode: 'median' is not"),
      ("--config.search.search.cost=joules", "config.search.search.cost"),
      ("--config.colour=red", "config.colour: unknown field"),
  ]:
    assert (
        cli.main([
            "experiment",
            "--config",
            config,
            "--workdir",
            str(tmp_path / "w"),
            override,
        ])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err, err
  assert not os.path.exists(tmp_path / "w")


def test_tiny_experiment_runs_and_resumes(tmp_path, capsys):
  config = os.path.join(CONFIGS, "table1_cifar10.py:runlocal")
  work = str(tmp_path / "exp")
  args = [
      "experiment",
      "--config",
      config,
      "--workdir",
      work,
      "--no-progress",
      "--config.levels=0.2,0.7",
      "--config.recipe.epochs=1",
  ] + TINY_SEARCH
  assert cli.main(args) == 0
  out = json.load(open(os.path.join(work, "results.json")))
  rows = out["rows"]
  assert [r["level"] for r in rows] == [0.2, 0.7]
  assert rows[0]["macs"] >= rows[1]["macs"]
  for r in rows:
    assert 0 <= r["top1"] <= 100 and r["latency_ms"] > 0
    res = os.path.join(work, r["dir"], "result.json")
    assert os.path.exists(res)
  for name in ("results.md", "results.csv", "pareto.png"):
    assert os.path.getsize(os.path.join(work, name)) > 0
  # A second call trains nothing again: result files are untouched.
  stamps = {
      r["dir"]: os.path.getmtime(os.path.join(work, r["dir"], "result.json"))
      for r in rows
  }
  capsys.readouterr()
  assert cli.main(args) == 0
  assert "[1/2]" not in capsys.readouterr().out
  for d, t in stamps.items():
    assert os.path.getmtime(os.path.join(work, d, "result.json")) == t
  # Killed after a training wrote its result.json but before the experiment
  # added its fields to it: the resume measures that network again.
  path = os.path.join(work, rows[0]["dir"], "result.json")
  res = json.load(open(path))
  for key in ("train_seconds", "latency_ms", "latency_threads"):
    del res[key]
  json.dump(res, open(path, "w"))
  assert cli.main(args) == 0
  again = json.load(open(os.path.join(work, "results.json")))["rows"]
  assert again[0]["latency_ms"] > 0 and again[0]["top1"] == rows[0]["top1"]
  assert again[0]["train_seconds"] is not None
  # A finished network trained for another config is not silently reused.
  assert cli.main(args + ["--config.recipe.epochs=2"]) == 2
  assert "trained for another config" in capsys.readouterr().err
  # Adaptation from that search, at another input size: no new search.
  adapt = os.path.join(CONFIGS, "table4_adaptation.py:runlocal")
  work2 = str(tmp_path / "adapt")
  assert (
      cli.main([
          "experiment",
          "--config",
          adapt,
          "--workdir",
          work2,
          "--no-progress",
          "--config.levels=0.5",
          "--config.recipe.epochs=1",
          f"--config.from_workdir={work}/search",
      ])
      == 0
  )
  rows2 = json.load(open(os.path.join(work2, "results.json")))["rows"]
  assert rows2[0]["input_shape"] == [16, 16, 1]
  assert not os.path.exists(os.path.join(work2, "search"))


@pytest.mark.parametrize(
    "value, expected", [(True, True), ("no", False), ("maybe", None), (0, None)]
)
def test_measure_latency_is_a_strict_boolean(value, expected):
  d = config_lib.load_overridden(
      os.path.join(CONFIGS, "table1_cifar10.py:runlocal"), []
  )
  d["measure_latency"] = value
  if expected is None:
    with pytest.raises(
        experiment.ExperimentError,
        match=r"^config.measure_latency: .* allowed: true",
    ):
      experiment.from_dict(d)
  else:
    assert experiment.from_dict(d).measure_latency is expected
