"""TFLite export (float32 and int8), host latency and the two commands."""

import json
import os

from ai_edge_litert.interpreter import Interpreter
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gram_jax import arch
from gram_jax import data
from gram_jax import io
from gram_jax import metagraph as mg
from gram_jax import train
from gram_jax.cli import main
from gram_jax.export import latency
from gram_jax.export import tflite
from gram_jax.models import ExactNet
from gram_jax.space import SearchSpace

SHAPE = (8, 8, 1)


def _spec(aggregate="sum", seed=1):
  space = SearchSpace(
      hierarchies=2,
      dags_per_hierarchy=2,
      nodes=4,
      width=0.25,
      aggregate=aggregate,
      stem=("conv3x3_16/2",),
  )
  graph = mg.init(space, jax.random.key(0))
  masks = mg.sample(graph, jax.random.key(seed))
  return arch.from_masks(space, graph.ops, masks, num_classes=10)


def _variables(spec, seed=0):
  """Random weights, BatchNorm affine parameters and running statistics.

  Non-trivial BatchNorm values make the test see whether the converter
  folds BatchNorm into the convolutions correctly.
  """
  v = ExactNet(spec).init(jax.random.key(seed), jnp.zeros((1,) + SHAPE))
  rng = np.random.default_rng(seed)

  def perturb(path, x):
    name = jax.tree_util.keystr(path)
    if name.endswith("['var']") or name.endswith("['scale']"):
      return rng.uniform(0.5, 2.0, x.shape).astype(np.float32)
    if name.endswith("['mean']") or name.endswith("['bias']"):
      return (0.3 * rng.standard_normal(x.shape)).astype(np.float32)
    return x

  return jax.tree_util.tree_map_with_path(perturb, v)


def _logits(spec, variables, x):
  return np.asarray(ExactNet(spec).apply(variables, x, train=False))


@pytest.fixture(scope="module", params=["sum", "concat"])
def float_model(request):
  spec = _spec(request.param)
  variables = _variables(spec)
  return spec, variables, tflite.to_tflite(spec, variables, SHAPE)


@pytest.fixture(scope="module", params=["sum", "concat"])
def trained_digits(request):
  """A tiny ExactNet trained on digits for a few epochs (about 6 s)."""
  ds = data.load("digits")
  spec = _spec(request.param)
  net = ExactNet(spec)
  variables = net.init(jax.random.key(0), jnp.zeros((1,) + SHAPE))
  tx = train.make_optimizer("adam", 4e-3)
  opt_state = tx.init(variables["params"])
  step = jax.jit(train.make_train_step(net.apply, tx))
  rng = np.random.default_rng(0)
  for _ in range(8):
    order = rng.permutation(len(ds.x_train))
    for i in range(0, len(order) - 63, 64):
      idx = order[i : i + 64]
      variables, opt_state, _ = step(
          variables, opt_state, ds.x_train[idx], ds.y_train[idx]
      )
  return ds, spec, variables


# --- float32 ------------------------------------------------------------------


def test_float_tflite_matches_jax(float_model):
  spec, variables, model = float_model
  x = np.random.default_rng(0).standard_normal((8,) + SHAPE).astype(np.float32)
  got = latency.run_tflite(model, x)
  want = _logits(spec, variables, x)
  assert got.shape == want.shape == (8, 10)
  assert np.max(np.abs(got - want)) < 1e-4


def test_float_model_uses_builtin_ops_with_folded_batchnorm(float_model):
  ops = tflite.list_ops(float_model[2])
  assert ops[0] == "DEPTHWISE_CONV_2D"  # the strided stem, one input channel
  assert ops[-1] == "FULLY_CONNECTED"
  assert not [op for op in ops if op.startswith("CUSTOM") or "FLEX" in op]
  # BatchNorm folded into the conv weights: no leftover multiply; one ELU op
  # per conv (its traced chain fused back, gram_jax.export.fuse), no SELECT.
  assert "MUL" not in ops and "SELECT" not in ops and "SELECT_V2" not in ops
  assert "EXP" not in ops and "RELU" not in ops and "SUB" not in ops
  assert ops.count("ELU") == sum(
      len(d.nodes) for d in float_model[0].dags
  ) + len(float_model[0].stem)


