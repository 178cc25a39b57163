"""Single-Path NAS: indicators, runtime model, decoding, search (killed and
resumed: tests/test_faults.py)."""

import dataclasses
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gram_jax import cli
from gram_jax.singlepath import config as config_lib
from gram_jax.singlepath import runtime as rt
from gram_jax.singlepath import search
from gram_jax.singlepath import spec as spec_lib
from gram_jax.singlepath import superkernel as sk
from gram_jax.depthwise import depthwise_impl
from gram_jax.singlepath.space import Macro
from helpers import free_linear

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = Macro(
    stem_channels=4,
    stem_stride=2,
    first_channels=4,
    stages=("8x2/2",),
    last_channels=8,
    head_channels=16,
    dropout=0.0,
    bn_momentum=0.9,
)


def _config(lam=0.0, **top):
  """A search on 256 digits, 6 epochs of 8 steps, 1 warm-up epoch."""
  d = config_lib.SinglePathConfig().to_dict()
  d.update(
      dataset="digits", max_examples=256, eval_examples=128, eval_batch_size=128
  )
  d["macro"].update(
      stem_channels=4,
      stem_stride=2,
      first_channels=4,
      stages=["8x2/2"],
      last_channels=8,
      head_channels=16,
      dropout=0.0,
      bn_momentum=0.9,
  )
  d["runtime"].update(
      table="macs", runtime_lambda=lam, scale=1.0, warmup_epochs=1.0
  )
  d["train"].update(
      epochs=6,
      batch_size=32,
      learning_rate=3e-3,
      optimizer="adam",
      threshold_lr_scale=100.0,
  )
  d.update(top)
  return d


# --- indicators and the superkernel ---------------------------------------


def test_indicator_is_a_hard_step_with_a_sigmoid_gradient():
  x = jnp.asarray([-2.0, -0.1, 0.0, 0.1, 3.0])
  np.testing.assert_array_equal(sk.indicator(x), [0, 0, 1, 1, 1])
  grad = jax.vmap(jax.grad(sk.indicator))(x)
  s = jax.nn.sigmoid(x)
  np.testing.assert_allclose(grad, s * (1 - s), rtol=1e-6)
  # through a threshold: d/dt I(n - t) = -sigmoid'(n - t)
  g = jax.grad(lambda t: sk.indicator(1.5 - t))(0.5)
  assert g == pytest.approx(
      -float(jax.nn.sigmoid(1.0) * (1 - jax.nn.sigmoid(1.0)))
  )


def test_indicator_dropout_rescales_and_is_identity_at_keep_one():
  d = jnp.ones((4000,))
  out = sk.indicator_dropout(d, jax.random.key(0), 0.6)
  np.testing.assert_allclose(
      np.unique(np.asarray(out)), [0.0, 1 / 0.6], rtol=1e-6
  )
  assert float(jnp.mean(out > 0)) == pytest.approx(0.6, abs=0.03)
  np.testing.assert_array_equal(
      sk.indicator_dropout(d, jax.random.key(0), 1.0), d
  )
  out01 = sk.indicator_dropout(d, jax.random.key(0), 0.6, rescale=False)
  assert set(np.unique(np.asarray(out01)).tolist()) == {0.0, 1.0}


def test_decision_order_and_masks():
  c = 12
  w = sk.depthwise_init(jax.random.key(0), (5, 5, 1, c))
  m3, m5, c50, c100 = sk.kernel_masks(c)
  n5 = float(jnp.linalg.norm(w * m5))
  # t_k5 above the outer-ring norm: k3; the channel norms are then taken
  # on the 3x3 kernel only (decision order of ALGORITHMS.md 3.2).
  n50_k3 = float(jnp.linalg.norm(w * m3 * c50))
  n100_k3 = float(jnp.linalg.norm(w * m3 * c100))
  kern, d = sk.superkernel_decisions(
      w, n5 + 0.1, n50_k3 - 0.01, n100_k3 + 0.01, can_skip=True
  )
  np.testing.assert_array_equal(d, [0, 1, 0])
  np.testing.assert_allclose(kern, w * m3 * c50, rtol=1e-6)
  # skip: the whole kernel is zero; not allowed -> d_e3 is the constant 1
  kern, d = sk.superkernel_decisions(w, 0.0, 1e3, 0.0, can_skip=True)
  assert float(d[1]) == 0.0 and float(jnp.abs(kern).max()) == 0.0
  _, d = sk.superkernel_decisions(w, 0.0, 1e3, 0.0, can_skip=False)
  np.testing.assert_array_equal(d, [1, 1, 1])


