"""`gram-jax compare`: the protocol's config checks, the held-out splits
and augmentation, matching and summary, and a tiny end-to-end run with two
seeds (resume, int8 columns, release files)."""

import dataclasses
import json
import os
import types

import jax
import numpy as np
import pytest

from gram_jax import arch
from gram_jax import cli
from gram_jax import compare
from gram_jax import data as data_lib
from gram_jax import fulltrain
from gram_jax import metagraph as mg
from gram_jax.errors import GramJaxError
from gram_jax.search import config as config_lib
from gram_jax.search import loop
from gram_jax.space import SearchSpace

CONFIGS = os.path.join(
    os.path.dirname(__file__), "..", "experiments", "configs"
)
SPACE = SearchSpace(hierarchies=1, dags_per_hierarchy=2, nodes=3, width=0.25)


@pytest.fixture(scope="module")
def search_wd(tmp_path_factory):
  """A finished-looking digits search workdir: metagraph.json, config.json."""
  wd = tmp_path_factory.mktemp("search")
  g = mg.init(SPACE, jax.random.key(0), init_weight=0.9)
  g = g.replace(
      weights=jax.random.uniform(jax.random.key(1), g.weights.shape, minval=0.5)
  )
  state = types.SimpleNamespace(graph=g, step=3, baseline=0.0)
  (wd / "metagraph.json").write_text(json.dumps(loop.metagraph_dict(state)))
  (wd / "config.json").write_text(json.dumps({"dataset": "digits"}))
  return str(wd)


@pytest.fixture(scope="module")
def arch_file(tmp_path_factory):
  g = mg.init(SPACE, jax.random.key(0), init_weight=0.8)
  spec = arch.from_masks(
      SPACE, g.ops, mg.sample(g, jax.random.key(1)), num_classes=10
  )
  path = str(tmp_path_factory.mktemp("arch") / "tiny.json")
  spec.save(path)
  return path


def _recipe(**over):
  r = {
      "epochs": 2,
      "batch_size": 64,
      "optimizer": "adam",
      "learning_rate": 4e-3,
      "schedule": "constant",
      "weight_decay": 0.0,
      "augment": "crop_flip",
      "augment_pad": 1,
      "val_examples": 128,
      "train_examples": 256,
      "split_seed": 0,
  }
  r.update(over)
  return r


def _config(arch_file, **over):
  d = {
      "dataset": "digits",
      "data_dir": "",
      "recipe": _recipe(),
      "seeds": [0, 1],
      "swiftnet": {
          "sw": {
              "role": "searched",
              "searched_on": "digits",
              "archs": [arch_file],
          }
      },
      "baselines": ["mbconv_tiny@1.0"],
      "latency": {"threads": 1, "runs": 3, "warmup": 1},
      "int8": {"calibration": 32},
      "similar_points": 100.0,
  }
  d.update(over)
  return d


def _family(**fd):
  return {"f": fd}


