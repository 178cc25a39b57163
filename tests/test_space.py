import pytest

from gram_jax.space import PAPER_OPS, SearchSpace, SpaceError, parse_op


def test_defaults_are_the_paper_space():
  s = SearchSpace()
  assert (s.hierarchies, s.dags_per_hierarchy, s.nodes) == (3, 3, 30)
  assert s.num_dags == 9
  assert s.ops == PAPER_OPS
  assert [s.op(i).channels for i in range(5)] == [32, 64, 128, 32, 64]
  assert [s.op(i).kernel for i in range(5)] == [1, 1, 1, 3, 3]


def test_width_and_cap_scale_channels():
  s = SearchSpace(width=0.25, max_filters=16)
  assert [s.op(i).channels for i in range(5)] == [8, 16, 16, 8, 16]
  assert hash(s) == hash(SearchSpace(width=0.25, max_filters=16))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(nodes=1), "nodes"),
        (dict(nodes=2.5), "nodes"),
        (dict(hierarchies=0), "hierarchies"),
        (dict(dags_per_hierarchy=0), "dags_per_hierarchy"),
        (dict(ops=()), "ops"),
        (dict(ops=("conv3x3_32", "maxpool")), "ops"),
        (dict(ops=("conv3x5_32",)), "ops"),
        (dict(ops=("conv3x3_32/2",)), "ops"),
        (dict(ops=("conv3x3_32", "conv3x3_32")), "ops"),
        (dict(width=0), "width"),
        (dict(width=-1.0), "width"),
        (dict(width=float("nan")), "width"),
        (dict(aggregate="mean"), "aggregate"),
        (dict(pool="min"), "pool"),
        (dict(stem=("conv4x4_16",)), "stem"),
        (dict(max_filters=0), "max_filters"),
    ],
)
def test_bad_values_name_the_field(kwargs, field):
  with pytest.raises(SpaceError) as e:
    SearchSpace(**kwargs)
  msg = str(e.value)
  assert msg.startswith(field + ":"), msg
  assert "allowed" in msg
  assert "\n" not in msg


def test_parse_op_and_dict_round_trip():
  assert parse_op("conv3x3_32/2", allow_stride=True).stride == 2
  s = SearchSpace(hierarchies=2, nodes=8, width=0.5, stem=("conv3x3_16/2",))
  assert SearchSpace.from_dict(s.to_dict()) == s
  with pytest.raises(SpaceError, match="space.depth: unknown field"):
    SearchSpace.from_dict({"depth": 3})