# --- runtime model ----------------------------------------------------------


def test_pixel1_table_and_the_all_k5e6_supernet_runtime():
  table = rt.pixel1_table()
  assert table.num_layers == 20 and table.unit == "ms"
  np.testing.assert_allclose(
      table.entries[0], [4.4905, 9.2015, 5.9248, 11.5892]
  )
  assert table.uniform("k5e6") == pytest.approx(131.4578, abs=1e-3)
  assert table.uniform("k3e3") == pytest.approx(65.6914, abs=1e-3)
  # A superkernel of the ImageNet supernet at init (thresholds 0) decides
  # k5 e6, no skip; with every layer so, R is the constant plus the k5e6
  # column (the same for all layers of the tiny supernet below).
  macro = Macro()
  ly = macro.layers()[1]
  w = sk.depthwise_init(jax.random.key(0), (5, 5, 1, 6 * ly.cin))
  np.testing.assert_array_equal(
      sk.superkernel_decisions(w, 0.0, 0.0, 0.0, can_skip=True)[1], [1, 1, 1]
  )
  d = jnp.ones((20, 3))
  r = rt.model_runtime(d, table.entries, table.constant)
  assert float(r) == pytest.approx(table.uniform("k5e6"), rel=1e-6)
  # k3e6 exactly, skip is 0, and the gradient reaches every indicator
  d = d.at[0].set(jnp.asarray([0.0, 1.0, 1.0])).at[1, 1].set(0.0)
  want = (
      table.uniform("k5e6")
      - table.entries[0, 3]
      + table.entries[0, 1]
      - table.entries[1, 3]
  )
  assert float(
      rt.model_runtime(d, table.entries, table.constant)
  ) == pytest.approx(want, rel=1e-6)
  g = jax.grad(lambda d: rt.model_runtime(d, table.entries, table.constant))(
      jnp.ones((20, 3))
  )
  assert bool(jnp.all(g > 0))


def test_tiny_supernet_runtime_equals_the_macs_table_sum():
  # the compiled programs of the search below (same settings: cached)
  cfg = config_lib.SinglePathConfig.from_dict(_config())
  assert cfg.macro.build() == TINY
  progs = search.programs(
      TINY,
      10,
      (8, 8, 1),
      (False, True, False),
      dataclasses.replace(cfg.train, epochs=1),
      8.0,
  )
  state = progs.init(jax.random.key(0))
  x = (
      np.random.default_rng(0)
      .standard_normal((128, 8, 8, 1))
      .astype(np.float32)
  )
  _, _, d = progs.evaluate(
      {"params": state["params"], "batch_stats": state["batch_stats"]},
      x,
      np.zeros(128, np.int32),
      np.ones(128, np.float32),
  )
  np.testing.assert_array_equal(d, np.ones((2, 3)))
  table = rt.macs_table(TINY, (8, 8, 1), 10)
  r = rt.model_runtime(d, table.entries, table.constant)
  assert float(r) == pytest.approx(table.uniform("k5e6"), rel=1e-6)
  full = spec_lib.decode(d, TINY, 10)
  assert spec_lib.count(full, (8, 8, 1)).macs / 1e6 == pytest.approx(
      table.uniform("k5e6"), rel=1e-9
  )