def test_config_errors_name_the_field(tmp_path, arch_file, search_wd):
  sw = {"role": "searched", "search_workdir": search_wd, "prune_levels": [0.5]}
  bad = [
      (
          {"recipe": _recipe(seed=1)},
          r"^config.recipe.seed: not allowed in the protocol; set config.seeds",
      ),
      (
          {"recipe": _recipe(stem=["conv3x3_16/2"])},
          r"^config.recipe.stem: .*config.swiftnet.<family>.stem",
      ),
      (
          {"recipe": _recipe(max_examples=100)},
          r"^config.recipe.max_examples: .*test split",
      ),
      ({"recipe": _recipe(eval_every=2)}, r"^config.recipe.eval_every"),
      (
          {"recipe": _recipe(augment="none")},
          r"^config.recipe.augment: 'none' is not allowed; allowed: crop_flip",
      ),
      ({"recipe": _recipe(augment_pad=0)}, r"^config.recipe.augment_pad"),
      (
          {"recipe": _recipe(val_examples=0)},
          r"^config.recipe.val_examples: 0 is not allowed",
      ),
      (
          {
              "recipe": {
                  k: v for k, v in _recipe().items() if k != "weight_decay"
              }
          },
          r"^config.recipe.weight_decay: missing",
      ),
      ({"recipe": _recipe(split_seed=-1)}, r"^config.recipe.split_seed"),
      (
          {"recipe": _recipe(epochs="x")},
          r"^config.recipe.epochs: 'x' is not allowed; allowed: an integer",
      ),
      ({"recipe": _recipe(schedule="linear")}, r"^config.recipe.schedule"),
      ({"recipe": _recipe(bogus=1)}, r"^config.recipe.bogus: unknown field"),
      ({"recipe": None}, r"^config.recipe: missing"),
      (
          {"seeds": [0]},
          r"^config.seeds: \[0\] is not allowed; allowed: at " "least two",
      ),
      ({"seeds": [1, 1]}, r"^config.seeds"),
      (
          {
              "swiftnet": _family(
                  role="searched",
                  searched_on="digits",
                  archs=[arch_file],
                  learning_rate=0.1,
              )
          },
          r"^config.swiftnet.f.learning_rate: a per-model training setting is "
          "not allowed",
      ),
      (
          {"swiftnet": _family(**sw, epochs=3)},
          r"^config.swiftnet.f.epochs: a per-model training setting",
      ),
      (
          {"baselines": [{"model": "mbconv_tiny", "batch_size": 8}]},
          r"^config.baselines\[0\].batch_size: a per-model training setting",
      ),
      (
          {"swiftnet": _family(**dict(sw, role="best"))},
          r"^config.swiftnet.f.role: 'best' is not allowed; allowed: searched, "
          "transfer",
      ),
      (
          {"swiftnet": _family(**dict(sw, role="transfer"))},
          r"^config.swiftnet.f.role: 'transfer' but the search ran on 'digits'",
      ),
      (
          {
              "swiftnet": _family(
                  role="searched", searched_on="cifar10", archs=[arch_file]
              )
          },
          r"^config.swiftnet.f.role: 'searched' but the search ran on "
          "'cifar10'",
      ),
      (
          {"swiftnet": _family(**dict(sw, searched_on="mnist"))},
          r"^config.swiftnet.f.searched_on: 'mnist', but .* says the search"
          r" ran "
          "on 'digits'",
      ),
      (
          {"swiftnet": _family(role="searched", archs=[arch_file])},
          r"^config.swiftnet.f.searched_on: '' is not allowed",
      ),
      (
          {"swiftnet": _family(**dict(sw, search_workdir=str(tmp_path)))},
          r"^config.swiftnet.f.search_workdir: .* holds no metagraph.json",
      ),
      (
          {"swiftnet": _family(**sw, archs=[arch_file])},
          r"^config.swiftnet.f: give exactly one of search_workdir",
      ),
      (
          {"swiftnet": _family(**dict(sw, prune_levels=[2]))},
          r"^config.swiftnet.f.prune_levels: \[2\] is not allowed",
      ),
      (
          {"swiftnet": _family(**dict(sw, prune_mode="top"))},
          r"^config.swiftnet.f.prune_mode",
      ),
      (
          {"swiftnet": _family(**dict(sw, upscales=[0]))},
          r"^config.swiftnet.f.upscales",
      ),
      (
          {"swiftnet": _family(**dict(sw, stem=["conv3x3"]))},
          r"config.swiftnet.f.stem",
      ),
      (
          {"swiftnet": _family(**sw, width=2)},
          r"^config.swiftnet.f.width: unknown field",
      ),
      ({"swiftnet": {}}, r"^config.swiftnet: no SwiftNet family"),
      (
          {"dataset": "imagenet2012"},
          r"^config.dataset: 'imagenet2012' is not " "allowed",
      ),
      ({"baselines": ["resnet@1"]}, r"^config.baselines\[0\]: model"),
      ({"baselines": ["mbconv_tiny@x"]}, r"^config.baselines\[0\]: width"),
      ({"baselines": []}, r"^config.baselines: empty"),
      ({"baselines": ["mbconv_tiny", "mbconv_tiny@1"]}, r"named"),
      ({"latency": {"runs": 0}}, r"^config.latency.runs"),
      ({"int8": {"calibration": 0}}, r"^config.int8.calibration"),
      ({"int8": {"bits": 4}}, r"^config.int8.bits: unknown field"),
      ({"similar_points": -1}, r"^config.similar_points"),
      ({"extra": 1}, r"^config.extra: unknown field"),
  ]
  for over, msg in bad:
    with pytest.raises(GramJaxError, match=msg) as e:
      compare.parse_config(_config(arch_file, **over))
    assert "\n" not in str(e.value), str(e.value)


