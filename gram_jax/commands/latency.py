"""``gram-jax latency``: time a .tflite model on this host or on a phone.

  gram-jax latency model.tflite --threads 2 --runs 100 --out stats.json
  gram-jax latency model.tflite --android --serial R58M... \\
      --benchmark-binary android_aarch64_benchmark_model --cpu-mask f0

Prints the statistics as JSON (and writes them to --out). On the host the
LiteRT interpreter is timed (`latency.measure_tflite`); with --android,
TFLite's benchmark_model runs on the phone over adb
(`android.benchmark_on_device`).
"""

from __future__ import annotations

import argparse
import json
from typing import List

from gram_jax.errors import GramJaxError
from gram_jax.errors import parse_int

_ANDROID_ONLY = ("serial", "benchmark_binary", "cpu_mask", "no_xnnpack")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("model", nargs="?", help="the .tflite file")
  parser.add_argument(
      "--threads", default="1", help="interpreter threads (default: 1)"
  )
  parser.add_argument("--runs", default="50", help="timed runs (default: 50)")
  parser.add_argument(
      "--warmup", default="10", help="untimed runs before them (default: 10)"
  )
  parser.add_argument("--out", help="also write the JSON to this file")
  android = parser.add_argument_group(
      "Android phone (TFLite's benchmark_model over adb)"
  )
  android.add_argument(
      "--android",
      action="store_true",
      help="time on the connected phone instead of here",
  )
  android.add_argument(
      "--serial",
      help="adb serial of the phone (needed when several are connected)",
  )
  android.add_argument(
      "--benchmark-binary",
      metavar="PATH",
      help=(
          "local benchmark_model binary (android_aarch64) "
          "to push; default: the one already at "
          "/data/local/tmp/benchmark_model"
      ),
  )
  android.add_argument(
      "--cpu-mask",
      metavar="HEX",
      help="pin to these cores with taskset, e.g. f0",
  )
  android.add_argument(
      "--no-xnnpack",
      action="store_true",
      help="run TFLite's own CPU kernels (--use_xnnpack=false)",
  )


def run(args: argparse.Namespace, rest: List[str]) -> int:
  if rest:
    raise GramJaxError(
        f"unrecognised arguments: {' '.join(rest)}; see gram-jax latency --help"
    )
  if not args.model:
    raise GramJaxError(
        "model: required (the .tflite file); see gram-jax latency --help"
    )
  threads = parse_int(args.threads, "--threads")
  runs = parse_int(args.runs, "--runs")
  warmup = parse_int(args.warmup, "--warmup", minimum=0)
  if args.android:
    from gram_jax.export import android

    stats = android.benchmark_on_device(
        args.model,
        serial=args.serial,
        benchmark_binary=args.benchmark_binary,
        threads=threads,
        runs=runs,
        warmup=warmup,
        use_xnnpack=not args.no_xnnpack,
        cpu_mask=args.cpu_mask,
    )
  else:
    for name in _ANDROID_ONLY:
      if getattr(args, name):
        flag = "--" + name.replace("_", "-")
        raise GramJaxError(f"{flag}: only used with --android")
    from gram_jax.export import latency

    stats = latency.measure_tflite(
        args.model, threads=threads, runs=runs, warmup=warmup
    )
  if args.out:
    from gram_jax import io

    try:
      io.write_json_atomic(args.out, stats)
    except OSError as e:
      raise GramJaxError(
          f"--out: cannot write {args.out} ({e.strerror})"
      ) from None
  print(json.dumps(stats, indent=1))
  return 0