def test_table_json_round_trip_and_validation(tmp_path):
  table = rt.macs_table(TINY, (8, 8, 1), 10)
  path = str(tmp_path / "t.json")
  table.save(path)
  again = rt.RuntimeTable.load(path)
  np.testing.assert_allclose(again.entries, table.entries)
  d = json.load(open(path))
  d["layers"][1][3] = -1.0
  json.dump(d, open(path, "w"))
  with pytest.raises(rt.TableError, match=r"layers\[1\]\[3\]"):
    rt.RuntimeTable.load(path)
  with pytest.raises(rt.TableError, match="20 layers"):
    rt.load_table("pixel1", TINY, (8, 8, 1), 10)


# --- decoding -------------------------------------------------------------


def test_decoding_maps_expansion_correctly_and_can_replicate_the_bug():
  macro = Macro()
  d = spec_lib.uniform_decisions(macro, "k5e6")
  d[0] = [0, 1, 1]  # k3e6
  d[1] = [1, 1, 0]  # k5e3
  d[2] = [1, 0, 1]  # skip
  spec = spec_lib.decode(d, macro, 1000)
  blocks = {b.name: b for b in spec.blocks}
  assert (blocks["layer1"].kernel, blocks["layer1"].expansion) == (3, 6)
  assert (blocks["layer2"].kernel, blocks["layer2"].expansion) == (5, 3)
  assert "layer3" not in blocks and spec.decisions[2] == "skip"
  assert len(spec.blocks) == 1 + 19 + 1
  bug = {
      b.name: b
      for b in spec_lib.decode(
          d, macro, 1000, replicate_encoder_bug=True
      ).blocks
  }
  assert bug["layer1"].expansion == 3 and bug["layer2"].expansion == 6
  d[0] = [1, 0, 1]  # the first layer of a stage cannot skip
  with pytest.raises(spec_lib.SpecError, match="skip is not allowed"):
    spec_lib.decode(d, macro, 1000)


def test_spec_json_round_trip_and_validation(tmp_path):
  d = spec_lib.uniform_decisions(TINY, "k3e3")
  spec = spec_lib.decode(d, TINY, 10)
  path = str(tmp_path / "spec.json")
  spec.save(path)
  assert spec_lib.SinglePathSpec.load(path) == spec
  raw = json.load(open(path))
  raw["blocks"][2]["cin"] = 5
  json.dump(raw, open(path, "w"))
  with pytest.raises(spec_lib.SpecError, match=r"blocks\[2\]\.cin"):
    spec_lib.SinglePathSpec.load(path)


def _xla_flops(net, shape, probe):
  x = jnp.zeros((1,) + shape)
  variables = jax.eval_shape(net.init, jax.random.key(0), x)

  def f(v, x):
    if probe:
      with nn.intercept_methods(free_linear):
        return net.apply(v, x)
    return net.apply(v, x)

  with depthwise_impl("conv"):  # count the convolution's FLOPs
    return jax.jit(f).lower(variables, x).cost_analysis()["flops"]


@pytest.mark.parametrize("choices", [("k5e6", "k5e6"), ("k3e3", "skip")])
def test_decoded_macs_equal_xla_count_and_params_the_module(choices):
  rows = {"k5e6": [1, 1, 1], "k3e3": [0, 1, 0], "skip": [1, 0, 1]}
  spec = spec_lib.decode([rows[c] for c in choices], TINY, 10)
  net = spec_lib.SinglePathNet(spec)
  shape = (8, 8, 1)
  flops = _xla_flops(net, shape, False) - _xla_flops(net, shape, True)
  xla_macs = (flops - spec.num_classes) / 2  # 2 FLOPs per MAC, + bias
  assert spec_lib.count(spec, shape, padding_aware=True).macs == pytest.approx(
      xla_macs, rel=1e-6
  )
  variables = jax.eval_shape(
      net.init, jax.random.key(0), jnp.zeros((1,) + shape)
  )
  n = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables["params"]))
  assert spec_lib.count(spec, shape).params == n


# --- search ---------------------------------------------------------------