def test_cli_refuses_a_broken_protocol_with_status_2(
    tmp_path, arch_file, capsys
):
  d = _config(arch_file)
  d["swiftnet"]["sw"]["epochs"] = 50
  cfg = tmp_path / "cfg.py"
  cfg.write_text(
      "import ml_collections\ndef get_config():\n"
      f"  return ml_collections.ConfigDict({d!r})\n"
  )
  wd = str(tmp_path / "cmp")
  assert cli.main(["compare", "--config", str(cfg), "--workdir", wd]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "config.swiftnet.sw.epochs" in err[0]
  assert not os.path.exists(wd)
  # An override naming a field the config lacks is refused too.
  cfg.write_text(
      "import ml_collections\ndef get_config():\n"
      f"  return ml_collections.ConfigDict({_config(arch_file)!r})"
      "\n"
  )
  assert (
      cli.main([
          "compare",
          "--config",
          str(cfg),
          "--workdir",
          wd,
          "--config.swiftnet.sw.learning_rate=1",
      ])
      == 2
  )
  assert "config.swiftnet.sw.learning_rate" in capsys.readouterr().err


def test_families_from_a_search_workdir(search_wd, arch_file):
  fams = {
      "own": {
          "role": "searched",
          "search_workdir": search_wd,
          "prune_levels": [0.3, 0.6],
          "prune_mode": "quantile",
          "upscales": [1.0, 2.0],
      },
      "t4": {
          "role": "transfer",
          "searched_on": "cifar10",
          "metagraph": os.path.join(search_wd, "metagraph.json"),
          "prune_levels": [0.5],
          "prune_mode": "quantile",
          "stem": ["conv3x3_16/2", "conv3x3_16/2"],
      },
  }
  cfg = compare.parse_config(_config(arch_file, swiftnet=fams))
  names = [c.name for c in cfg.candidates]
  assert names == [
      "own-L0.30-x1",
      "own-L0.30-x2",
      "own-L0.60-x1",
      "own-L0.60-x2",
      "t4-L0.50-x1",
      "mbconv_tiny-1",
  ]
  by = {c.name: c for c in cfg.candidates}
  assert by["own-L0.30-x1"].role == "searched"
  assert by["own-L0.30-x1"].searched_on == "digits"
  own = by["own-L0.30-x1"].arch
  assert own.stem == () and own.num_classes == 10
  up = by["own-L0.30-x2"].arch
  assert [n.channels * 2 for d in own.dags for n in d.nodes] == [
      n.channels for d in up.dags for n in d.nodes
  ]
  t4 = by["t4-L0.50-x1"].arch
  assert t4.stem == (arch.Conv(3, 16, 2), arch.Conv(3, 16, 2))
  assert by["mbconv_tiny-1"].family == "mbconv_tiny"
  # Lower levels keep more edges (quantile pruning).
  assert own.num_edges >= by["own-L0.60-x1"].arch.num_edges


def test_shipped_configs_follow_the_protocol(arch_file, tmp_path, monkeypatch):
  # The configs name their search workdirs relative to the working
  # directory; run from an empty one, whatever a checkout holds in runs/.
  monkeypatch.chdir(tmp_path)
  for name, arg in (
      ("compare_fashion_mnist", None),
      ("compare_fashion_mnist", "runlocal"),
      ("compare_cifar10", None),
  ):
    path = os.path.join(CONFIGS, f"{name}.py")
    raw = config_lib.load_config_file(path + (f":{arg}" if arg else ""))
    d = config_lib.plain(raw.to_dict())
    assert "gram-jax compare" in open(path).read()
    # The search workdirs do not exist here: the first family is checked
    # up to them.
    with pytest.raises(
        GramJaxError, match="search_workdir: .* holds no metagraph.json"
    ):
      compare.parse_config(d)
    searched_on = d["dataset"]
    for fam in d["swiftnet"].values():
      fam.pop("search_workdir")
      fam.pop("prune_levels")
      fam.pop("prune_mode")
      fam["archs"] = [arch_file]
      fam["searched_on"] = (
          searched_on if fam["role"] == "searched" else "digits"
      )
    cfg = compare.parse_config(d)
    assert len(cfg.seeds) >= 2 and cfg.recipe.augment == "crop_flip"
    assert cfg.recipe.val_examples == 5000 and cfg.similar_points == 0.5
    assert {c.family for c in cfg.candidates if c.kind == "baseline"} == {
        "mobilenet_v2",
        "fbnet",
    }
  assert not os.path.exists(os.path.join(CONFIGS, "compare_digits.py"))


def test_fulldata_variant_trains_the_shipped_networks(monkeypatch):
  """compare_fashion_mnist.py:fulldata names the release bundles in the
  repo: it parses as shipped (from the repository root), with the whole
  training split and the protocol's recipe, and its SwiftNets are the
  released architectures within the paper's 0.86 M MACs."""
  monkeypatch.chdir(os.path.join(CONFIGS, "..", ".."))
  path = os.path.join(CONFIGS, "compare_fashion_mnist.py")
  raw = config_lib.load_config_file(path + ":fulldata")
  cfg = compare.parse_config(config_lib.plain(raw.to_dict()))
  assert cfg.recipe.train_examples == 0 and cfg.recipe.val_examples == 5000
  assert cfg.recipe.precise_bn > 0 and cfg.recipe.augment == "crop_flip"
  assert len(cfg.seeds) >= 2
  sw = [c for c in cfg.candidates if c.kind == "swiftnet"]
  assert {c.role for c in sw} == {"searched", "transfer"}
  for c in sw:
    released, _, _ = fulltrain.load_arch_file(c.source)
    assert c.arch.to_dict() == released.to_dict()
    with open(c.source) as f:
      assert json.load(f)["measured"]["macs"] <= 860_000, c.source
  with pytest.raises(ValueError, match="config variant: 'nope'"):
    config_lib.load_config_file(path + ":nope")


def test_crop_flip():
  rng = np.random.default_rng(0)
  x = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5, 1) + 1
  x = np.repeat(x, 50, axis=0)
  fill = np.array([-7.0], np.float32)
  out = fulltrain.crop_flip(x, rng, 2, fill)
  assert out.shape == x.shape
  padded = np.full((len(x), 8, 9, 1), -7.0, np.float32)
  padded[:, 2:6, 2:7] = x
  for i in range(len(x)):
    windows = [
        padded[i, a : a + 4, b : b + 5] for a in range(5) for b in range(5)
    ]
    windows += [w[:, ::-1] for w in windows]
    assert any(np.array_equal(out[i], w) for w in windows)
  # Offsets and flips vary over the batch; the input is not modified.
  assert len({out[i].tobytes() for i in range(0, len(x), 2)}) > 10
  assert x[0, 0, 0, 0] == 1
  flips = fulltrain.crop_flip(x, rng, 0, fill)
  flipped = [np.array_equal(f, o[:, ::-1]) for f, o in zip(flips, x)]
  assert all(np.array_equal(f, o) or fl for f, o, fl in zip(flips, x, flipped))
  assert 0.3 < np.mean(flipped) < 0.7


