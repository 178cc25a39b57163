"""Test settings: fake CPU devices, the XLA cache off, and shared fixtures."""

import os

# Eight fake CPU devices for sharding tests; must be set before jax starts.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
# Commands run in-process must not turn on the default persistent XLA cache
# for the rest of the session (tests of the cache pass their own).
os.environ.setdefault("GRAM_JAX_COMPILATION_CACHE", "off")

import pytest  # noqa: E402

from gram_jax.space import SearchSpace  # noqa: E402


@pytest.fixture(
    params=[("sum", "all"), ("concat", "all"), ("sum", "sinks")],
    ids=["sum", "concat", "sum-sinks"],
)
def tiny_space(request):
  """2 hierarchies x 2 DAGs x 5 nodes, narrow, with a strided stem; both
  aggregations, and the sinks-only DAG output."""
  aggregate, dag_output = request.param
  return SearchSpace(
      hierarchies=2,
      dags_per_hierarchy=2,
      nodes=5,
      width=0.25,
      aggregate=aggregate,
      dag_output=dag_output,
      stem=("conv3x3_16/2",),
  )
