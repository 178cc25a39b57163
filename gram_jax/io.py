"""Saving and loading network variables and JSON files (no pickle).

Trained network variables (``{"params": ..., "batch_stats": ...}`` of an
`ExactNet`) are orbax checkpoints; they are restored against the shapes of
the architecture they belong to, so a checkpoint that does not fit its
`arch.json` fails with a clear error instead of loading silently.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, Sequence

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from gram_jax.arch import ArchSpec
from gram_jax.errors import GramJaxError


class CheckpointError(GramJaxError):
  """A checkpoint is missing or does not match its architecture."""


def save_variables(path: str, variables: Dict[str, Any]) -> None:
  """Writes network variables to the orbax checkpoint directory `path`."""
  path = os.path.abspath(path)
  if os.path.exists(path):
    raise CheckpointError(f"{path}: already exists; choose a new path")
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(path, jax.device_get(variables))


def load_variables(
    path: str, spec: ArchSpec, input_shape: Sequence[int]
) -> Dict[str, Any]:
  """Restores the variables of `ExactNet(spec)` at `input_shape` (H, W, C)."""
  # Imported here, not for a cycle (models import nothing above them) but
  # so that `import gram_jax.io`, and with it `gram_jax.export` and the
  # LiteRT timing process of `gram_jax.cost.timing`, loads no Flax.
  from gram_jax.models import ExactNet  # pylint: disable=import-outside-toplevel

  return load_module_variables(
      path, ExactNet(spec), input_shape, what="this architecture"
  )


def load_module_variables(
    path: str, module, input_shape: Sequence[int], *, what: str = "this model"
) -> Dict[str, Any]:
  """Restores the variables of the Flax `module` at `input_shape` (H, W, C).

  The checkpoint must hold exactly the variables ``module.init`` makes;
  `what` names the model in the error.
  """
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise CheckpointError(f"{path}: no such checkpoint directory")
  target = jax.eval_shape(
      module.init, jax.random.key(0), jnp.zeros((1,) + tuple(input_shape))
  )
  where = (
      f"{path}: does not hold the variables of {what} at "
      f"input {tuple(input_shape)}"
  )
  try:
    with ocp.StandardCheckpointer() as ckptr:
      restored = ckptr.restore(path, target)
  except Exception as e:  # orbax raises many types for mismatches
    msg = str(e).splitlines()[0][:300] if str(e) else ""
    raise CheckpointError(f"{where} ({type(e).__name__}: {msg})") from None
  # orbax may restore the saved shapes whatever the target says: check.
  want = jax.tree_util.tree_flatten_with_path(target)[0]
  got = dict(jax.tree_util.tree_flatten_with_path(restored)[0])
  for key, leaf in want:
    have = got.get(key)
    if have is None or tuple(have.shape) != tuple(leaf.shape):
      name = jax.tree_util.keystr(key)
      raise CheckpointError(
          f"{where}: {name} has shape "
          f"{None if have is None else tuple(have.shape)}, the model "
          f"needs {tuple(leaf.shape)}"
      )
  return restored


def write_bytes_atomic(path: str, data: bytes) -> None:
  """Writes through a temporary file and a rename: never half a file."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(
      dir=directory, prefix=".tmp_", suffix=os.path.basename(path)
  )
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_json_atomic(path: str, obj: Any, *, indent: int = 1) -> None:
  """Writes JSON atomically (see `write_bytes_atomic`)."""
  write_bytes_atomic(path, json.dumps(obj, indent=indent).encode())


def read_jsonl(path: str, key: str, before: float) -> list:
  """Records of a JSONL log whose `key` is below `before`; a torn last line
  (a kill mid-write) is dropped. Used to rewind logs to a checkpoint."""
  records = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          rec = json.loads(line)
        except json.JSONDecodeError:
          continue
        if isinstance(rec, dict) and rec.get(key, float("inf")) < before:
          records.append(rec)
  return records


def write_jsonl_atomic(path: str, records: list) -> None:
  write_bytes_atomic(
      path, "".join(json.dumps(r) + "\n" for r in records).encode()
  )


def read_json(path: str, error: type = GramJaxError) -> Any:
  """Parses a JSON file (never executes anything); a file that cannot be
  read or parsed raises one line of `error` naming it."""
  try:
    with open(path) as f:
      return json.load(f)
  except OSError as e:
    raise error(f"{path}: cannot read ({e.strerror})") from None
  except json.JSONDecodeError as e:
    raise error(
        f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
    ) from None


def load_metagraph(path: str):
  """Reads a `metagraph.json` written by a search into a `MetaGraph`."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  # Here for the same reason as `ExactNet` in `load_variables`.
  from gram_jax import metagraph as mg  # pylint: disable=import-outside-toplevel
  from gram_jax.space import SearchSpace  # pylint: disable=import-outside-toplevel

  d = read_json(path, CheckpointError)
  if not isinstance(d, dict) or d.get("format") != "gram_jax.MetaGraph":
    raise CheckpointError(f"{path}.format: expected 'gram_jax.MetaGraph'")
  space = SearchSpace.from_dict(d.get("space"), where=f"{path}.space")
  dags = d.get("dags")
  if not isinstance(dags, list) or len(dags) != space.num_dags:
    raise CheckpointError(f"{path}.dags: expected {space.num_dags} DAGs")
  n = space.nodes
  weights, ops = [], []
  for k, dag in enumerate(dags):
    w = (
        np.asarray(dag.get("weights"), dtype=np.float32)
        if isinstance(dag, dict)
        else None
    )
    if w is None or w.shape != (n, n) or not np.all(np.isfinite(w)):
      raise CheckpointError(
          f"{path}.dags[{k}].weights: expected {n}x{n} finite numbers"
      )
    names = dag.get("ops")
    if (
        not isinstance(names, list)
        or len(names) != n
        or any(o not in space.ops for o in names)
    ):
      raise CheckpointError(
          f"{path}.dags[{k}].ops: expected {n} names from {list(space.ops)}"
      )
    weights.append(w)
    ops.append([space.ops.index(o) for o in names])
  return mg.MetaGraph(
      weights=jnp.asarray(np.stack(weights)),
      ops=jnp.asarray(ops, jnp.int32),
      space=space,
  )
