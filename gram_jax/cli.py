"""The `gram-jax` command: one subcommand per job.

Each subcommand is a module registered here by name: a module of
`gram_jax.commands` (a command line over library calls), or a workflow
module whose library function is the command (``train``, ``prune``,
``experiment``, ...; docs/architecture.md). Modules are imported only when
their command runs, so ``gram-jax search`` never imports TensorFlow.

Bad input (a config field, file, dataset or argument that is not allowed)
prints one line naming it and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import List, Optional

from gram_jax.errors import GramJaxError

# name -> (module, help). The module defines `add_arguments(parser)` and
# `run(args) -> int`.
COMMANDS = {
    "search": (
        "gram_jax.commands.search",
        "run a GRAM search (resumes an existing workdir)",
    ),
    "quickstart": (
        "gram_jax.commands.quickstart",
        "search on digits, then train and evaluate the result",
    ),
    "train": (
        "gram_jax.fulltrain",
        "train a found architecture on a dataset (resumable)",
    ),
    "report": (
        "gram_jax.commands.report",
        "drawing, Pareto plot and summary of a run",
    ),
    "prune": (
        "gram_jax.derive",
        (
            "pruning profile of a trained meta-graph; pick a level for a "
            "MACs / parameter budget"
        ),
    ),
    "experiment": (
        "gram_jax.experiment",
        (
            "a paper table in one resumable command: search, prune "
            "at several levels, up-scale, train each, tabulate"
        ),
    ),
    "autoshrink": (
        "gram_jax.autoshrink.command",
        (
            "run an AutoShrink edge-shrinking search (ShrinkCNN or "
            "ShrinkRNN; resumes an existing workdir)"
        ),
    ),
    "train-rnn": (
        "gram_jax.autoshrink.train_rnn",
        (
            "train a ShrinkRNN language model (released or found "
            "cell) on a PTB-format corpus (resumable)"
        ),
    ),
    "lut": (
        "gram_jax.commands.lut",
        (
            "per-op latency tables: build one for a search space, validate "
            "it on random architectures, predict an arch.json"
        ),
    ),
    "compare": (
        "gram_jax.compare",
        (
            "train SwiftNet candidates and baselines (MobileNetV2, "
            "FBNet) alike; table and plot of accuracy, MACs, latency"
        ),
    ),
    "ablation": (
        "gram_jax.ablation",
        (
            "GRAM against random search at an equal budget, over "
            "seeds: derive at one MACs budget, train, tabulate"
        ),
    ),
    "sweep": (
        "gram_jax.sweep",
        (
            "hyperparameter grid of searches (batched over seeds): table "
            "and Pareto front"
        ),
    ),
    "single-path": (
        "gram_jax.commands.single_path",
        (
            "Single-Path NAS: search (resumable), per-layer latency "
            "table, export of the decoded network"
        ),
    ),
    "export": (
        "gram_jax.commands.export",
        "export an architecture and its weights to TFLite",
    ),
    "latency": (
        "gram_jax.commands.latency",
        "time a .tflite model on the host (LiteRT) or an Android phone",
    ),
}


def register(name: str, module: str, help_text: str) -> None:
  """Adds a subcommand (used by modules of later capabilities)."""
  if name in COMMANDS:
    raise ValueError(f"command {name!r} is already registered")
  COMMANDS[name] = (module, help_text)


CACHE_OFF = ("off", "none", "0", "false", "no")


def default_cache_dir() -> str:
  """Where the persistent XLA cache lives unless told otherwise:
  ``$XDG_CACHE_HOME/gram_jax/xla`` (``~/.cache/gram_jax/xla``)."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
      os.path.expanduser("~"), ".cache"
  )
  return os.path.join(base, "gram_jax", "xla")


def compilation_cache(argv: List[str]) -> List[str]:
  """Handles ``--compilation-cache DIR|off`` (any command): XLA programs are
  stored in DIR and reused, so a repeated or resumed run, or a sweep worker,
  does not compile again. Also read from $GRAM_JAX_COMPILATION_CACHE. On by
  default in `default_cache_dir()`; ``off`` turns it off."""
  out, cache = [], os.environ.get("GRAM_JAX_COMPILATION_CACHE")
  it = iter(argv)
  for a in it:
    if a == "--compilation-cache":
      cache = next(it, None)
      if not cache:
        raise GramJaxError(
            "--compilation-cache: missing directory; allowed: "
            "a directory or off"
        )
    elif a.startswith("--compilation-cache="):
      cache = a.split("=", 1)[1]
      if not cache:
        raise GramJaxError(
            "--compilation-cache: missing directory; allowed: "
            "a directory or off"
        )
    else:
      out.append(a)
  if cache and cache.lower() in CACHE_OFF:
    return out
  if cache:
    try:
      enable_compilation_cache(cache)
    except OSError as e:
      raise GramJaxError(
          f"--compilation-cache: cannot use {cache!r} "
          f"({e.strerror}); allowed: a writable directory "
          "or off"
      ) from None
  else:
    try:  # the default: never a reason to fail a command
      enable_compilation_cache(default_cache_dir())
    except OSError:
      pass
  return out


def enable_compilation_cache(directory: str) -> None:
  """Turns on JAX's persistent compilation cache in `directory`."""
  import jax  # pylint: disable=import-outside-toplevel

  os.makedirs(directory, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", os.path.abspath(directory))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def main(argv: Optional[List[str]] = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  try:
    argv = compilation_cache(argv)
  except GramJaxError as e:
    print(f"gram-jax: error: {e}", file=sys.stderr)
    return 2
  parser = argparse.ArgumentParser(
      prog="gram-jax",
      description="Hardware-aware neural architecture search in JAX.",
  )
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
  cmd_parser = argparse.ArgumentParser(
      prog=f"gram-jax {name}", description=COMMANDS[name][1]
  )
  module.add_arguments(cmd_parser)
  args, rest = cmd_parser.parse_known_args(argv[1:])
  try:
    return int(module.run(args, rest) or 0)
  except GramJaxError as e:
    print(f"gram-jax {name}: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print(
        f"gram-jax {name}: interrupted; run the same command again to resume",
        file=sys.stderr,
    )
    return 130


if __name__ == "__main__":
  sys.exit(main())
