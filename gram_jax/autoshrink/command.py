"""`gram-jax autoshrink --config <file> --workdir <dir> [--config.<f>=<v>]`.

Runs (or resumes) an AutoShrink edge-shrinking search. The config's
``kind`` picks what is shrunk:

  * ``"cnn"``: the ShrinkCNN cell on an image proxy task
    (`gram_jax.autoshrink.cnn_search`);
  * ``"rnn"``: the ShrinkRNN cell on a language-model proxy task
    (`gram_jax.autoshrink.rnn_search`).

A kind module provides ``make_evaluator(config) -> (evaluate, score_fn,
num_nodes)`` (see `strategy.shrink_round` for the evaluator contract) and
may provide ``validate(config) -> dict`` (its config group with defaults
filled; called before anything is written) and ``evaluate.describe(mask)``
(a JSON description of a cell for best.json). `config` is the whole plain
run config: the common fields below plus the group named after the kind.

Common config fields: ``kind``, ``seed``, ``search.k`` (candidates per
round), ``search.keep_fraction`` (stop at ``round(max_edges *
keep_fraction)`` edges), ``keep_checkpoints``.

The workdir holds:

  config.json     the resolved config (a resumed run must match it)
  rounds.jsonl    one line per evaluated candidate
  checkpoints/    orbax checkpoints of the strategy state after each round
  best.json       the best-scoring snapshot of the trajectory
  autoshrink.png  score, accuracy (or perplexity), MACs and edges by round

Round r proposes with ``fold_in(fold_in(key, 0), r)`` and evaluates with
``fold_in(fold_in(key, 1), r)``, so a run killed at any moment and resumed
writes the same best.json as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
from typing import Any, Dict, List, Optional

import jax
import numpy as np

from gram_jax import config as config_lib
from gram_jax import io
from gram_jax import run as run_lib
from gram_jax.autoshrink import fields as F
from gram_jax.autoshrink import strategy as strat
from gram_jax.errors import GramJaxError
from gram_jax.search import base

CONFIG = "config.json"
ROUNDS = "rounds.jsonl"
BEST = "best.json"
PLOT = "autoshrink.png"
KINDS = {
    "cnn": "gram_jax.autoshrink.cnn_search",
    "rnn": "gram_jax.autoshrink.rnn_search",
}
DEFAULT_KEEP = {"cnn": 0.01, "rnn": 0.25}

COMMON = {
    "kind": ("cnn", str, F.one_of(*KINDS)),
    "seed": (0, int, F.between(0)),
    "search": (
        {},
        {
            "k": (10, int, F.between(1)),
            "keep_fraction": (None, float, F.between(0, 1, hi_open=True)),
        },
        None,
    ),
    "keep_checkpoints": (3, int, F.between(1)),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
      "--config",
      required=True,
      help="Python config file (get_config); 'file.py:arg' passes arg",
  )
  run_lib.add_arguments(parser, stop_after="--stop-after")
  parser.epilog = (
      "Override any config field with --config.<field>=<value>, "
      "e.g. --config.search.k=5"
  )


def kind_module(kind: str):
  """The module implementing `kind`, or a GramJaxError if it is missing."""
  try:
    return importlib.import_module(KINDS[kind])
  except ModuleNotFoundError as e:
    if e.name and KINDS[kind].startswith(e.name):
      raise GramJaxError(
          f"config.kind: {kind!r} is not available in this installation "
          f"({KINDS[kind]} is missing); allowed here: cnn"
      ) from None
    raise


def _plain(x):
  if isinstance(x, dict):
    return {k: _plain(v) for k, v in x.items()}
  if isinstance(x, tuple):
    return [_plain(v) for v in x]
  return x


def resolve(path: str, overrides: List[str]) -> Dict[str, Any]:
  """Config file + overrides -> the validated plain config dict."""
  raw = config_lib.load_config_file(path)
  d = _plain(raw.to_dict() if hasattr(raw, "to_dict") else dict(raw))
  d = config_lib.apply_overrides(d, overrides)
  if not isinstance(d, dict):
    raise GramJaxError("--config: get_config() must return a ConfigDict")
  kind = d.get("kind", "cnn")
  if kind not in KINDS:
    raise GramJaxError(
        f"config.kind: {kind!r} is not allowed; allowed: {', '.join(KINDS)}"
    )
  module = kind_module(kind)
  schema = dict(COMMON)
  schema[kind] = ({}, None, None)
  unknown = sorted(set(d) - set(schema))
  if unknown:
    raise GramJaxError(
        f"config.{unknown[0]}: unknown field; allowed: "
        f"{', '.join(sorted(schema))}"
    )
  group = d.get(kind, {})
  out = F.check_group(
      {k: v for k, v in d.items() if k != kind}, COMMON, "config"
  )
  if out["search"]["keep_fraction"] is None:
    out["search"]["keep_fraction"] = DEFAULT_KEEP[kind]
  out[kind] = group
  if hasattr(module, "validate"):
    out[kind] = module.validate(out)
  return out


def prepare_workdir(config: Dict[str, Any], workdir: str) -> bool:
  """Creates `workdir` or checks it holds a run of the same config.

  Returns True when resuming; a different config raises and touches nothing.
  """
  return run_lib.prepare_workdir(workdir, config)


def _state_dict(state: strat.ShrinkState) -> Dict[str, np.ndarray]:
  return {k: np.asarray(v) for k, v in state._asdict().items()}


class Result(dict):
  """best.json's content plus ``complete`` (False when stopped early)."""