def test_held_out_splits(monkeypatch):
  """Validation and training subsets are disjoint, drawn with the split
  seed (not the training seed), and the test split is untouched."""
  n = 1000

  def fake_load(name, **kw):
    del name, kw
    x = np.zeros((n, 4, 4, 1), np.float32)
    x[:, 0, 0, 0] = np.arange(n)  # pixel (0, 0) names the image
    xt = np.zeros((200, 4, 4, 1), np.float32)
    xt[:, 0, 0, 0] = -np.arange(200)
    return data_lib.Dataset(
        "digits", x, np.arange(n) % 10, xt, np.arange(200) % 10, 10
    )

  monkeypatch.setattr(data_lib, "load", fake_load)

  def ids(a):
    return set(a[:, 0, 0, 0].astype(int).tolist())

  def splits(**over):
    r = fulltrain.Recipe(**{
        **dict(
            val_examples=100, train_examples=300, split_seed=0, batch_size=50
        ),
        **over,
    })
    d = fulltrain.splits("digits", r)
    return ids(d.val[0]), ids(d.x_train), ids(d.train_eval[0]), d

  val, train, teval, d = splits()
  assert len(val) == 100 and len(train) == 300 and not val & train
  assert teval <= train and len(teval) == 100
  assert d.train_size == 300 and d.steps == 6
  assert splits(seed=5)[:3] == (val, train, teval)
  assert splits(split_seed=1)[0] != val
  assert splits(train_examples=0)[0] == val  # val does not move
  assert len(splits(train_examples=0)[1]) == 900
  batches = list(d.eval_batches(64, "test"))
  assert sum(float(w.sum()) for _, _, w in batches) == 200
  assert all(len(x) == 64 for x, _, _ in batches)
  with pytest.raises(GramJaxError, match="recipe.val_examples: 990 "):
    splits(val_examples=990)


