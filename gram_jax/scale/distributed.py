"""Devices and hosts: the candidate mesh and the JAX multi-controller runtime.

One machine with N devices: the candidate axis (seeds x candidates per
iteration) is sharded over a one-axis `jax.sharding.Mesh`; every device
trains its share of the candidates, nothing else is communicated but the
small per-candidate results.

Many hosts: every process runs the same program (JAX's multi-controller
model); `initialize` connects them with `jax.distributed.initialize`, after
which `jax.devices()` lists the devices of all processes and the mesh spans
them. Every process computes the same meta-graph updates from the same
gathered results; only process 0 writes the workdir.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gram_jax.errors import GramJaxError

AXIS = "candidates"


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """The multi-host flags of `gram-jax search` and `gram-jax sweep`."""
  g = parser.add_argument_group(
      "multi-host (jax.distributed; see docs/scale.md)"
  )
  g.add_argument(
      "--distributed",
      action="store_true",
      help=(
          "join a multi-process run; with no other flag the "
          "coordinator, process count and id are detected from the "
          "environment (TPU pods, SLURM, Open MPI, Kubernetes)"
      ),
  )
  g.add_argument(
      "--coordinator-address",
      default=None,
      help="host:port of process 0 (implies --distributed)",
  )
  g.add_argument("--num-processes", type=int, default=None)
  g.add_argument("--process-id", type=int, default=None)


def initialize_from_args(args: argparse.Namespace) -> bool:
  """Calls `initialize` when the flags ask for it; True if it did."""
  explicit = (args.coordinator_address, args.num_processes, args.process_id)
  if not args.distributed and all(v is None for v in explicit):
    return False
  initialize(args.coordinator_address, args.num_processes, args.process_id)
  return True


def initialize(
    coordinator_address: Optional[str] = None,
    num_processes: Optional[int] = None,
    process_id: Optional[int] = None,
    *,
    initialization_timeout: int = 300,
) -> None:
  """Starts the JAX multi-controller runtime (call before any JAX work).

  Args:
    coordinator_address: ``host:port`` of process 0; None lets JAX detect
      it (Cloud TPU pods, SLURM, Open MPI, Kubernetes).
    num_processes: total processes; None = detected.
    process_id: this process, 0 to ``num_processes - 1``; None = detected.
    initialization_timeout: seconds to wait for all processes.

  Raises:
    GramJaxError: a partial or inconsistent set of flags.
  """
  given = [
      v is not None for v in (coordinator_address, num_processes, process_id)
  ]
  if any(given) and not all(given):
    raise GramJaxError(
        "--coordinator-address/--num-processes/--process-id: give all three "
        "or none (none = detect them from the cluster environment)"
    )
  if num_processes is not None and num_processes < 1:
    raise GramJaxError(
        f"--num-processes: {num_processes} is not allowed; allowed: >= 1"
    )
  if process_id is not None and not 0 <= process_id < num_processes:
    raise GramJaxError(
        f"--process-id: {process_id} is not allowed; allowed: "
        f"0 to {num_processes - 1}"
    )
  # CPU processes exchange results through gloo (the default CPU client has
  # no cross-process collectives); harmless on GPU and TPU.
  if not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
      coordinator_address,
      num_processes,
      process_id,
      initialization_timeout=initialization_timeout,
  )


def is_primary() -> bool:
  """Process 0: the one that writes the workdir."""
  return jax.process_index() == 0


def make_mesh(devices: int = 1) -> Optional[Mesh]:
  """A one-axis mesh over `devices` devices (0 = all, across processes).

  Returns None for one device in one process: the plain single-device path.
  """
  total = jax.device_count()
  n = total if devices == 0 else devices
  if n > total:
    raise GramJaxError(
        f"config.search.devices: {devices} is not allowed; "
        f"allowed: 0 (all) to {total} (the devices JAX sees)"
    )
  if jax.process_count() > 1 and n != total:
    raise GramJaxError(
        f"config.search.devices: {devices} is not allowed with "
        f"{jax.process_count()} processes; allowed: 0 or {total} (every "
        "process must hold part of the mesh)"
    )
  if n == 1 and jax.process_count() == 1:
    return None
  return Mesh(np.asarray(jax.devices()[:n]), (AXIS,))


def sharded(mesh: Mesh) -> NamedSharding:
  """Leading (candidate) axis split over the mesh."""
  return NamedSharding(mesh, PartitionSpec(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def put(x: Any, sharding: Optional[NamedSharding]):
  """A host array as a (global) device array; every process passes the same
  full value and contributes the shards its devices hold."""
  x = np.asarray(x)
  if sharding is None:
    return jax.numpy.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def broadcast_from_primary(tree: Any) -> Any:
  """Process 0's value of a pytree of host arrays, on every process."""
  if jax.process_count() == 1:
    return tree
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

  return jax.tree.map(np.asarray, multihost_utils.broadcast_one_to_all(tree))