def test_elu_chain_fuses_into_one_op_with_the_same_outputs():
  """`fuse.fuse_elu` (on by default) replaces the converter's RELU, SUB,
  EXP, SUB, ADD by one ELU; a chain whose RELU also feeds another op stays
  as it is; a model without ELU comes back byte for byte."""
  rng = np.random.default_rng(0)
  w = jnp.asarray(rng.standard_normal((3, 3, 2, 4)), jnp.float32)

  def conv(x):
    return jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )

  x = rng.standard_normal((5, 6, 6, 2)).astype(np.float32)
  cases = (
      (lambda a: jax.nn.elu(conv(a)), 1),
      # the RELU of the chain is shared with the second output term
      (lambda a: jax.nn.elu(conv(a)) * jax.nn.relu(conv(a)), None),
      (lambda a: jax.nn.relu(conv(a)), 0),
  )
  for fn, elus in cases:
    fused = tflite.function_to_tflite(fn, (1, 6, 6, 2))
    chain = tflite.function_to_tflite(fn, (1, 6, 6, 2), fuse_elu=False)
    want = np.asarray(jax.jit(fn)(x))
    for model in (fused, chain):
      assert np.max(np.abs(latency.run_tflite(model, x) - want)) < 1e-5
    ops, chain_ops = tflite.list_ops(fused), tflite.list_ops(chain)
    if elus == 0:
      assert fused == chain and "ELU" not in ops
    elif elus == 1:
      assert ops.count("ELU") == 1 and "EXP" not in ops
      assert len(chain_ops) - len(ops) == 4 and chain_ops.count("EXP") == 1
    else:  # not fused where that would drop a tensor another op reads
      assert ops.count("EXP") + ops.count("ELU") == 1
      assert "RELU" in ops or "MAXIMUM" in ops


def test_fixed_batch_size_and_padding_of_the_last_batch():
  spec = _spec("concat")
  variables = _variables(spec, seed=3)
  model = tflite.to_tflite(spec, variables, SHAPE, batch_size=3)
  x = np.random.default_rng(1).standard_normal((7,) + SHAPE).astype(np.float32)
  got = latency.run_tflite(model, x)
  assert got.shape == (7, 10)
  assert np.max(np.abs(got - _logits(spec, variables, x))) < 1e-4


# --- int8 ---------------------------------------------------------------------


def test_int8_agrees_with_float_on_digits(trained_digits):
  ds, spec, variables = trained_digits
  want = _logits(spec, variables, ds.x_test).argmax(-1)
  assert np.mean(want == ds.y_test) > 0.9  # the float model has learned
  model = tflite.to_tflite(
      spec, variables, SHAPE, int8=True, representative=ds.x_train[:200]
  )
  got = latency.run_tflite(model, ds.x_test)
  agreement = np.mean(got.argmax(-1) == want)
  assert agreement >= 0.98, agreement
  # int8 end to end: no float tensor anywhere (QUANTIZE ops may remain as
  # int8 -> int8 rescaling in front of a concatenation).
  tensors = Interpreter(model_content=model).get_tensor_details()
  assert {np.dtype(t["dtype"]).name for t in tensors} <= {"int8", "int32"}
  assert "DEQUANTIZE" not in tflite.list_ops(model)
  stats = latency.measure_tflite(model, runs=3, warmup=1)
  assert stats["input"]["dtype"] == "int8"


# --- errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn,op",
    [
        (lambda x: jnp.sort(x, axis=-1), "sort"),
        (jax.lax.erf, "erf"),
    ],
)
def test_conversion_failure_names_the_op(fn, op):
  with pytest.raises(tflite.ExportError, match=rf"op {op}\b") as e:
    tflite.function_to_tflite(fn, (1, 8))
  assert "\n" not in str(e.value)


