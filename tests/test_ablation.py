"""`gram-jax ablation`: GRAM vs random at an equal budget (tiny, on digits)."""

import json
import os

import numpy as np
import pytest

from gram_jax import ablation, cli
from gram_jax.search import config as config_lib
from gram_jax.search import loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(
    ROOT, "experiments", "configs", "ablation_fashion_mnist.py"
)
TINY = [
    "--config.search.dataset=digits",
    "--config.search.space.stem=",
    "--config.search.space.hierarchies=1",
    "--config.search.space.dags_per_hierarchy=2",
    "--config.search.space.nodes=4",
    "--config.search.proxy.num_train=60",
    "--config.search.proxy.num_val=40",
    "--config.search.train.epochs=1",
    "--config.search.train.batch_size=20",
    "--config.search.search.iterations=5",
    "--config.search.checkpoint_every=2",
    "--config.seeds=0,1",
    "--config.recipe.epochs=1",
    "--config.recipe.batch_size=64",
    "--config.measure_latency=false",
]


def test_ablation_end_to_end_and_resume(tmp_path, capsys):
  work = str(tmp_path / "abl")
  assert (
      cli.main(
          [
              "ablation",
              "--config",
              CONFIG + ":runlocal",
              "--workdir",
              work,
              "--no-progress",
          ]
          + TINY
      )
      == 0
  )
  res = json.load(open(os.path.join(work, "results.json")))
  kinds = {(r["strategy"], r["kind"]) for r in res["rows"]}
  assert kinds == {
      ("gram", "pruned"),
      ("gram", "best-sample"),
      ("random", "best-sample"),
  }
  assert len(res["rows"]) == 6
  budget = res["max_macs"]
  for r in res["rows"]:
    assert r["macs"] <= budget and 0 <= r["top1"] <= 100
  # the budget is the median MACs of random search's samples
  macs = []
  for seed in (0, 1):
    path = os.path.join(
        work, "search", f"random_seed{seed}", "candidates.jsonl"
    )
    macs += [json.loads(l)["macs"] for l in open(path)]
  assert budget == pytest.approx(float(np.median(macs)))
  # random never changes its weights; GRAM does
  for strategy, moved in (("random", False), ("gram", True)):
    meta = json.load(
        open(
            os.path.join(work, "search", f"{strategy}_seed0", "metagraph.json")
        )
    )
    w = np.asarray(meta["dags"][0]["weights"])
    tri = w[np.triu_indices(4, 1)]
    assert (not np.allclose(tri, 0.5)) == moved
  diff = res["paired_top1_difference"]["gram/pruned - random/best-sample"]
  assert diff["n"] == 2
  for name in (
      "results.md",
      "results.csv",
      "ablation_curves.png",
      "weight_spread.png",
  ):
    assert os.path.getsize(os.path.join(work, name)) > 0, name
  # a second run trains nothing and gives the same table
  before = open(os.path.join(work, "results.md")).read()
  capsys.readouterr()
  assert (
      cli.main(
          [
              "ablation",
              "--config",
              CONFIG + ":runlocal",
              "--workdir",
              work,
              "--no-progress",
          ]
          + TINY
      )
      == 0
  )
  assert "train " not in capsys.readouterr().out
  assert open(os.path.join(work, "results.md")).read() == before


def test_replayed_weights_match_the_search(tmp_path):
  abl = ablation.resolve(CONFIG + ":runlocal", TINY)
  cfg = ablation.search_config(abl, "gram", 0)
  res = loop.run_search(cfg, str(tmp_path / "s"), progress=False)
  w = ablation.replay_weights(cfg, res.records)
  assert w.shape[0] == len(res.records) + 1
  np.testing.assert_allclose(
      w[-1], np.asarray(res.state.graph.weights), atol=1e-6
  )
  assert np.allclose(w[0][0][np.triu_indices(4, 1)], 0.5)


@pytest.mark.parametrize(
    "override, field",
    [
        ("--config.strategies=gram,evolution", "config.strategies:"),
        ("--config.seeds=0,0", "config.seeds:"),
        ("--config.max_macs=-1", "config.max_macs:"),
        ("--config.prune_step=0", "config.prune_step:"),
        ("--config.recipe.epochs=few", "config.recipe.epochs:"),
        ("--config.search.search.alpha=-1", "config.search.search.alpha:"),
        ("--config.bogus=1", "config.bogus: unknown field"),
    ],
)
def test_bad_config_is_one_line(tmp_path, capsys, override, field):
  work = tmp_path / "abl"
  code = cli.main([
      "ablation",
      "--config",
      CONFIG + ":runlocal",
      "--workdir",
      str(work),
      override,
  ])
  err = capsys.readouterr().err.strip()
  assert code == 2, err
  assert field in err and len(err.splitlines()) == 1, err
  assert not work.exists()


@pytest.mark.parametrize(
    "value, expected", [(False, False), ("Yes", True), ("sometimes", None)]
)
def test_measure_latency_is_a_strict_boolean(value, expected):
  d = config_lib.load_overridden(CONFIG + ":runlocal", [])
  d["measure_latency"] = value
  if expected is None:
    with pytest.raises(
        ablation.AblationError,
        match=r"^config.measure_latency: 'sometimes' is not",
    ):
      ablation.from_dict(d)
  else:
    assert ablation.from_dict(d).measure_latency is expected
