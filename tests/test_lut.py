"""Latency lookup tables: JSON, the layer walk, the jitted predictor, build
(host and a fake phone), validate and the ``gram-jax lut`` command."""

import collections
import json
import os
import stat

import jax
import numpy as np
import pytest

from gram_jax import arch
from gram_jax import metagraph as mg
from gram_jax.cli import main
from gram_jax.cost import lut
from gram_jax.export import android
from gram_jax.export import tflite
from gram_jax.export.android import CommandResult
from gram_jax.space import SearchSpace

SHAPE = (8, 8, 1)

# A space small enough to measure in seconds: 5 entries, 8 one-layer models.
MICRO = SearchSpace(
    hierarchies=2,
    dags_per_hierarchy=1,
    nodes=3,
    ops=("conv1x1_4", "conv3x3_8"),
    width=1.0,
)
MICRO_SHAPE = (4, 4, 1)
QUICK = {"runs": 20, "rounds": 2, "warmup": 2}


def synthetic_table(space, shape=SHAPE, classes=10, seed=0, max_points=4):
  """A table with random latencies for every entry `space` needs."""
  rng = np.random.default_rng(seed)
  need = lut.requirements(space, shape, classes, max_points=max_points)
  curves = {
      k: lut.Curve(xs, tuple(rng.uniform(1e-3, 1e-2, len(xs))))
      for k, xs in need.items()
  }
  return lut.LatencyTable(
      "host",
      1,
      0.002,
      curves,
      scale=1.07,
      meta={
          "num_classes": classes,
          "input_shape": list(shape),
          "space": space.to_dict(),
      },
  )


# --- JSON --------------------------------------------------------------------


def test_round_trip(tmp_path):
  space = SearchSpace(
      hierarchies=2,
      dags_per_hierarchy=2,
      nodes=4,
      width=0.25,
      stem=("conv3x3_16/2",),
  )
  table = synthetic_table(space)
  path = str(tmp_path / "lut.json")
  table.save(path)
  again = lut.LatencyTable.load(path)
  assert again.curves.keys() == table.curves.keys()
  for k, c in table.curves.items():
    assert again.curves[k].x == c.x
    np.testing.assert_allclose(again.curves[k].ms, c.ms, rtol=1e-5)
  assert (again.target, again.threads, again.scale) == ("host", 1, 1.07)
  assert again.meta["input_shape"] == list(SHAPE)
  spec = lut.sample_specs(space, 10, 1)[0]
  assert again.predict(spec, SHAPE) == pytest.approx(
      table.predict(spec, SHAPE), rel=1e-5
  )
  text = open(path).read()
  assert '"format": "gram_jax.LatencyTable"' in text
  assert json.loads(text)["entries"][0]["kind"] == "conv"