def test_runtime_does_not_increase_with_lambda(tmp_path):
  runtimes = []
  for i, lam in enumerate([0.0, 3.0, 30.0]):
    cfg = config_lib.SinglePathConfig.from_dict(_config(lam))
    res = search.run_search(
        cfg, str(tmp_path / f"l{i}"), progress=False, log=lambda m: None
    )
    assert res.complete
    runtimes.append(res.runtime)
  full = rt.macs_table(TINY, (8, 8, 1), 10).uniform("k5e6")
  assert runtimes[0] == pytest.approx(full, rel=1e-6)
  assert runtimes[1] < runtimes[0]
  assert runtimes[2] <= runtimes[1]
  # the outputs of the last run
  w = tmp_path / "l2"
  for name in ("spec.json", "result.json", "progress.png", "config.json"):
    assert (w / name).exists()
  steps = [json.loads(l) for l in open(w / "steps.jsonl")]
  assert (
      len(steps) == 48
      and steps[7]["lambda"] == 0.0
      and steps[8]["lambda"] == 30.0
  )
  epochs = [json.loads(l) for l in open(w / "epochs.jsonl")]
  assert len(epochs) == 6 and len(epochs[0]["thresholds"]) == 2


def test_bad_input_exits_2_and_leaves_the_workdir_untouched(tmp_path, capsys):
  cfg = os.path.join(ROOT, "experiments", "configs", "singlepath_runlocal.py")
  new = tmp_path / "new"
  rc = cli.main([
      "single-path",
      "--config",
      cfg,
      "--workdir",
      str(new),
      "--config.runtime.table=pixel1",
  ])
  assert rc == 2 and not new.exists()
  assert "config.runtime.table" in capsys.readouterr().err
  rc = cli.main([
      "single-path",
      "--config",
      cfg,
      "--workdir",
      str(new),
      "--config.train.optimizer=lamb",
  ])
  assert rc == 2 and not new.exists()
  old = tmp_path / "old"
  old.mkdir()
  (old / "config.json").write_text(
      json.dumps(config_lib.resolve(cfg, []).to_dict())
  )
  before = {p: p.read_bytes() for p in old.iterdir()}
  rc = cli.main(
      ["single-path", "--config", cfg, "--workdir", str(old), "--config.seed=1"]
  )
  assert rc == 2
  assert {p: p.read_bytes() for p in old.iterdir()} == before
  assert "config.seed" in capsys.readouterr().err


def test_exact_masks_supernet_equals_the_decoded_network():
  macro = Macro(
      stem_channels=4,
      stem_stride=1,
      first_channels=4,
      stages=("8x3/2",),
      last_channels=8,
      head_channels=16,
      dropout=0.0,
  )
  net = sk.SinglePathSuperNet(macro, num_classes=10, exact_masks=True)
  x = jnp.asarray(
      np.random.default_rng(1).standard_normal((2, 7, 7, 1)), jnp.float32
  )
  v = jax.jit(net.init)(jax.random.key(0), x)
  big = 1e4
  # layer1 k3e6, layer2 skip, layer3 k5e3; random BN statistics and affine
  p = jax.tree.map(lambda a: a, v["params"])
  p["layer1"]["t_k5"] = jnp.float32(big)
  p["layer2"]["t_e3"] = jnp.float32(big)
  p["layer3"]["t_e6"] = jnp.float32(big)
  rng = np.random.default_rng(2)
  bs = jax.tree.map(
      lambda a: jnp.asarray(rng.uniform(0.5, 1.5, a.shape), jnp.float32),
      v["batch_stats"],
  )
  p = jax.tree_util.tree_map_with_path(
      lambda path, a: jnp.asarray(rng.normal(0, 0.5, a.shape), jnp.float32)
      if getattr(path[-1], "key", "") in ("scale", "bias")
      else a,
      p,
  )
  sv = {"params": p, "batch_stats": bs}
  logits, d = jax.jit(net.apply)(sv, x)
  spec = spec_lib.decode(d, macro, 10)
  assert spec.decisions == ("k3e6", "skip", "k5e3")
  exact = spec_lib.SinglePathNet(spec)
  ev = spec_lib.inherit_variables(sv, spec)
  want = jax.jit(exact.apply)(ev, x)
  np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-5)