def _row(name, family, kind, val, top1, macs, ms, int8_ms=None):
  return {
      "name": name,
      "family": family,
      "kind": kind,
      "role": "searched",
      "searched_on": "x",
      "val_top1": val,
      "top1": top1,
      "top1_std": 0.1,
      "macs": macs,
      "density": top1 / (macs / 1e6),
      "val_density": val / (macs / 1e6),
      "latency_ms": ms,
      "latency_int8_ms": int8_ms or ms / 2,
  }


def test_matching_and_summary_use_the_validation_split():
  rows = [
      _row("s1", "sw", "swiftnet", 90.0, 93.7, 0.8e6, 1.0),
      _row("s2", "sw", "swiftnet", 80.0, 80.0, 0.4e6, 0.5),
      _row("s3", "sw", "swiftnet", 90.7, 91.0, 6e6, 0.2),
      _row("m1", "mobilenet_v2", "baseline", 89.6, 95.0, 1e6, 2.0),
      _row("m2", "mobilenet_v2", "baseline", 90.4, 90.4, 2e6, 4.0),
      _row("f1", "fbnet", "baseline", 95.0, 89.0, 1e6, 0.1),
  ]
  rows = compare.match_baselines(rows, 0.5)
  s1 = rows[0]
  # Both MobileNets are within 0.5 validation points; the faster matches,
  # though its test top-1 is 1.3 points away. FBNet is 5 points off.
  assert s1["match"]["mobilenet_v2"]["baseline"] == "m1"
  assert s1["match"]["mobilenet_v2"]["latency_ratio"] == pytest.approx(2.0)
  assert s1["match"]["mobilenet_v2"]["density_ratio"] == pytest.approx(
      (93.7 / 0.8) / 95.0
  )
  assert s1["match"]["fbnet"] is None
  assert rows[1]["match"]["mobilenet_v2"] is None
  assert rows[3]["match"] == {}
  s = compare.summarise(rows)["sw"]
  # Best validation density: s2 (200), not s1 (112.5) .
  assert s["vs"]["mobilenet_v2"]["density"]["swiftnet"] == "s2"
  assert s["vs"]["mobilenet_v2"]["density"]["baseline"] == "m1"
  assert s["vs"]["mobilenet_v2"]["density"]["paper"] == 2.15
  lat = s["vs"]["mobilenet_v2"]["latency"]
  assert (lat["swiftnet"], lat["baseline"], lat["paper"]) == ("s3", "m2", 2.42)
  assert lat["ratio"] == pytest.approx(20.0)
  assert s["vs"]["fbnet"]["latency"] is None
  # Front under 5 M MACs (s3 has 6 M): at m1's 2 ms the best SwiftNet is
  # s1 with 93.7 < 95.0; at m2's 4 ms also s1, 93.7 >= 90.4.
  front = {
      p["baseline"]: p["at_or_above"] for p in s["vs"]["mobilenet_v2"]["front"]
  }
  assert front == {"m1": False, "m2": True}
  assert s["vs"]["fbnet"]["front"][0]["swiftnet_top1"] is None
  # Table 4: within 0.86 M MACs, s1 has the best validation top-1.
  assert s["table4"]["row"] == "s1" and s["table4"]["met"]
  assert compare.train_gain(
      [{"train_top1": a} for a in (0.5, 0.8, 0.9, 0.91)]
  ) == pytest.approx(1.0)