def _entry(**change):
  e = {
      "kind": "conv",
      "kernel": 3,
      "stride": 1,
      "cout": 8,
      "height": 8,
      "width": 8,
      "x": [8, 16],
      "ms": [0.001, 0.002],
  }
  e.update(change)
  return {k: v for k, v in e.items() if v is not None}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": "x"}, "lut.json.format: expected 'gram_jax.LatencyTable'"),
        ({"version": 2}, "lut.json.version: expected 1"),
        (
            {"target": "tpu"},
            "lut.json.target: 'tpu' is not allowed; allowed: host, android",
        ),
        ({"threads": 0}, "lut.json.threads: 0 is not allowed"),
        ({"constant_ms": "fast"}, "lut.json.constant_ms: 'fast'"),
        ({"scale": 0}, "lut.json.scale: 0 is not allowed"),
        ({"scale": None}, "lut.json: missing field 'scale'"),
        ({"machine": [1]}, "lut.json.machine: expected an object"),
        ({"entries": {}}, "lut.json.entries: expected a list"),
        (
            {"entries": [_entry(kind="gelu")]},
            "lut.json.entries[0].kind: 'gelu' is not allowed",
        ),
        (
            {"entries": [_entry(kernel=None)]},
            "lut.json.entries[0]: missing field 'kernel'",
        ),
        (
            {"entries": [_entry(color=1)]},
            "lut.json.entries[0].color: unknown field",
        ),
        (
            {"entries": [_entry(cout=0)]},
            "lut.json.entries[0].cout: 0 is not allowed",
        ),
        (
            {"entries": [_entry(x=[16, 8])]},
            "lut.json.entries[0].x: must be strictly increasing",
        ),
        (
            {"entries": [_entry(ms=[0.001])]},
            "lut.json.entries[0].ms: expected 2 finite numbers >= 0",
        ),
        (
            {"entries": [_entry(ms=[0.001, -1])]},
            "lut.json.entries[0].ms: expected 2 finite numbers >= 0",
        ),
        (
            {"entries": [_entry(), _entry()]},
            "lut.json.entries[1]: duplicate conv entry with kernel=3",
        ),
        (
            {
                "entries": [{
                    "kind": "pool",
                    "mode": "min",
                    "height": 8,
                    "width": 8,
                    "x": [8],
                    "ms": [0.0],
                }]
            },
            "lut.json.entries[0].mode: 'min' is not allowed; allowed: max, avg",
        ),
    ],
)
def test_load_errors(change, message):
  d = {
      "format": lut.FORMAT,
      "version": lut.VERSION,
      "target": "host",
      "threads": 1,
      "constant_ms": 0.001,
      "scale": 1.0,
      "entries": [_entry()],
  }
  d.update(change)
  d = {k: v for k, v in d.items() if v is not None}
  with pytest.raises(lut.LutError) as e:
    lut.LatencyTable.from_json(json.dumps(d))
  assert str(e.value).startswith(message), str(e.value)
  assert "\n" not in str(e.value)


def test_load_file_errors(tmp_path):
  with pytest.raises(lut.LutError, match="cannot read"):
    lut.LatencyTable.load(str(tmp_path / "missing.json"))
  bad = tmp_path / "bad.json"
  bad.write_text("{")
  with pytest.raises(lut.LutError, match="bad.json: not valid JSON"):
    lut.LatencyTable.load(str(bad))


def test_missing_entry_is_explained():
  table = synthetic_table(MICRO, MICRO_SHAPE, classes=3)
  spec = lut.sample_specs(MICRO, 7, 1)[0]
  with pytest.raises(lut.LutError, match="no head entry with classes=7"):
    table.predict(spec, MICRO_SHAPE)


# --- the layer walk ----------------------------------------------------------


def test_interpolation():
  c = lut.Curve((8, 16, 32), (1.0, 2.0, 6.0))
  xs, ys, p = c.padded(5)
  assert [
      float(lut.interpolate(np.float64(x), xs, ys, p))
      for x in (8, 12, 16, 24, 32, 40, 4)
  ] == [1, 1.5, 2, 4, 6, 8, 0.5]
  table = lut.LatencyTable(
      "host", 1, 0.0, {("add", (2, 2)): lut.Curve((8,), (0.5,))}
  )
  assert table.lookup("add", (2, 2), 99) == 0.5


def test_requirements_sum_and_concat():
  space = SearchSpace(hierarchies=2, dags_per_hierarchy=3, nodes=8, width=0.25)
  need = lut.requirements(space, SHAPE, 10)
  assert need[("conv", (3, 1, 16, 8, 8))] == (1, 8, 16, 32)
  # Hierarchy 1 reads sums of three DAG widths from {8, 16, 32}.
  assert need[("head", (10, 4, 4))] == (24, 32, 40, 48, 56, 64, 72, 80, 96)
  assert need[("pad", (32, 8, 8))] == (8, 16)
  cat = lut.requirements(
      space.__class__(
          **{**space.to_dict(), "aggregate": "concat", "dag_output": "sinks"}
      ),
      SHAPE,
      10,
      max_points=5,
  )
  assert all(len(xs) <= 5 for xs in cat.values())
  # At most n - 1 = 7 sinks; a node reads at most 7 inputs.
  assert ("concat", (7, 8, 8)) in cat and ("concat", (8, 8, 8)) not in cat
  every = lut.requirements(
      space.__class__(**{**space.to_dict(), "aggregate": "concat"}),
      SHAPE,
      10,
      max_points=5,
  )
  # dag_output="all": a DAG output concatenates up to all 8 nodes.
  assert ("concat", (8, 8, 8)) in every
  assert cat[("conv", (1, 1, 8, 8, 8))][-1] == 7 * 32


