"""`gram-jax search --config <file> --workdir <dir> [--config.<field>=<v>]`."""

from __future__ import annotations

import argparse
import os

import jax.numpy as jnp

from gram_jax import cost as cost_lib
from gram_jax import run as run_lib
from gram_jax.search import config as config_lib
from gram_jax.scale import distributed
from gram_jax.search import loop


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
      "--config",
      help=(
          "Python config file (get_config); "
          "'file.py:arg' passes arg; default: built-in defaults"
      ),
  )
  run_lib.add_arguments(parser, stop_after="--stop-after")
  distributed.add_arguments(parser)
  parser.epilog = (
      "Override any config field with --config.<field>=<value>, "
      "e.g. --config.search.iterations=100"
  )


def run(args: argparse.Namespace, rest) -> int:
  config = config_lib.resolve(args.config, rest)
  distributed.initialize_from_args(args)
  result = loop.run_search(
      config,
      args.workdir,
      progress=not args.no_progress,
      stop_after=args.stop_after,
  )
  if not result.complete:
    done = (
        int(jnp.ravel(result.state.step)[0])
        // config.search.candidates_per_iteration
    )
    print(run_lib.stopped("iteration", done, config.search.iterations))
    return 0
  if not distributed.is_primary():
    return 0
  for one in result.seeds or (result,):
    c = cost_lib.count(one.spec, one.input_shape)
    print(
        f"search done: {os.path.join(one.workdir or args.workdir, loop.ARCH)}"
        f" (prune level {config.search.prune_level}): "
        f"{one.spec.num_nodes} nodes, {one.spec.num_edges} edges, "
        f"{c.macs / 1e6:.3f} M MACs, {c.params / 1e3:.1f} K params"
    )
  return 0