def test_old_training_workdirs_resume_with_new_recipe_fields(
    tmp_path, arch_file
):
  recipe = fulltrain.Recipe(epochs=2, batch_size=128, max_examples=256)
  wd = str(tmp_path / "run")
  spec = arch.ArchSpec.load(arch_file)
  fulltrain.run_training(
      spec, "digits", wd, recipe=recipe, progress=False, stop_after_epochs=1
  )
  path = os.path.join(wd, "config.json")
  cfg = json.load(open(path))
  for key in ("val_examples", "train_examples", "split_seed", "augment_pad"):
    del cfg["recipe"][key]
  json.dump(cfg, open(path, "w"))
  assert fulltrain.run_training(
      spec, "digits", wd, recipe=recipe, progress=False
  )["complete"]


def test_compare_end_to_end_two_seeds_and_resume(tmp_path, arch_file, capsys):
  cfg_path = tmp_path / "cfg.py"
  cfg_path.write_text(
      "import ml_collections\n"
      "def get_config():\n"
      f"  return ml_collections.ConfigDict({_config(arch_file)!r})\n"
  )
  wd = str(tmp_path / "cmp")
  args = [
      "compare",
      "--config",
      str(cfg_path),
      "--workdir",
      wd,
      "--no-progress",
  ]
  assert cli.main(args) == 0
  out = json.load(open(os.path.join(wd, "results.json")))
  assert [r["name"] for r in out["rows"]] == ["sw-tiny-x1", "mbconv_tiny-1"]
  assert out["splits"] == {"train": 256, "val": 128, "test": 360}
  for r in out["rows"]:
    seeds = [
        json.load(
            open(
                os.path.join(wd, "models", r["name"], f"seed{s}", "result.json")
            )
        )
        for s in (0, 1)
    ]
    top1 = [100 * s["top1"] for s in seeds]
    assert r["top1"] == pytest.approx(np.mean(top1))
    assert r["top1_std"] == pytest.approx(np.std(top1, ddof=1))
    assert r["val_top1"] == pytest.approx(
        np.mean([100 * s["val_top1"] for s in seeds])
    )
    assert 0 <= r["int8_top1"] <= 100 and r["int8_top1_std"] >= 0
    assert r["latency_ms"] > 0 and r["latency_int8_ms"] > 0
    assert r["tflite_max_abs_diff"] < 1e-4
    assert r["density"] == pytest.approx(r["top1"] / (r["macs"] / 1e6))
    assert r["train_gain_last_quarter"] is not None
    # Per epoch: validation and training accuracy, never the test split.
    for s in (0, 1):
      lines = [
          json.loads(l)
          for l in open(
              os.path.join(wd, "models", r["name"], f"seed{s}", "metrics.jsonl")
          )
      ]
      assert [l["epoch"] for l in lines] == [1, 2]
      assert all(
          "val_top1" in l and "train_top1" in l and "top1" not in l
          for l in lines
      )
    int8 = json.load(
        open(os.path.join(wd, "models", r["name"], "seed1", "int8.json"))
    )
    assert int8["test_examples"] == 360
    lat = json.load(open(os.path.join(wd, "models", r["name"], "latency.json")))
    assert lat["int8"]["input"]["dtype"] == "int8"
    assert lat["float32"]["input"]["dtype"] == "float32"
  sw = out["rows"][0]
  assert sw["dag_input"] == "8x8"
  assert sw["match"]["mbconv_tiny"]["baseline"] == "mbconv_tiny-1"
  assert len(out["curves"]["sw-tiny-x1"]) == 2
  md = open(os.path.join(wd, "results.md")).read()
  assert f"| sw-tiny-x1 | sw | {sw['top1']:.2f} ± {sw['top1_std']:.2f} |" in md
  assert "256 training images, 128 validation images" in md
  assert "Table 4 target" in md
  head = open(os.path.join(wd, "results.csv")).readline().strip()
  assert head.split(",")[:8] == [
      "name",
      "family",
      "kind",
      "top1",
      "top1_std",
      "val_top1",
      "val_top1_std",
      "int8_top1",
  ]
  for f in ("pareto.png", "curves.png"):
    assert os.path.getsize(os.path.join(wd, f)) > 10000
  # The release bundle retrains the row with its recipe, alone.
  bundle = os.path.join(wd, "release", "sw-tiny-x1.json")
  spec, recipe, dataset = fulltrain.load_arch_file(bundle)
  assert dataset == "digits" and recipe.seed == 0
  assert recipe.val_examples == 128 and recipe.augment == "crop_flip"
  assert json.load(open(bundle))["measured"]["top1"] == sw["top1"]
  run = str(tmp_path / "retrain")
  assert (
      cli.main([
          "train",
          "--arch",
          bundle,
          "--workdir",
          run,
          "--no-progress",
          "--stop-after-epochs=1",
      ])
      == 0
  )
  got = json.load(open(os.path.join(run, "config.json")))
  want = json.load(
      open(os.path.join(wd, "models", "sw-tiny-x1", "seed0", "config.json"))
  )
  assert got == want
  assert (
      fulltrain.recipe_from_dict(
          json.load(open(os.path.join(wd, "release", "recipe.json")))
      )
      == recipe
  )

  # Resume: nothing is trained, exported or timed again.
  stamp = os.path.getmtime(
      os.path.join(wd, "models", "mbconv_tiny-1", "latency.json")
  )
  capsys.readouterr()
  assert cli.main(args) == 0
  assert capsys.readouterr().out.count("finished before") == 4
  assert (
      os.path.getmtime(
          os.path.join(wd, "models", "mbconv_tiny-1", "latency.json")
      )
      == stamp
  )
  # A lost int8 export of one seed is redone alone, without retraining.
  seed1 = os.path.join(wd, "models", "sw-tiny-x1", "seed1")
  metrics = os.path.getmtime(os.path.join(seed1, "metrics.jsonl"))
  os.remove(os.path.join(seed1, "int8.json"))
  assert cli.main(args) == 0
  assert capsys.readouterr().out.count("running") == 1
  assert os.path.exists(os.path.join(seed1, "int8.json"))
  assert os.path.getmtime(os.path.join(seed1, "metrics.jsonl")) == metrics
  # A different protocol on the same workdir is refused, naming the field.
  assert cli.main(args + ["--config.recipe.epochs=3"]) == 2
  assert "recipe.epochs" in capsys.readouterr().err