@pytest.mark.parametrize("aggregate", ["sum", "concat"])
def test_items_match_exported_op_counts(aggregate):
  """After the converter's CSE, PAD / ADD / CONCATENATION counts agree."""
  import jax.numpy as jnp
  from gram_jax.models import ExactNet

  space = SearchSpace(
      hierarchies=2,
      dags_per_hierarchy=2,
      nodes=6,
      width=0.25,
      aggregate=aggregate,
  )
  graph = mg.init(space, jax.random.key(3), init_weight=0.8)
  spec = arch.from_masks(
      space, graph.ops, mg.sample(graph, jax.random.key(4)), num_classes=10
  )
  v = ExactNet(spec).init(jax.random.key(0), jnp.zeros((1,) + SHAPE))
  ops = collections.Counter(tflite.list_ops(tflite.to_tflite(spec, v, SHAPE)))
  kinds = collections.Counter(it.kind for it in lut.items(spec, SHAPE))
  assert kinds["pad"] == ops["PAD"]
  assert kinds["concat"] == ops["CONCATENATION"]
  # ELU is one op (gram_jax.export.fuse), so every ADD is a DAG sum.
  assert kinds["add"] == ops["ADD"]
  assert ops["ELU"] == spec.num_nodes + len(spec.stem)
  assert kinds["conv"] == spec.num_nodes


# --- the jitted predictor ----------------------------------------------------


@pytest.mark.parametrize("aggregate", ["sum", "concat"])
def test_jax_predictor_equals_predict(aggregate):
  space = SearchSpace(
      hierarchies=2,
      dags_per_hierarchy=2,
      nodes=6,
      width=0.25,
      aggregate=aggregate,
      stem=("conv3x3_16/2",),
  )
  table = synthetic_table(space)
  graph = mg.init(space, jax.random.key(0))
  traces = []

  def counted(masks):
    traces.append(1)
    return fn(masks)

  fn = lut.jax_predictor(table, space, graph.ops, SHAPE)
  jitted = jax.jit(counted)
  for i in range(12):
    weights = mg.init(
        space, jax.random.key(0), init_weight=0.1 + 0.08 * i
    ).weights
    masks = mg.sample(graph.replace(weights=weights), jax.random.key(i))
    spec = arch.from_masks(space, graph.ops, masks, num_classes=10)
    assert float(jitted(masks)) == pytest.approx(
        table.predict(spec, SHAPE), rel=1e-5
    )
  assert len(traces) == 1
  # Batched: vmap over candidates.
  keys = jax.random.split(jax.random.key(9), 3)
  batch = jax.vmap(
      lambda k: mg.sample(graph.replace(weights=graph.weights * 0.6), k)
  )(keys)
  got = jax.jit(jax.vmap(fn))(batch)
  want = [
      table.predict(arch.from_masks(space, graph.ops, m, num_classes=10), SHAPE)
      for m in batch
  ]
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_jax_predictor_errors():
  table = synthetic_table(MICRO, MICRO_SHAPE, classes=3)
  graph = mg.init(MICRO, jax.random.key(0))
  with pytest.raises(lut.LutError, match="ops: expected shape"):
    lut.jax_predictor(table, MICRO, graph.ops[:, :2], MICRO_SHAPE)
  with pytest.raises(lut.LutError, match="no head entry with classes=5"):
    lut.jax_predictor(table, MICRO, graph.ops, MICRO_SHAPE, num_classes=5)


