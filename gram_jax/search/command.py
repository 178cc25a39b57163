"""`gram-jax search --config <file> --workdir <dir> [--config.<field>=<v>]`."""

from __future__ import annotations

import argparse
import os

from gram_jax import cost as cost_lib
from gram_jax.search import config as config_lib
from gram_jax.search import loop


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--config", help="Python config file (get_config); "
                      "'file.py:arg' passes arg; default: built-in defaults")
  parser.add_argument("--workdir", required=True,
                      help="run directory; an existing one is resumed")
  parser.add_argument("--no-progress", action="store_true",
                      help="no progress bar")
  parser.add_argument("--stop-after", type=int, default=None,
                      help=argparse.SUPPRESS)
  parser.epilog = ("Override any config field with --config.<field>=<value>, "
                   "e.g. --config.search.iterations=100")


def run(args: argparse.Namespace, rest) -> int:
  config = config_lib.resolve(args.config, rest)
  result = loop.run_search(config, args.workdir,
                           progress=not args.no_progress,
                           stop_after=args.stop_after)
  if not result.complete:
    print(f"stopped at iteration {int(result.state.step)} of "
          f"{config.search.iterations}; run the same command to resume")
    return 0
  c = cost_lib.count(result.spec, result.input_shape)
  print(f"search done: {os.path.join(args.workdir, loop.ARCH)} "
        f"(prune level {config.search.prune_level}): {result.spec.num_nodes} "
        f"nodes, {result.spec.num_edges} edges, {c.macs / 1e6:.3f} M MACs, "
        f"{c.params / 1e3:.1f} K params")
  return 0