def test_recipe_files_and_bundles_are_validated(tmp_path, arch_file):
  assert fulltrain.with_recipe_defaults({"epochs": 3})["val_examples"] == 0
  assert fulltrain.with_recipe_defaults({"epochs": 3})["epochs"] == 3
  with pytest.raises(
      GramJaxError,
      match=r"^r.json.epochs: 'x' is not " "allowed; allowed: an integer$",
  ):
    fulltrain.recipe_from_dict({"epochs": "x"}, "r.json")
  with pytest.raises(GramJaxError, match=r"^r.json.bogus: unknown field"):
    fulltrain.recipe_from_dict({"bogus": 1}, "r.json")
  spec = arch.ArchSpec.load(arch_file)
  path = str(tmp_path / "b.json")
  fulltrain.write_bundle(path, spec, "digits", fulltrain.Recipe(epochs=3))
  got, recipe, dataset = fulltrain.load_arch_file(path)
  assert (got, recipe.epochs, dataset) == (spec, 3, "digits")
  assert fulltrain.load_arch_file(arch_file) == (spec, None, None)
  d = json.load(open(path))
  d["dataset"] = "nope"
  json.dump(d, open(path, "w"))
  with pytest.raises(
      GramJaxError, match=r"b.json.dataset: 'nope' is not " "allowed"
  ):
    fulltrain.load_arch_file(path)
  # A bundle brings its recipe: --recipe-file beside it is refused.
  fulltrain.write_bundle(path, spec, "digits", fulltrain.Recipe(epochs=3))
  rf = tmp_path / "r.json"
  rf.write_text("{}")
  assert (
      cli.main([
          "train",
          "--arch",
          path,
          "--recipe-file",
          str(rf),
          "--workdir",
          str(tmp_path / "w"),
      ])
      == 2
  )