# --- measuring ---------------------------------------------------------------


@pytest.fixture(scope="module")
def micro_table():
  """A real host table of the micro space (about 10 s)."""
  return lut.build(MICRO, MICRO_SHAPE, 3, calibrate=3, **QUICK)


def test_build_host(micro_table):
  table = micro_table
  assert set(table.curves) == set(lut.requirements(MICRO, MICRO_SHAPE, 3))
  assert table.target == "host" and table.threads == 1
  assert table.scale > 0 and np.isfinite(table.constant_ms)
  assert all(v >= 0 for c in table.curves.values() for v in c.ms)
  # A 3x3 conv with 8 output channels on 8 input channels costs more than
  # a 1x1 with 4 on 1 (144x the MACs; the ops are sub-microsecond, so a
  # closer pair is within timing noise on a loaded 2-core machine).
  assert table.lookup("conv", (3, 1, 8, 4, 4), 8) > table.lookup(
      "conv", (1, 1, 4, 4, 4), 1
  )
  cal = table.meta["calibration"]
  assert cal["archs"] == 3 and cal["constant_ms"] == table.constant_ms
  assert table.meta["settings"]["runs"] == 20
  assert table.meta["machine"]["cpu_count"] >= 1
  again = lut.LatencyTable.from_json(table.to_json())
  spec = lut.sample_specs(MICRO, 3, 1)[0]
  # The JSON keeps 6 significant digits per entry; when the (negative)
  # calibration constant nearly cancels the sum of entries, the relative
  # error of the total grows, so allow 1 ns absolute as well.
  assert again.predict(spec, MICRO_SHAPE) == pytest.approx(
      table.predict(spec, MICRO_SHAPE), rel=1e-5, abs=1e-6
  )


def test_validate_host(micro_table, tmp_path):
  report = lut.validate(micro_table, MICRO, MICRO_SHAPE, 3, 3, **QUICK)
  for key in (
      "within_10pct",
      "within_5pct",
      "rmse_ms",
      "spearman",
      "mean_error_pct",
      "num_archs",
      "uncalibrated",
  ):
    assert key in report
  assert report["num_archs"] == 3 and len(report["archs"]) == 3
  assert 0 <= report["within_5pct"] <= report["within_10pct"] <= 1
  assert all(a["measured_ms"] > 0 for a in report["archs"])
  path = str(tmp_path / "v.png")
  lut.plot_validation(report, path)
  assert open(path, "rb").read(4) == b"\x89PNG"


def test_summary_figures():
  s = lut.summarize([1.0, 2.15, 2.9, 5.0], [1.0, 2.0, 3.0, 4.0])
  assert s["within_10pct"] == 0.75 and s["within_5pct"] == 0.5
  assert s["rmse_ms"] == pytest.approx(np.sqrt((0.0225 + 0.01 + 1) / 4))
  assert s["spearman"] == 1.0
  assert lut.spearman([1, 2, 2, 3], [3, 2, 2, 1]) == pytest.approx(-1.0)
  c, s = lut.fit_calibration([10, 20, 40], [11.5, 21.5, 41.5], 0.0)
  assert (c, s) == (pytest.approx(1.5), pytest.approx(1.0))


