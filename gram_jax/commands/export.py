"""``gram-jax export``: an architecture and its weights to a .tflite file.

  gram-jax export --arch arch.json --params ckpt/ --out model.tflite
  gram-jax export --arch arch.json --params ckpt/ --out model_int8.tflite \\
      --int8 --dataset digits
  gram-jax export --model mobilenet_v2 --width 0.35 --params run/final \\
      --input-shape 32,32,1 --out mbv2.tflite

A baseline (`--model`, see `gram_jax.models.registry`) needs its width and
class count (`--num-classes`, default: the class count of --dataset) to
rebuild the network the variables belong to.

Prints one line: the path, the size, and how far the TFLite model is from
the JAX model (max |difference| of the logits on a few random inputs for
float32; on test images, with top-1 agreement, for int8).
"""

from __future__ import annotations

import argparse
from typing import List

import numpy as np

from gram_jax.errors import GramJaxError, parse_int, parse_shape

NUM_CHECK = 4  # random inputs of the float32 check
NUM_CHECK_INT8 = 100  # test images of the int8 check


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--arch", help="arch.json of the network (or --model)")
  parser.add_argument(
      "--model",
      help=(
          "a registered baseline instead of --arch (mobilenet_v2, fbnet_a, ...)"
      ),
  )
  parser.add_argument(
      "--width", default=None, help="width multiplier of --model (default 1.0)"
  )
  parser.add_argument(
      "--num-classes",
      default=None,
      help="classes of --model (default: those of --dataset)",
  )
  parser.add_argument(
      "--params",
      help=(
          "orbax checkpoint directory of its "
          "trained variables, from io.save_variables (required)"
      ),
  )
  parser.add_argument("--out", help="the .tflite file to write (required)")
  parser.add_argument(
      "--int8",
      action="store_true",
      help=(
          "full-integer quantisation, calibrated on "
          "training images of --dataset"
      ),
  )
  parser.add_argument(
      "--input-shape",
      metavar="H,W,C",
      help="input image shape (default: the image shape of --dataset)",
  )
  parser.add_argument(
      "--dataset",
      default="digits",
      help=(
          "dataset of the input shape and the calibration "
          "images (default: digits)"
      ),
  )
  parser.add_argument(
      "--batch-size",
      default="1",
      help="fixed batch dimension of the model (default: 1)",
  )
  parser.add_argument(
      "--calibration-size",
      default="200",
      help="training images calibrating --int8 (default: 200)",
  )


def run(args: argparse.Namespace, rest: List[str]) -> int:
  # Imported here: `gram-jax export --help` should not wait for jax/TF.
  import jax
  from gram_jax import data, io
  from gram_jax.arch import ArchSpec
  from gram_jax.export import latency, tflite
  from gram_jax.models import ExactNet, registry

  if rest:
    raise GramJaxError(
        f"unrecognised arguments: {' '.join(rest)}; see gram-jax export --help"
    )
  if bool(args.arch) == bool(args.model):
    raise GramJaxError(
        "--arch / --model: give exactly one; see gram-jax export --help"
    )
  for flag in ("params", "out"):
    if not getattr(args, flag):
      raise GramJaxError(f"--{flag}: required; see gram-jax export --help")
  if args.arch:
    for flag in ("width", "num_classes"):
      if getattr(args, flag) is not None:
        raise GramJaxError(
            f"--{flag.replace('_', '-')}: only used with --model"
        )
  batch_size = parse_int(args.batch_size, "--batch-size")
  calibration_size = parse_int(args.calibration_size, "--calibration-size")
  if args.model:
    width = _parse_width(args.width)
    registry.spec(args.model, width)  # a bad name or width fails here
    if args.num_classes is not None:
      classes = parse_int(args.num_classes, "--num-classes")
    else:
      classes = data.info(args.dataset)[1]
    module = registry.build(args.model, num_classes=classes, width=width)
    what = f"{args.model} at width {width:g} with {classes} classes"
  else:
    spec = ArchSpec.load(args.arch)
    module = ExactNet(spec)
    what = "this architecture"
  shape = parse_shape(args.input_shape) if args.input_shape else None
  dataset = None
  if args.int8 or shape is None:
    dataset = data.load(args.dataset)
    if shape is None:
      shape = tuple(dataset.image_shape)
    elif shape != tuple(dataset.image_shape):
      raise GramJaxError(
          f"--input-shape: {','.join(map(str, shape))} does "
          f"not match the {args.dataset} images "
          f"{','.join(map(str, dataset.image_shape))} that "
          "calibrate --int8"
      )
  variables = io.load_module_variables(args.params, module, shape, what=what)

  representative = None
  if args.int8:
    rng = np.random.default_rng(0)
    n = min(calibration_size, len(dataset.x_train))
    representative = dataset.x_train[rng.permutation(len(dataset.x_train))[:n]]

  def forward(x):
    return module.apply(variables, x, train=False)

  model = tflite.function_to_tflite(
      forward,
      (batch_size,) + shape,
      int8=args.int8,
      representative=representative,
  )
  tflite.write_tflite(args.out, model)

  if args.int8:
    x = dataset.x_test[:NUM_CHECK_INT8]
    where = f"{len(x)} {args.dataset} test images"
  else:
    x = (
        np.random.default_rng(0)
        .standard_normal((NUM_CHECK,) + shape)
        .astype(np.float32)
    )
    where = f"{len(x)} random inputs"
  want = np.asarray(jax.jit(forward)(x))
  got = latency.run_tflite(model, x)
  diff = float(np.max(np.abs(got - want)))
  line = (
      f"wrote {args.out} ({len(model) / 1024:.1f} KB, "
      f"{'int8' if args.int8 else 'float32'}); max |TFLite - JAX| = "
      f"{diff:.3g} on {where}"
  )
  if args.int8:
    agree = float(np.mean(got.argmax(-1) == want.argmax(-1)))
    line += f", top-1 agreement {agree:.1%}"
  print(line)
  return 0


def _parse_width(text) -> float:
  if text is None:
    return 1.0
  try:
    value = float(text)
  except ValueError:
    value = -1.0
  if not value > 0 or value != value or value == float("inf"):
    raise GramJaxError(
        f"--width: {text!r} is not allowed; allowed: a number > 0"
    )
  return value
