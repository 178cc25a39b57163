"""Pruning profile, budget selection and the `gram-jax prune` command."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gram_jax import arch
from gram_jax import cli
from gram_jax import derive
from gram_jax import io
from gram_jax import metagraph as mg
from gram_jax.errors import GramJaxError
from gram_jax.search import gram as gram_lib
from gram_jax.search import loop
from gram_jax.space import SearchSpace

SPACE = SearchSpace(hierarchies=2, dags_per_hierarchy=2, nodes=8, width=0.25)


def _graph(seed=0, space=SPACE):
  g = mg.init(space, jax.random.key(seed))
  w = jax.random.uniform(jax.random.key(seed + 1), g.weights.shape)
  return g.replace(weights=jnp.where(g.weights > 0, w, 0.0))


@pytest.mark.parametrize("aggregate", ["sum", "concat"])
@pytest.mark.parametrize("mode", ["threshold", "quantile"])
def test_scale_never_grows_with_the_level(mode, aggregate):
  # dag_output="all" (the default): a higher level keeps a subset of the
  # edges, so live nodes, every node's input width and every DAG output
  # width can only shrink.
  space = dataclasses.replace(SPACE, aggregate=aggregate)
  for seed in range(4):
    rows = derive.profile(
        _graph(seed, space),
        np.linspace(0, 1, 21),
        input_shape=(8, 8, 1),
        num_classes=10,
        mode=mode,
    )
    for key in ("nodes", "edges", "macs", "params"):
      v = [r[key] for r in rows]
      assert all(a >= b for a, b in zip(v, v[1:])), (key, v)
    assert rows[0]["macs"] > rows[-1]["macs"]


def test_sinks_output_can_grow_with_the_level():
  # Why "all" is the default: with sinks-only DAG outputs, removing an edge
  # can make a wide node a sink and widen the DAG output. Over 10 random
  # meta-graphs some step must grow; if none does, the documentation of
  # `SearchSpace.dag_output` is wrong.
  space = dataclasses.replace(SPACE, dag_output="sinks")
  grew = 0
  for seed in range(10):
    rows = derive.profile(
        _graph(seed, space),
        np.linspace(0, 1, 21),
        input_shape=(8, 8, 1),
        num_classes=10,
    )
    v = [r["macs"] for r in rows]
    grew += sum(b > a for a, b in zip(v, v[1:]))
    assert all(
        a >= b
        for a, b in zip(
            [r["nodes"] for r in rows], [r["nodes"] for r in rows][1:]
        )
    )
  assert grew > 0


def test_select_within_budget_and_clear_error():
  rows = derive.profile(
      _graph(), np.linspace(0, 1, 11), input_shape=(8, 8, 1), num_classes=10
  )
  budget = (rows[0]["macs"] + rows[-1]["macs"]) / 2
  chosen = derive.select(rows, max_macs=budget)
  assert chosen["macs"] <= budget
  assert all(r["macs"] <= chosen["macs"] for r in rows if r["macs"] <= budget)
  with pytest.raises(
      GramJaxError,
      match=f"smallest network has {min(r['macs'] for r in rows)} MACs",
  ):
    derive.select(rows, max_macs=10)


def test_prune_command(tmp_path, capsys):
  g = _graph()
  state = gram_lib.GramState(g, jnp.float32(0.5), jnp.int32(3))
  io.write_json_atomic(
      str(tmp_path / "metagraph.json"), loop.metagraph_dict(state)
  )
  io.write_json_atomic(str(tmp_path / "config.json"), {"dataset": "digits"})
  again = io.load_metagraph(str(tmp_path / "metagraph.json"))
  np.testing.assert_allclose(again.weights, g.weights, atol=1e-7)
  np.testing.assert_array_equal(again.ops, g.ops)
  assert (
      cli.main([
          "prune",
          "--workdir",
          str(tmp_path),
          "--step",
          "0.1",
          "--max-params",
          "1e9",
      ])
      == 0
  )
  for name in [
      "prune_profile.csv",
      "prune_profile.json",
      "prune_profile.png",
      "arch_budget.json",
  ]:
    assert (tmp_path / name).stat().st_size > 0
  table = json.loads((tmp_path / "prune_profile.json").read_text())
  assert len(table["levels"]) == 11
  capsys.readouterr()
  assert cli.main(["prune", "--workdir", str(tmp_path), "--max-macs", "1"]) == 2
  err = capsys.readouterr().err
  assert "--max-macs" in err and "smallest network" in err


def test_prune_with_a_latency_budget(tmp_path, capsys):
  from test_lut import synthetic_table  # pylint: disable=import-outside-toplevel

  g = _graph()
  state = gram_lib.GramState(g, jnp.float32(0.5), jnp.int32(3))
  io.write_json_atomic(
      str(tmp_path / "metagraph.json"), loop.metagraph_dict(state)
  )
  io.write_json_atomic(str(tmp_path / "config.json"), {"dataset": "digits"})
  table = synthetic_table(SPACE, (8, 8, 1), classes=10)
  table.save(str(tmp_path / "lut.json"))
  rows = derive.profile(
      g,
      np.linspace(0, 1, 11),
      input_shape=(8, 8, 1),
      num_classes=10,
      table=table,
  )
  for r in rows:
    assert r["latency_ms"] == pytest.approx(
        table.predict(r["spec"], (8, 8, 1)), rel=1e-5
    )
  budget = float(np.median([r["latency_ms"] for r in rows]))
  chosen = derive.select(rows, max_latency_ms=budget)
  assert chosen["latency_ms"] <= budget
  assert (
      cli.main([
          "prune",
          "--workdir",
          str(tmp_path),
          "--step",
          "0.1",
          "--lut",
          str(tmp_path / "lut.json"),
          "--max-latency-ms",
          str(budget),
      ])
      == 0
  )
  written = arch.ArchSpec.load(str(tmp_path / "arch_budget.json"))
  assert written == chosen["spec"]
  profile = json.loads((tmp_path / "prune_profile.json").read_text())
  assert all("latency_ms" in r for r in profile["levels"])
  capsys.readouterr()
  # A budget without a table, and one nothing meets: one line, exit 2.
  assert (
      cli.main(["prune", "--workdir", str(tmp_path), "--max-latency-ms", "1"])
      == 2
  )
  assert "--max-latency-ms: needs a latency table" in capsys.readouterr().err
  assert (
      cli.main([
          "prune",
          "--workdir",
          str(tmp_path),
          "--lut",
          str(tmp_path / "lut.json"),
          "--max-latency-ms",
          "1e-9",
      ])
      == 2
  )
  err = capsys.readouterr().err
  assert "smallest network has" in err and "ms predicted" in err