def run_autoshrink(
    config: Dict[str, Any],
    workdir: str,
    *,
    progress: bool = True,
    stop_after: Optional[int] = None,
) -> Result:
  """Runs or resumes a search; returns best.json's content when complete.

  Args:
    config: the validated plain config (`resolve`).
    workdir: the run directory.
    progress: show a progress bar (edges removed).
    stop_after: stop after this many rounds of this call (tests); the run
      stays resumable.
  """
  kind = config["kind"]
  evaluate, score_fn, num_nodes = kind_module(kind).make_evaluator(config)
  prepare_workdir(config, workdir)
  s = config["search"]
  strategy = strat.autoshrink(k=s["k"], keep_fraction=s["keep_fraction"])
  state = strategy.init(num_nodes)
  key = jax.random.fold_in(jax.random.key(config["seed"]), 1)
  ckpt = run_lib.Checkpoints(workdir, max_to_keep=config["keep_checkpoints"])
  restored = ckpt.restore(_state_dict(state))
  if restored is not None:
    state = strat.ShrinkState(
        **{k: np.asarray(restored.tree[k]) for k in state._fields}
    )
  start = int(state.round)

  target = strat.edge_threshold(int(state.max_edges), s["keep_fraction"])
  bar = run_lib.progress_bar(
      progress and not strategy.done(state),
      total=int(state.max_edges) - target,
      initial=int(state.max_edges) - int(state.mask.sum()),
      desc=f"AutoShrink ({kind})",
      unit="edge",
  )
  # Lines of rounds past the restored one are dropped.
  log = run_lib.JsonlLog(
      os.path.join(workdir, ROUNDS),
      key="round",
      before=start,
      tensorboard=os.path.join(workdir, "tensorboard"),
      tensorboard_step="index",
  )
  records = log.records

  def log_round(rnd):
    for rec in strat.round_records(rnd):
      log.write(rec, flush=False)
    log.flush()
    ckpt.save(int(rnd.new.round), _state_dict(rnd.new))
    if bar is not None:
      score = rnd.rewards[rnd.info]
      bar.set_postfix(
          score="nan" if math.isnan(score) else f"{score:.4f}",
          edges=int(rnd.new.mask.sum()),
          refresh=False,
      )
      bar.update(int(rnd.state.mask.sum()) - int(rnd.new.mask.sum()))

  with log:
    state = base.run_rounds(
        strat.ask_tell(strategy),
        state,
        jax.random.fold_in(key, 0),
        strat.scorer(evaluate, score_fn, key),
        until=None if stop_after is None else start + stop_after,
        on_round=log_round,
    )
  ckpt.close()
  if bar is not None:
    bar.close()
  if not strategy.done(state):
    return Result(complete=False, round=int(state.round))
  best = finish(state, records, workdir, evaluate, num_nodes)
  return Result(best, complete=True)