def test_unsupported_ops_are_read_from_converter_messages():
  msg = (
      "error: 'tf.XlaCallModule' op is neither a custom op nor a flex "
      "op\nerror: failed while converting: 'main':\nSome ops in the model "
      "are custom ops\nCustom ops: XlaCallModule, Erf\n"
  )
  assert tflite.unsupported_ops(msg) == ["Erf"]
  assert tflite.unsupported_ops(
      "'vhlo.fft_v1' op is not part of the vhlo support yet."
  ) == ["fft"]
  assert tflite.unsupported_ops("nothing useful") == []


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"input_shape": (8, 8)}, "input_shape"),
        ({"input_shape": (8, 0, 1)}, "input_shape"),
        ({"batch_size": 0}, "batch_size"),
        ({"int8": True}, "representative: int8 export needs"),
        (
            {"int8": True, "representative": np.zeros((4, 8, 8, 3))},
            "representative: shape",
        ),
        ({"representative": np.zeros((4, 8, 8, 1))}, "only used with int8"),
        ({"input_shape": (8, 8, 3)}, "cannot be traced"),
    ],
)
def test_bad_export_arguments(kwargs, match):
  spec = _spec()
  variables = ExactNet(spec).init(jax.random.key(0), jnp.zeros((1,) + SHAPE))
  args = {"input_shape": SHAPE, **kwargs}
  shape = args.pop("input_shape")
  with pytest.raises(tflite.ExportError, match=match):
    tflite.to_tflite(spec, variables, shape, **args)


def test_write_tflite(tmp_path, float_model):
  path = tmp_path / "m.tflite"
  tflite.write_tflite(str(path), float_model[2])
  assert path.read_bytes() == float_model[2]
  assert os.listdir(tmp_path) == ["m.tflite"]  # no temporary left behind
  with pytest.raises(tflite.ExportError, match="does not exist"):
    tflite.write_tflite(str(tmp_path / "no" / "m.tflite"), float_model[2])
  with pytest.raises(tflite.ExportError, match="not a TFLite"):
    tflite.write_tflite(str(path), b"12345678")


# --- host latency -------------------------------------------------------------


def test_measure_tflite_reports_sane_statistics(float_model, tmp_path):
  path = tmp_path / "m.tflite"
  path.write_bytes(float_model[2])
  stats = latency.measure_tflite(str(path), threads=2, runs=20, warmup=2)
  for key in ("median_ms", "p90_ms", "mean_ms", "min_ms", "max_ms"):
    assert 0 < stats[key] < 1000, key
  assert (
      stats["min_ms"]
      <= stats["median_ms"]
      <= stats["p90_ms"]
      <= stats["max_ms"]
  )
  assert stats["std_ms"] >= 0
  assert (stats["runs"], stats["warmup"], stats["threads"]) == (20, 2, 2)
  assert stats["input"] == {"shape": [1, 8, 8, 1], "dtype": "float32"}
  assert stats["model"]["path"] == str(path)
  assert stats["model"]["bytes"] == len(float_model[2])
  assert stats["machine"]["cpu_count"] >= 1
  assert set(stats["versions"]) == {"ai-edge-litert", "tensorflow", "jax"}
  assert stats["versions"]["jax"] == jax.__version__
  json.dumps(stats)  # JSON-ready


def test_measure_tflite_with_an_injected_clock(float_model):
  ticks = iter(range(0, 10**9, 250_000))  # every call: +0.25 ms
  stats = latency.measure_tflite(
      float_model[2], runs=4, warmup=0, clock=lambda: next(ticks)
  )
  assert stats["median_ms"] == stats["min_ms"] == stats["max_ms"] == 0.25
  assert stats["std_ms"] == 0.0


@pytest.mark.parametrize(
    "model,match",
    [
        (b"definitely not a model", "not a TFLite model"),
        ("/nonexistent/m.tflite", "cannot read"),
        (3, "expected bytes"),
    ],
)
def test_measure_tflite_rejects_bad_models(model, match):
  with pytest.raises(latency.LatencyError, match=match):
    latency.measure_tflite(model, runs=1)


def test_measure_tflite_rejects_bad_counts(float_model):
  with pytest.raises(latency.LatencyError, match="runs"):
    latency.measure_tflite(float_model[2], runs=0)