class FakePhone:
  """adb answers of a phone whose latency grows with the model's size."""

  def __init__(self):
    self.size = 0
    self.benchmarks = 0

  def __call__(self, argv):
    args = list(argv[1:])
    if args == ["devices"]:
      return CommandResult(0, "List of devices attached\nP4\tdevice\n", "")
    args = args[2:]
    if args[0] == "push":
      self.size = os.path.getsize(args[1])
      return CommandResult(0, "1 file pushed\n", "")
    cmd = args[1]
    if "benchmark_model --graph" in cmd:
      self.benchmarks += 1
      us = 20 + self.size / 100
      return CommandResult(
          0,
          (
              f"count=50 first={us} curr={us} min={us} max={us} avg={us} "
              "std=0\nInference timings in us: Init: 1, First inference: "
              f"{us}, Warmup (avg): {us}, Inference (avg): {us}\n"
          ),
          "",
      )
    if cmd.startswith("[ -x"):
      return CommandResult(0, "present\n", "")
    if cmd == "getprop ro.product.model":
      return CommandResult(0, "Pixel 4\n", "")
    return CommandResult(0, "", "")


@pytest.fixture
def fake_adb(tmp_path):
  adb = tmp_path / "adb"
  adb.write_text("#!/bin/sh\nexit 99\n")
  adb.chmod(adb.stat().st_mode | stat.S_IXUSR)
  return str(adb)


def test_build_android_with_fake_phone(fake_adb):
  space = SearchSpace(
      hierarchies=1, dags_per_hierarchy=1, nodes=2, ops=("conv1x1_4",)
  )
  phone = FakePhone()
  table = lut.build(
      space,
      MICRO_SHAPE,
      3,
      target="android",
      calibrate=2,
      runner=phone,
      adb=fake_adb,
      cpu_mask="f0",
  )
  need = lut.requirements(space, MICRO_SHAPE, 3)
  assert phone.benchmarks == 1 + sum(map(len, need.values())) + 2
  assert (
      table.target == "android" and table.meta["device"]["model"] == "Pixel 4"
  )
  assert table.meta["settings"]["runs"] == 50
  # Bigger models (more weights) cost more on the fake phone.
  assert table.lookup("conv", (1, 1, 4, 4, 4), 4) > 0
  with pytest.raises(lut.LutError, match="only used with target android"):
    lut.build(space, MICRO_SHAPE, 3, runner=phone)
  with pytest.raises(android.AndroidError, match="not found"):
    lut.build(
        space,
        MICRO_SHAPE,
        3,
        target="android",
        calibrate=0,
        adb="no-such-adb-here",
    )


# --- the command -------------------------------------------------------------

MICRO_FLAGS = [
    "--config.space.hierarchies=2",
    "--config.space.dags_per_hierarchy=1",
    "--config.space.nodes=3",
    "--config.space.ops=conv1x1_4,conv3x3_8",
    "--config.space.width=1.0",
    "--input-shape",
    "4,4,1",
    "--num-classes",
    "3",
]


def test_command(micro_table, tmp_path, capsys):
  path = str(tmp_path / "lut.json")
  micro_table.save(path)
  out = str(tmp_path / "val")
  assert (
      main(
          [
              "lut",
              "validate",
              "--lut",
              path,
              "--num-archs",
              "2",
              "--out",
              out,
              "--runs",
              "10",
              "--rounds",
              "1",
          ]
          + MICRO_FLAGS
      )
      == 0
  )
  text = capsys.readouterr().out
  assert "within ±10%" in text and "Spearman" in text
  report = json.load(open(os.path.join(out, "validation.json")))
  assert report["num_archs"] == 2
  assert os.path.exists(os.path.join(out, "validation.png"))
  spec = lut.sample_specs(MICRO, 3, 1)[0]
  spec.save(str(tmp_path / "arch.json"))
  assert (
      main([
          "lut",
          "predict",
          "--lut",
          path,
          "--arch",
          str(tmp_path / "arch.json"),
          "--breakdown",
      ])
      == 0
  )
  text = capsys.readouterr().out
  assert "head" in text
  got = json.loads(text.strip().splitlines()[-1])["predicted_ms"]
  assert got == pytest.approx(
      micro_table.predict(spec, MICRO_SHAPE), rel=1e-5, abs=1e-6
  )