def test_markdown_sets_the_paper_beside_ours():
  rows = [
      _row("s1", "sw", "swiftnet", 90.0, 93.7, 0.8e6, 1.0),
      _row("m1", "mobilenet_v2", "baseline", 89.8, 92.0, 1e6, 2.5),
      _row("f1", "fbnet", "baseline", 95.0, 95.0, 1.1e6, 3.0),
  ]
  for r in rows:
    r.update(
        val_top1_std=0.2,
        int8_top1=r["top1"] - 0.1,
        int8_top1_std=0.3,
        params=100000,
        train_gain_last_quarter=0.4,
        dag_input="7x7" if r["kind"] == "swiftnet" else None,
        input_shape=[28, 28, 1],
    )
  rows = compare.match_baselines(rows, 0.5)
  out = {
      "dataset": "fashion_mnist",
      "seeds": [0, 1],
      "recipe": dataclasses.asdict(
          fulltrain.Recipe(
              epochs=15,
              optimizer="momentum",
              augment="crop_flip",
              val_examples=5000,
              split_seed=0,
          )
      ),
      "splits": {"train": 8000, "val": 5000, "test": 10000},
      "similar_points": 0.5,
      "latency": {"threads": 1, "runs": 100, "machine": {}},
      "rows": rows,
      "summary": compare.summarise(rows),
  }
  md = compare.markdown(out)
  assert (
      "| s1 | sw | 93.70 ± 0.10 | 90.00 ± 0.20 | 93.60 ± 0.30 | 0.800 |" in md
  )
  assert "| 7x7 | - | m1 (2.50x) |" in md  # no FBNet similar; MobileNet

  assert (
      "| sw | mobilenet_v2 | 1.27x (s1 117.1 vs m1 92.0) | 2.15x | "
      "2.50x / 2.50x (s1 vs m1) | 2.42x | 1 of 1 mobilenet_v2 points |"
      in md
  )
  # f1 is slower than s1 but 1.3 points more accurate.
  assert (
      "| sw | fbnet | 1.36x (s1 117.1 vs f1 86.4) | 2.35x | no baseline "
      "within the band | 1.47x | 0 of 1 fbnet points |"
      in md
  )
  assert "8000 training images, 5000 validation images" in md
  assert "Every model's training top-1 rose by at most 1 point" in md
  rows[1]["train_gain_last_quarter"] = 2.5
  assert (
      "Not plateaued (training top-1 rose by more than 1 point over the "
      "last quarter of the epochs; see curves.png): m1."
      in compare.markdown(dict(out, rows=rows))
  )
  assert "Published fashion_mnist results" in md and "human 83.5%" in md
  assert (
      "s1 (best validation top-1 within the budget) 93.70 ± 0.10% at "
      "0.800 M MACs: met."
      in md
  )


def test_archs_may_be_release_bundles(tmp_path, arch_file):
  """A release bundle (what a comparison ships) is an `archs` entry: its
  architecture is the row's, and the row keeps the bundle's own name."""
  spec = arch.ArchSpec.load(arch_file)
  bundle = str(tmp_path / "sw-L0.50-x1.json")
  fulltrain.write_bundle(bundle, spec, "digits", fulltrain.Recipe())
  fam = {"role": "searched", "searched_on": "digits"}
  cfg = compare.parse_config(
      _config(
          arch_file,
          swiftnet={"sw": dict(fam, archs=[bundle], upscales=[1.0, 2.0])},
      )
  )
  rows = {c.name: c for c in cfg.candidates if c.kind == "swiftnet"}
  assert sorted(rows) == ["sw-L0.50-x1", "sw-L0.50-x1-x2"]
  assert rows["sw-L0.50-x1"].arch.to_dict() == spec.to_dict()
  assert rows["sw-L0.50-x1-x2"].arch.to_dict() != spec.to_dict()
  # a plain arch.json keeps its suffix
  plain = compare.parse_config(_config(arch_file))
  assert [c.name for c in plain.candidates][0] == "sw-tiny-x1"
