"""``gram-jax single-path``: search, latency table, export.

  gram-jax single-path --config experiments/configs/singlepath_runlocal.py \\
      --workdir runs/sp                       # search (resumes a workdir)
  gram-jax single-path table --config <file> --out table.json
                                              # per-layer LiteRT table here
  gram-jax single-path export --spec runs/sp/spec.json --out sp.tflite \\
      --input-shape 8,8,1 [--params ckpt/]    # the decoded net to TFLite

Override config fields with ``--config.<field>=<value>``. The exported
.tflite goes through ``gram-jax latency`` like any other model.
"""

from __future__ import annotations

import argparse
import os
from typing import List

from gram_jax.errors import GramJaxError, parse_int, parse_shape

ACTIONS = ("search", "table", "export")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
      "action",
      nargs="?",
      default="search",
      help="search (default), table or export",
  )
  parser.add_argument(
      "--config",
      help="Python config file (get_config); 'file.py:arg' passes arg",
  )
  parser.add_argument(
      "--workdir", help="search: run directory; an existing one is resumed"
  )
  parser.add_argument(
      "--no-progress", action="store_true", help="no progress bar"
  )
  parser.add_argument("--out", help="table/export: the file to write")
  parser.add_argument("--spec", help="export: spec.json of a search")
  parser.add_argument(
      "--params",
      help=(
          "export: orbax checkpoint of the "
          "network's variables (default: random weights, "
          "enough for latency)"
      ),
  )
  parser.add_argument(
      "--input-shape", metavar="H,W,C", help="export: image shape (required)"
  )
  parser.add_argument(
      "--threads", default="1", help="table: LiteRT threads (default 1)"
  )
  parser.add_argument(
      "--runs",
      default="200",
      help="table: timed invokes per pass (default 200)",
  )
  parser.add_argument(
      "--rounds", default="5", help="table: interleaved passes (default 5)"
  )
  parser.add_argument(
      "--no-calibrate",
      action="store_true",
      help="table: keep the plain per-layer sum (no fit on whole networks)",
  )
  parser.add_argument(
      "--stop-after", type=int, default=None, help=argparse.SUPPRESS
  )
  parser.epilog = (
      "Override any config field with --config.<field>=<value>,"
      " e.g. --config.runtime.runtime_lambda=0.05"
  )


def run(args: argparse.Namespace, rest: List[str]) -> int:
  if args.action not in ACTIONS:
    raise GramJaxError(
        f"action: {args.action!r} is not allowed; allowed: {', '.join(ACTIONS)}"
    )
  return {"search": _search, "table": _table, "export": _export}[args.action](
      args, rest
  )


def _search(args, rest) -> int:
  from gram_jax.singlepath import config as config_lib
  from gram_jax.singlepath import search

  if not args.workdir:
    raise GramJaxError("--workdir: required; see gram-jax single-path --help")
  config = config_lib.resolve(args.config, rest)
  result = search.run_search(
      config,
      args.workdir,
      progress=not args.no_progress,
      stop_after=args.stop_after,
  )
  if not result.complete:
    print(f"stopped at step {result.step}; run the same command to resume")
    return 0
  print(
      f"search done: {os.path.join(args.workdir, search.SPEC)}: "
      f"{' '.join(result.spec.decisions)}; R = {result.runtime:.4g} "
      f"{result.unit}"
  )
  return 0


def _table(args, rest) -> int:
  from gram_jax.singlepath import config as config_lib
  from gram_jax.singlepath import search, table

  if not args.out:
    raise GramJaxError("--out: required (the table .json to write)")
  threads = parse_int(args.threads, "--threads")
  runs = parse_int(args.runs, "--runs")
  rounds = parse_int(args.rounds, "--rounds")
  config = config_lib.resolve(args.config, rest)
  macro = config.macro.build()
  data = search.load_data(config)
  t = table.build_host_table(
      macro,
      data.image_shape,
      data.num_classes,
      threads=threads,
      runs=runs,
      rounds=rounds,
      calibrate=not args.no_calibrate,
      log=print,
  )
  t.save(args.out)
  print(
      f"wrote {args.out}: {t.num_layers} layers, constant "
      f"{t.constant:.4f} ms, all-k5e6 {t.uniform('k5e6'):.4f} ms, all-k3e3 "
      f"{t.uniform('k3e3'):.4f} ms"
  )
  return 0


def _export(args, rest) -> int:
  import jax
  import jax.numpy as jnp
  import numpy as np
  from gram_jax.export import latency, tflite
  from gram_jax.singlepath import spec as spec_lib

  if rest:
    raise GramJaxError(f"unrecognised arguments: {' '.join(rest)}")
  for flag in ("spec", "out", "input_shape"):
    if not getattr(args, flag):
      raise GramJaxError(
          f"--{flag.replace('_', '-')}: required; see "
          "gram-jax single-path --help"
      )
  shape = parse_shape(args.input_shape)
  spec = spec_lib.SinglePathSpec.load(args.spec)
  net = spec_lib.SinglePathNet(spec)
  x0 = jnp.zeros((1,) + shape, jnp.float32)
  if args.params:
    variables = load_variables(args.params, spec, shape)
  else:
    variables = net.init(jax.random.key(0), x0)
  model = tflite.function_to_tflite(
      lambda x: net.apply(variables, x, train=False), (1,) + shape
  )
  tflite.write_tflite(args.out, model)
  x = np.random.default_rng(0).standard_normal((1,) + shape).astype(np.float32)
  want = np.asarray(net.apply(variables, x, train=False))
  diff = float(np.max(np.abs(latency.run_tflite(model, x) - want)))
  print(
      f"wrote {args.out} ({len(model) / 1024:.1f} KB, float32); max "
      f"|TFLite - JAX| = {diff:.3g} on a random input"
  )
  return 0


def load_variables(path, spec, shape):
  """Restores `SinglePathNet(spec)` variables from an orbax checkpoint."""
  import jax
  import jax.numpy as jnp
  import orbax.checkpoint as ocp
  from gram_jax.io import CheckpointError
  from gram_jax.singlepath import spec as spec_lib

  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise CheckpointError(f"{path}: no such checkpoint directory")
  target = jax.eval_shape(
      spec_lib.SinglePathNet(spec).init,
      jax.random.key(0),
      jnp.zeros((1,) + tuple(shape)),
  )
  try:
    with ocp.StandardCheckpointer() as ckptr:
      return ckptr.restore(path, target)
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(
        f"{path}: does not hold the variables of this "
        f"network ({type(e).__name__})"
    ) from None