def test_command_errors(micro_table, tmp_path, capsys):
  path = str(tmp_path / "lut.json")
  micro_table.save(path)
  assert (
      main(
          ["lut", "build", "--out", str(tmp_path / "x.json"), "--target", "tpu"]
      )
      == 2
  )
  assert "--target: 'tpu' is not allowed" in capsys.readouterr().err
  assert (
      main(
          ["lut", "build", "--out", str(tmp_path / "x.json"), "--serial", "P4"]
          + MICRO_FLAGS
      )
      == 2
  )
  assert "--serial: only used with an android table" in capsys.readouterr().err
  flags = [f for f in MICRO_FLAGS if "nodes" not in f]
  assert (
      main(["lut", "validate", "--lut", path, "--config.space.nodes=4"] + flags)
      == 2
  )
  assert "space.nodes is 4" in capsys.readouterr().err
  assert (
      main(["lut", "validate", "--lut", path, "--num-archs", "1"] + MICRO_FLAGS)
      == 2
  )
  assert "--num-archs: '1' is not allowed" in capsys.readouterr().err
  assert (
      main(
          ["lut", "validate", "--lut", str(tmp_path / "none.json")]
          + MICRO_FLAGS
      )
      == 2
  )
  assert "cannot read" in capsys.readouterr().err
  assert (
      main([
          "lut",
          "build",
          "--out",
          str(tmp_path / "x.json"),
          "--config.space.colour=1",
      ])
      == 2
  )
  assert "colour" in capsys.readouterr().err


def test_search_with_a_lut_cost_from_the_command_line(tmp_path, capsys):
  """lut build -> search with cost=lut, all through `gram-jax`."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  config = os.path.join(root, "experiments", "configs", "quickstart.py")
  space = [
      "--config.space.hierarchies=2",
      "--config.space.dags_per_hierarchy=1",
      "--config.space.nodes=3",
      "--config.space.ops=conv1x1_4,conv3x3_8",
      "--config.space.width=1.0",
  ]
  path = str(tmp_path / "lut.json")
  assert (
      main(
          [
              "lut",
              "build",
              "--space",
              config,
              "--out",
              path,
              "--runs",
              "10",
              "--rounds",
              "1",
              "--calibrate",
              "2",
          ]
          + space
      )
      == 0
  )
  table = lut.LatencyTable.load(path)
  search = [
      "search",
      "--config",
      config,
      "--workdir",
      str(tmp_path / "run"),
      "--config.proxy.num_train=40",
      "--config.proxy.num_val=20",
      "--config.train.epochs=1",
      "--config.train.batch_size=20",
      "--config.search.iterations=3",
      "--config.search.cost=lut",
      f"--config.search.lut_path={path}",
      "--config.search.gamma=1.0",
  ]
  assert main(search + space) == 0
  recs = [json.loads(l) for l in open(tmp_path / "run" / "candidates.jsonl")]
  assert len(recs) == 3
  from gram_jax.search import config as config_lib  # pylint: disable=import-outside-toplevel
  from gram_jax.search import loop  # pylint: disable=import-outside-toplevel

  cfg = config_lib.resolve(config, space)
  from gram_jax import io  # pylint: disable=import-outside-toplevel

  ops = io.load_metagraph(str(tmp_path / "run" / "metagraph.json")).ops
  for rec in recs:
    masks = loop.decode_edges(rec["edges"], 3)
    spec = arch.from_masks(cfg.space, ops, masks, num_classes=10)
    assert rec["cost"] == rec["latency_ms"]
    assert rec["latency_ms"] == pytest.approx(
        table.predict(spec, (8, 8, 1)), rel=1e-4
    )
  # A table built for another space: one line, exit 2, no workdir.
  capsys.readouterr()
  other = search[:4] + [str(tmp_path / "other")] + search[5:]
  assert main(other + space[:-1] + ["--config.space.width=0.5"]) == 2
  err = capsys.readouterr().err.strip()
  assert "config.space: the config's space.width is 0.5" in err, err
  assert "\n" not in err
  assert not os.path.exists(tmp_path / "other")
