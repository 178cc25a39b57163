import json

import jax
import numpy as np
import pytest

from gram_jax import arch
from gram_jax import metagraph as mg
from gram_jax.space import SearchSpace

SPACE = SearchSpace(
    hierarchies=2,
    dags_per_hierarchy=2,
    nodes=6,
    width=0.25,
    stem=("conv3x3_16/2",),
)


def _spec(seed=0, weight=0.5):
  g = mg.init(SPACE, jax.random.key(seed), init_weight=weight)
  masks = mg.sample(g, jax.random.key(seed + 100))
  return arch.from_masks(SPACE, g.ops, masks, num_classes=10), g, masks


def test_from_masks_keeps_live_nodes_only():
  spec, g, masks = _spec()
  live = np.asarray(mg.live_nodes(masks))
  for k, dag in enumerate(spec.dags):
    assert [n.id for n in dag.nodes] == np.flatnonzero(live[k]).tolist()
    for node in dag.nodes:
      op = SPACE.op(int(g.ops[k, node.id]))
      assert (node.kernel, node.channels) == (op.kernel, op.channels)
      assert list(node.inputs) == [
          u for u in range(node.id) if masks[k, u, node.id]
      ]
    sinks = np.flatnonzero(np.asarray(mg.sinks(masks))[k]).tolist()
    assert list(dag.outputs) == sinks
  assert spec.num_edges == int(mg.num_edges(masks))


def test_json_round_trip_and_hash():
  spec, _, _ = _spec()
  again = arch.ArchSpec.from_json(spec.to_json())
  assert again == spec and hash(again) == hash(spec)
  assert {spec: 1}[again] == 1
  other, _, _ = _spec(seed=1)
  assert other != spec


def test_files_without_dag_output_mean_sinks():
  # arch.json files written before `dag_output` existed used sinks.
  spec, _, _ = _spec()
  d = spec.to_dict()
  assert d.pop("dag_output") == "all"
  old = arch.ArchSpec.from_json(json.dumps(d))
  assert old.dag_output == "sinks"
  assert old.outputs(old.dags[0]) == old.dags[0].outputs
  assert spec.outputs(spec.dags[0]) == tuple(n.id for n in spec.dags[0].nodes)


def test_save_and_load(tmp_path):
  spec, _, _ = _spec()
  spec.save(str(tmp_path / "arch.json"))
  assert arch.ArchSpec.load(str(tmp_path / "arch.json")) == spec
  with pytest.raises(arch.SpecError, match="cannot read"):
    arch.ArchSpec.load(str(tmp_path / "missing.json"))


def _edit(spec, fn):
  d = spec.to_dict()
  fn(d)
  return json.dumps(d)


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            lambda d: d["dags"][1]["nodes"][-1].update(inputs=[99]),
            (
                "arch.json.dags[1].nodes[{last}].inputs: node 99 is not an"
                " earlier node"
            ),
        ),
        (
            lambda d: d["dags"][0]["nodes"][0].update(inputs=[1]),
            "arch.json.dags[0].nodes[0].inputs: node 0 reads the DAG input",
        ),
        (
            lambda d: d["dags"][2]["nodes"][0].update(channels="wide"),
            "arch.json.dags[2].nodes[0].channels: expected int, got str",
        ),
        (
            lambda d: d["dags"][2]["nodes"][0].update(channels=0),
            "arch.json.dags[2].nodes[0].channels: 0 is not allowed",
        ),
        (
            lambda d: d["dags"][3]["nodes"][0].pop("kernel"),
            "arch.json.dags[3].nodes[0]: missing field 'kernel'",
        ),
        (
            lambda d: d["dags"][3]["nodes"][0].update(colour=1),
            "arch.json.dags[3].nodes[0].colour: unknown field",
        ),
        (
            lambda d: d.update(aggregate="mean"),
            "arch.json.aggregate: 'mean' is not allowed; allowed: sum, concat",
        ),
        (
            lambda d: d.update(dag_output="leaves"),
            (
                "arch.json.dag_output: 'leaves' is not allowed; allowed: all,"
                " sinks"
            ),
        ),
        (lambda d: d.update(format="other"), "arch.json.format: expected"),
        (lambda d: d.update(depth=3), "arch.json.depth: unknown field"),
        (lambda d: d["dags"].pop(), "arch.json.dags: expected hierarchies"),
        (lambda d: d.update(num_classes=-1), "arch.json.num_classes: -1"),
    ],
)
def test_malformed_json_names_the_field(edit, expected):
  spec, _, _ = _spec()
  text = _edit(spec, edit)
  last = len(spec.dags[1].nodes) - 1
  with pytest.raises(arch.SpecError) as e:
    arch.ArchSpec.from_json(text)
  assert str(e.value).startswith(expected.format(last=last)), str(e.value)
  assert "\n" not in str(e.value)


def test_not_json():
  with pytest.raises(arch.SpecError, match=r"arch.json: not valid JSON"):
    arch.ArchSpec.from_json("{nope")
  with pytest.raises(arch.SpecError, match="expected a JSON object"):
    arch.ArchSpec.from_json("[1, 2]")


def test_upscale_rounding():
  spec, _, _ = _spec()
  up = arch.upscale(spec, 1.5)
  for d0, d1 in zip(spec.dags, up.dags):
    for a, b in zip(d0.nodes, d1.nodes):
      assert b.channels == int(np.floor(a.channels * 1.5 + 0.5))
      assert (a.id, a.kernel, a.inputs) == (b.id, b.kernel, b.inputs)
  up4 = arch.upscale(spec, 1.25, divisor=4)
  assert all(n.channels % 4 == 0 for d in up4.dags for n in d.nodes)
  assert up.stem == spec.stem
  with pytest.raises(arch.SpecError, match="factor"):
    arch.upscale(spec, 0)


def test_upscaling_multiplies_inner_node_macs_by_about_s_squared():
  from gram_jax import cost  # pylint: disable=import-outside-toplevel

  spec, _, _ = _spec(weight=0.7)
  base = cost.layers(spec, (8, 8, 3))
  for s in (1.25, 1.5, 2.0):
    up = cost.layers(arch.upscale(spec, s), (8, 8, 3))

    # inner nodes: every DAG node except node 0, whose input width is set
    # by the previous hierarchy's output (scaled) or the stem (not scaled)
    def inner(ls):
      return sum(
          l.macs
          for l in ls
          if "_node" in l.name and not l.name.endswith("_node0")
      )

    assert inner(up) / inner(base) == pytest.approx(s * s, rel=0.08)
