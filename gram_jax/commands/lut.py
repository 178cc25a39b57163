"""``gram-jax lut``: build, validate and query per-op latency tables.

  gram-jax lut build --space experiments/configs/quickstart.py \\
      --out lut.json --threads 1
  gram-jax lut validate --lut lut.json \\
      --space experiments/configs/quickstart.py --num-archs 50 --out lut_val
  gram-jax lut predict --lut lut.json --arch runs/qs/arch.json

``build`` measures every layer the search space can produce as a one-layer
TFLite model on this host (LiteRT) or, with ``--target android``, on the
connected phone (benchmark_model over adb), and writes the table as JSON.
``validate`` exports random architectures of the space, times them on the
table's target and prints predicted vs measured (share within ±10% and ±5%,
RMSE, Spearman's rho); with ``--out`` it writes ``validation.json`` and
``validation.png``. ``predict`` prints the predicted latency of an
``arch.json`` (``--breakdown``: per layer).

The space comes from a search config file (as for ``gram-jax search``),
with ``--config.<field>=<value>`` overrides; the input shape and classes
from its dataset unless ``--input-shape`` / ``--num-classes`` are given.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict, List, Optional

from gram_jax import arch as arch_lib
from gram_jax import data as data_lib
from gram_jax import io
from gram_jax.cost import lut
from gram_jax.errors import GramJaxError, parse_int, parse_shape
from gram_jax.search import config as config_lib

_ANDROID = ("serial", "benchmark_binary", "cpu_mask", "no_xnnpack")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  sub = parser.add_subparsers(dest="action", metavar="ACTION")
  sub.required = True
  build = sub.add_parser("build", help="measure a latency table")
  validate = sub.add_parser(
      "validate", help="predicted vs measured latency of random architectures"
  )
  predict = sub.add_parser("predict", help="predicted latency of an arch.json")
  for p in (build, validate):
    p.add_argument(
        "--space",
        metavar="CONFIG",
        help=(
            "search config file "
            "(get_config; 'file.py:arg' passes arg); default: the "
            "built-in defaults"
        ),
    )
    p.add_argument(
        "--input-shape",
        metavar="H,W,C",
        help="input image shape; default: the config dataset's",
    )
    p.add_argument(
        "--num-classes", help="classifier width; default: the config dataset's"
    )
    p.add_argument(
        "--runs", help="timed invokes per pass (default: host 500, android 50)"
    )
    p.add_argument(
        "--rounds",
        help=(
            "interleaved timing passes; the smallest "
            "pass median is kept (default: host 7, android "
            "1)"
        ),
    )
    p.add_argument(
        "--warmup",
        help="untimed invokes per pass (default: host 20, android 10)",
    )
    p.add_argument(
        "--seed",
        default="0",
        help=(
            "seed of the weights and of the sampled architectures (default: 0)"
        ),
    )
    android = p.add_argument_group(
        "Android phone (TFLite's benchmark_model over adb)"
    )
    android.add_argument("--serial", help="adb serial of the phone")
    android.add_argument(
        "--benchmark-binary",
        metavar="PATH",
        help=(
            "local benchmark_model (android_aarch64) to "
            "push; default: /data/local/tmp/benchmark_model"
        ),
    )
    android.add_argument(
        "--cpu-mask",
        metavar="HEX",
        help="pin to these cores with taskset, e.g. f0",
    )
    android.add_argument(
        "--no-xnnpack", action="store_true", help="TFLite's own CPU kernels"
    )
    p.epilog = (
        "Override any config field with --config.<field>=<value>, "
        "e.g. --config.space.width=0.5"
    )
  build.add_argument("--out", required=True, help="the table's JSON file")
  build.add_argument(
      "--target",
      default="host",
      help="host (LiteRT here, the default) or android",
  )
  build.add_argument(
      "--threads", default="1", help="interpreter threads (default: 1)"
  )
  build.add_argument(
      "--max-points",
      default="12",
      help=(
          "most widths "
          "measured per entry; others are interpolated "
          "(default: 12)"
      ),
  )
  build.add_argument(
      "--calibrate",
      default="12",
      help=(
          "random "
          "architectures timed to fit the table's constant and "
          "scale; 0: none (default: 12)"
      ),
  )
  validate.add_argument("--lut", required=True, help="the table's JSON file")
  validate.add_argument(
      "--num-archs", default="50", help="architectures to sample (default: 50)"
  )
  validate.add_argument(
      "--out", help="directory for validation.json and validation.png"
  )
  predict.add_argument("--lut", required=True, help="the table's JSON file")
  predict.add_argument("--arch", required=True, help="an arch.json")
  predict.add_argument(
      "--input-shape",
      metavar="H,W,C",
      help="input image shape; default: the table's",
  )
  predict.add_argument(
      "--breakdown", action="store_true", help="print every layer's latency"
  )


def _opt_int(text: Optional[str], flag: str, minimum: int = 1) -> Optional[int]:
  return None if text is None else parse_int(text, flag, minimum)


def _resolve(args, rest: List[str]):
  """Space, input shape and classes from the config and flags."""
  config = config_lib.resolve(args.space, rest)
  shape, classes = data_lib.info(config.dataset)
  if args.input_shape:
    shape = parse_shape(args.input_shape, "--input-shape")
  if args.num_classes is not None:
    classes = parse_int(args.num_classes, "--num-classes")
  return config.space, tuple(int(s) for s in shape), int(classes)


def _device(args, target: str) -> Dict[str, Any]:
  if target != "android":
    for name in _ANDROID:
      if getattr(args, name):
        flag = "--" + name.replace("_", "-")
        raise GramJaxError(
            f"{flag}: only used with an android table (--target android)"
        )
    return {}
  return {
      "serial": args.serial,
      "benchmark_binary": args.benchmark_binary,
      "cpu_mask": args.cpu_mask,
      "use_xnnpack": not args.no_xnnpack,
  }


def _log(message: str) -> None:
  print(message, flush=True)


def run(args: argparse.Namespace, rest: List[str]) -> int:
  if args.action == "predict":
    return _predict(args, rest)
  if args.action == "build":
    if args.target not in lut.TARGETS:
      raise GramJaxError(
          f"--target: {args.target!r} is not allowed; "
          f"allowed: {', '.join(lut.TARGETS)}"
      )
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
      raise GramJaxError(f"--out: directory {out_dir} does not exist")
    space, shape, classes = _resolve(args, rest)
    table = lut.build(
        space,
        shape,
        classes,
        target=args.target,
        threads=parse_int(args.threads, "--threads"),
        runs=_opt_int(args.runs, "--runs"),
        rounds=_opt_int(args.rounds, "--rounds"),
        warmup=_opt_int(args.warmup, "--warmup", 0),
        max_points=parse_int(args.max_points, "--max-points", 2),
        calibrate=parse_int(args.calibrate, "--calibrate", 0),
        seed=parse_int(args.seed, "--seed", 0),
        log=_log,
        **_device(args, args.target),
    )
    table.save(args.out)
    entries = sum(len(c.x) for c in table.curves.values())
    print(
        f"wrote {args.out}: {len(table.curves)} entries, {entries} "
        f"measured points, constant {1000 * table.constant_ms:.2f} us, "
        f"scale {table.scale:.4f} ({table.target}, {table.threads} "
        f"thread{'s' if table.threads > 1 else ''})"
    )
    return 0
  # validate
  table = lut.LatencyTable.load(args.lut)
  space, shape, classes = _resolve(args, rest)
  _check_matches(table, space, shape, args.lut)
  num_archs = parse_int(args.num_archs, "--num-archs", 2)
  if args.out:
    if os.path.exists(args.out) and not os.path.isdir(args.out):
      raise GramJaxError(f"--out: {args.out} exists and is not a directory")
    os.makedirs(args.out, exist_ok=True)
  report = lut.validate(
      table,
      space,
      shape,
      classes,
      num_archs,
      seed=parse_int(args.seed, "--seed", 0),
      runs=_opt_int(args.runs, "--runs"),
      rounds=_opt_int(args.rounds, "--rounds"),
      warmup=_opt_int(args.warmup, "--warmup", 0),
      log=_log,
      **_device(args, table.target),
  )
  report["lut"] = os.path.abspath(args.lut)
  print(
      f"{report['num_archs']} architectures, measured "
      f"{1000 * report['measured_ms_range'][0]:.1f}-"
      f"{1000 * report['measured_ms_range'][1]:.1f} us on "
      f"{report['target']} ({report['threads']} thread"
      f"{'s' if report['threads'] > 1 else ''}):"
  )
  print(f"  within ±10%: {100 * report['within_10pct']:.1f}%")
  print(f"  within ±5%:  {100 * report['within_5pct']:.1f}%")
  print(
      f"  RMSE:        {1000 * report['rmse_ms']:.2f} us "
      f"({100 * report['rmspe']:.1f}% relative)"
  )
  print(
      f"  mean error:  {report['mean_error_pct']:+.1f}%, worst "
      f"{report['max_abs_error_pct']:.1f}%"
  )
  print(f"  Spearman ρ:  {report['spearman']:.4f}")
  raw = report.get("uncalibrated")
  if raw:
    print(
        f"  (uncalibrated sum of entries: {100 * raw['within_10pct']:.1f}% "
        f"within ±10%, mean error {raw['mean_error_pct']:+.1f}%)"
    )
  if args.out:
    io.write_json_atomic(os.path.join(args.out, "validation.json"), report)
    lut.plot_validation(report, os.path.join(args.out, "validation.png"))
    print(
        f"wrote {os.path.join(args.out, 'validation.json')} and validation.png"
    )
  return 0


def _check_matches(table, space, shape, where: str) -> None:
  lut.check_table(
      table,
      space,
      shape,
      where=where,
      space_flag="--space",
      shape_flag="--input-shape",
  )


def _predict(args, rest: List[str]) -> int:
  if rest:
    raise GramJaxError(
        f"unrecognised arguments: {' '.join(rest)}; see "
        "gram-jax lut predict --help"
    )
  table = lut.LatencyTable.load(args.lut)
  spec = arch_lib.ArchSpec.load(args.arch)
  if args.input_shape:
    shape = parse_shape(args.input_shape, "--input-shape")
  elif table.meta.get("input_shape"):
    shape = tuple(table.meta["input_shape"])
  else:
    raise GramJaxError(
        "--input-shape: required (the table does not record one)"
    )
  if args.breakdown:
    for item, ms in table.breakdown(spec, shape):
      print(
          f"{item.name:24s} {item.kind:6s} x={item.x:<5d} "
          f"{1000 * table.scale * ms:8.3f} us"
      )
  ms = table.predict(spec, shape)
  print(
      json.dumps(
          {"predicted_ms": ms, "target": table.target, "threads": table.threads}
      )
  )
  return 0