# --- the commands -------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  d = tmp_path_factory.mktemp("export_cli")
  spec = _spec("sum")
  spec.save(str(d / "arch.json"))
  io.save_variables(str(d / "ckpt"), _variables(spec))
  other = _spec("concat", seed=4)
  other.save(str(d / "other.json"))
  return d


def _one_line(text):
  return len(text.strip().splitlines()) == 1


def test_export_then_latency_commands(workdir, capsys):
  out = workdir / "model.tflite"
  rc = main([
      "export",
      "--arch",
      str(workdir / "arch.json"),
      "--params",
      str(workdir / "ckpt"),
      "--out",
      str(out),
  ])
  printed = capsys.readouterr().out
  assert rc == 0 and out.is_file()
  assert _one_line(printed) and str(out) in printed and "KB" in printed
  diff = float(printed.split("max |TFLite - JAX| = ")[1].split()[0])
  assert diff < 1e-4

  stats_path = workdir / "stats.json"
  rc = main([
      "latency",
      str(out),
      "--threads",
      "1",
      "--runs",
      "5",
      "--warmup",
      "1",
      "--out",
      str(stats_path),
  ])
  printed = capsys.readouterr().out
  assert rc == 0
  stats = json.loads(stats_path.read_text())
  assert json.loads(printed) == stats
  assert stats["runs"] == 5 and stats["median_ms"] > 0


def test_export_int8_command(workdir, capsys):
  out = workdir / "model_int8.tflite"
  rc = main([
      "export",
      "--arch",
      str(workdir / "arch.json"),
      "--params",
      str(workdir / "ckpt"),
      "--out",
      str(out),
      "--int8",
      "--input-shape",
      "8,8,1",
      "--dataset",
      "digits",
  ])
  printed = capsys.readouterr().out
  assert rc == 0 and out.is_file() and "int8" in printed
  assert "top-1 agreement" in printed and _one_line(printed)
  assert latency.measure_tflite(str(out), runs=2)["input"]["dtype"] == "int8"


@pytest.mark.parametrize(
    "argv,match",
    [
        (
            [
                "export",
                "--arch",
                "{d}/missing.json",
                "--params",
                "{d}/ckpt",
                "--out",
                "{d}/x.tflite",
            ],
            "missing.json: cannot read",
        ),
        (
            [
                "export",
                "--arch",
                "{d}/other.json",
                "--params",
                "{d}/ckpt",
                "--out",
                "{d}/x.tflite",
            ],
            "does not hold the variables",
        ),
        (
            [
                "export",
                "--arch",
                "{d}/arch.json",
                "--params",
                "{d}/ckpt",
                "--out",
                "{d}/x.tflite",
                "--bogus",
            ],
            "unrecognised arguments: --bogus",
        ),
        (
            ["export", "--arch", "{d}/arch.json", "--out", "{d}/x.tflite"],
            "--params: required",
        ),
        (
            [
                "export",
                "--arch",
                "{d}/arch.json",
                "--params",
                "{d}/ckpt",
                "--out",
                "{d}/x.tflite",
                "--input-shape",
                "8,8",
            ],
            "--input-shape",
        ),
        (
            [
                "export",
                "--arch",
                "{d}/arch.json",
                "--params",
                "{d}/ckpt",
                "--out",
                "{d}/nodir/x.tflite",
            ],
            "does not exist",
        ),
        (["latency", "{d}/missing.tflite"], "missing.tflite: cannot read"),
        (["latency", "{d}/arch.json"], "not a TFLite model"),
        (["latency", "{d}/arch.json", "--threads", "0"], "--threads"),
        (["latency", "{d}/arch.json", "--serial", "X"], "only used with"),
        (["latency", "{d}/arch.json", "--frobnicate"], "unrecognised"),
    ],
)
def test_bad_command_input_exits_2_with_one_line(workdir, capsys, argv, match):
  rc = main([a.format(d=workdir) for a in argv])
  err = capsys.readouterr().err
  assert rc == 2
  assert _one_line(err) and match in err, err