def finish(
    state: strat.ShrinkState,
    records: List[Dict[str, Any]],
    workdir: str,
    evaluate,
    num_nodes: int,
) -> Dict[str, Any]:
  """Writes best.json and the plot of a finished search."""
  mask, score, r = strat.best_snapshot(state)
  chosen = [x for x in records if x["round"] == r and x["chosen"]]
  metrics = {
      k: v
      for k, v in (chosen[0] if chosen else {}).items()
      if k not in ("seconds", "chosen", "candidate", "round")
  }
  best = {
      "format": "gram_jax.AutoShrinkResult",
      "version": 1,
      "round": r,
      "score": score,
      "num_nodes": num_nodes,
      "edges": [[int(i), int(j)] for i, j in zip(*np.nonzero(mask))],
      "cell": strat.encode_mask(mask),
      "mask": ["".join("1" if b else "0" for b in row) for row in mask],
      "removed_sequence": (
          np.asarray(state.removed[: int(state.round)]).tolist()
      ),
      "round_scores": [float(x) for x in state.scores[: int(state.round)]],
      "metrics": metrics,
  }
  describe = getattr(evaluate, "describe", None)
  if describe is not None:
    best["description"] = describe(mask)
  io.write_json_atomic(os.path.join(workdir, BEST), best)
  plot_rounds(records, os.path.join(workdir, PLOT), best_round=r)
  return best


def plot_rounds(
    records: List[Dict[str, Any]],
    path: str,
    *,
    best_round: Optional[int] = None,
) -> None:
  """Score (chosen and mean), accuracy or perplexity, MACs and edges by
  round; the best snapshot is marked."""
  from gram_jax.report import plots  # pylint: disable=import-outside-toplevel

  plt = plots.pyplot()
  rounds = sorted({r["round"] for r in records})
  by = {t: [r for r in records if r["round"] == t] for t in rounds}
  chosen = {t: [r for r in by[t] if r["chosen"]][0] for t in rounds}
  metric_keys = [
      k
      for k in ("acc", "ppl", "macs", "flops", "params")
      if records and isinstance(records[0].get(k), (int, float))
  ]
  panels = ["score"] + metric_keys[:2] + ["edges"]
  fig, axes = plt.subplots(
      1, len(panels), figsize=(4.2 * len(panels), 3.6), constrained_layout=True
  )
  for ax, key in zip(np.atleast_1d(axes), panels):
    cand_x = [r["round"] for r in records]
    if key == "edges":
      ax.plot(
          rounds, [chosen[t]["edges"] for t in rounds], "o-", color="tab:orange"
      )
      ax.set(title="Edges left after the round", ylabel="edges")
    else:
      vals = [r.get(key) for r in records]
      ok = [(x, v) for x, v in zip(cand_x, vals) if v is not None]
      scale = 1e6 if key in ("macs", "flops", "params") else 1.0
      if ok:
        ax.plot(
            [x for x, _ in ok],
            [v / scale for _, v in ok],
            ".",
            alpha=0.35,
            color="tab:gray",
            label="candidates",
        )
      ys = [chosen[t].get(key) for t in rounds]
      ax.plot(
          rounds,
          [None if y is None else y / scale for y in ys],
          "o-",
          color="tab:blue",
          label="chosen (snapshot)",
      )
      if best_round is not None and chosen[best_round].get(key) is not None:
        ax.plot(
            [best_round],
            [chosen[best_round][key] / scale],
            "*",
            color="tab:red",
            markersize=14,
            label="best snapshot",
        )
      unit = " (M)" if scale > 1 else ""
      ax.set(title=f"{key}{unit}", ylabel=f"{key}{unit}")
      ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("round")
  fig.suptitle("AutoShrink: candidates and chosen snapshots by round")
  fig.savefig(path, dpi=110)
  plt.close(fig)


def run(args: argparse.Namespace, rest) -> int:
  config = resolve(args.config, rest)
  result = run_autoshrink(
      config,
      args.workdir,
      progress=not args.no_progress,
      stop_after=args.stop_after,
  )
  if not result["complete"]:
    print(run_lib.stopped("round", result["round"]))
    return 0
  m = result["metrics"]
  extra = ", ".join(
      f"{k} {m[k]:.4g}"
      for k in ("acc", "ppl", "macs", "params")
      if isinstance(m.get(k), (int, float))
  )
  print(
      f"autoshrink done: {os.path.join(args.workdir, BEST)}: round "
      f"{result['round']}, {len(result['edges'])} edges, score "
      f"{result['score']:.4f}"
      + (f", {extra}" if extra else "")
  )
  return 0
