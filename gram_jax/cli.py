"""The `gram-jax` command: one subcommand per job.

Each subcommand lives in the module that does the work and is registered
here by name; modules are imported only when their command runs, so
``gram-jax search`` never imports TensorFlow.

Bad input (a config field, file, dataset or argument that is not allowed)
prints one line naming it and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import List, Optional

from gram_jax.errors import GramJaxError

# name -> (module, help). The module defines `add_arguments(parser)` and
# `run(args) -> int`.
COMMANDS = {
    "search": ("gram_jax.search.command",
               "run a GRAM search (resumes an existing workdir)"),
    "quickstart": ("gram_jax.search.quickstart",
                   "search on digits, then train and evaluate the result"),
    "train": ("gram_jax.fulltrain",
              "train a found architecture on a dataset (resumable)"),
    "report": ("gram_jax.report.command",
               "drawing, Pareto plot and summary of a run"),
    "prune": ("gram_jax.derive",
              "pruning profile of a trained meta-graph; pick a level for a "
              "MACs / parameter budget"),
}


def register(name: str, module: str, help_text: str) -> None:
  """Adds a subcommand (used by modules of later capabilities)."""
  if name in COMMANDS:
    raise ValueError(f"command {name!r} is already registered")
  COMMANDS[name] = (module, help_text)


def _extra_commands() -> None:
  for name, module, help_text in [
      ("export", "gram_jax.export.commands_export",
       "export an architecture and its weights to TFLite"),
      ("latency", "gram_jax.export.commands_latency",
       "time a .tflite model on the host (LiteRT) or an Android phone"),
  ]:
    try:
      found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
      found = False
    if name not in COMMANDS and found:
      COMMANDS[name] = (module, help_text)


def main(argv: Optional[List[str]] = None) -> int:
  _extra_commands()
  argv = list(sys.argv[1:] if argv is None else argv)
  parser = argparse.ArgumentParser(
      prog="gram-jax",
      description="Hardware-aware neural architecture search in JAX.")
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  sub.required = True
  for name, (_, help_text) in COMMANDS.items():
    sub.add_parser(name, help=help_text, add_help=False)
  # Parse the command name first, then let its module define its arguments.
  if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
    parser.parse_args(argv[:1])
    return 2
  name = argv[0]
  module = importlib.import_module(COMMANDS[name][0])
  cmd_parser = argparse.ArgumentParser(prog=f"gram-jax {name}",
                                       description=COMMANDS[name][1])
  module.add_arguments(cmd_parser)
  args, rest = cmd_parser.parse_known_args(argv[1:])
  try:
    return int(module.run(args, rest) or 0)
  except GramJaxError as e:
    print(f"gram-jax {name}: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print(f"gram-jax {name}: interrupted; run the same command again to "
          "resume", file=sys.stderr)
    return 130


if __name__ == "__main__":
  sys.exit(main())
