"""Per-layer latency tables for a Single-Path backbone, measured here.

The official table was read off per-layer profiles of four whole TFLite
networks on a Pixel 1 [SP: runtime-modeling/]. LiteRT on a host has no
per-op profile in Python, so `build_host_table` uses the method of
`gram_jax.cost.lut` instead (its timer, invoke constant and calibration):

  1. For every searchable layer and every choice (k3e3, k3e6, k5e3, k5e6),
     a one-block TFLite model (expand, depthwise, project; BN folded by
     the converter) at the layer's input shape, with random weights; also
     one model each for the fixed parts (stem, first block, last block,
     head) and a near-empty model (the per-invoke cost).
  2. All models are timed interleaved over several passes in a fresh
     process (`lut.host_timer`); an entry is its latency minus the invoke
     cost (its marginal cost), the constant is the sum of the fixed parts'
     marginals plus one invoke.
  3. Unless ``calibrate=False``, the four uniform networks (every layer at
     one choice) are exported whole and timed, and ``constant`` and a
     common scale of the entries are fitted to them
     (`lut.fit_calibration`): layers inside a network run a little slower
     than alone.

For the Pixel 1 with ``benchmark_model`` over adb, the same models can be
timed with ``lut.android_timer`` (pass ``timer=``).
"""

from __future__ import annotations

import datetime
import platform
from typing import Callable, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gram_jax.cost import lut
from gram_jax.shapes import same_out
from gram_jax.singlepath import runtime as rt
from gram_jax.singlepath import spec as spec_lib
from gram_jax.singlepath import superkernel as sk
from gram_jax.singlepath.space import CHOICES, CHOICE_NAMES, Macro


def _block_model(block: spec_lib.Block, hw, bn, seed) -> bytes:
  from gram_jax.export import tflite  # pylint: disable=import-outside-toplevel

  mod = sk.MBConv(
      block.cout,
      block.kernel,
      block.expansion,
      block.stride,
      block.residual,
      **bn,
  )
  shape = (1, hw[0], hw[1], block.cin)
  v = mod.init(jax.random.key(seed), jnp.zeros(shape), train=False)
  return tflite.function_to_tflite(
      lambda a: mod.apply(v, a, train=False), shape
  )


def _fn_model(fn_builder, shape, seed) -> bytes:
  from gram_jax.export import tflite  # pylint: disable=import-outside-toplevel
  import flax.linen as nn  # pylint: disable=import-outside-toplevel

  class M(nn.Module):

    @nn.compact
    def __call__(self, a):
      return fn_builder(a)

  m = M()
  v = m.init(jax.random.key(seed), jnp.zeros(shape))
  return tflite.function_to_tflite(lambda a: m.apply(v, a), shape)


def layer_models(
    macro: Macro, input_shape: Sequence[int], num_classes: int
) -> List[bytes]:
  """The one-block models: 4 per searchable layer, then stem, first block,
  last block, head, and the invoke-cost model (that order)."""
  from gram_jax.export import tflite  # pylint: disable=import-outside-toplevel

  bn = dict(bn_momentum=macro.bn_momentum, bn_epsilon=macro.bn_epsilon)
  h, w, c = (int(v) for v in input_shape)
  models = []
  stem_shape = (1, h, w, c)
  hw = (same_out(h, macro.stem_stride), same_out(w, macro.stem_stride))
  first = macro.first_block()
  first_hw = hw
  for ly in macro.layers():
    for j, (k, e) in enumerate(CHOICES):
      b = spec_lib.Block("x", ly.cin, ly.cout, k, e, ly.stride, ly.residual)
      models.append(_block_model(b, hw, bn, 10 * ly.index + j))
    hw = (same_out(hw[0], ly.stride), same_out(hw[1], ly.stride))
  last = macro.last_block()
  models.append(
      _fn_model(
          lambda a: sk.ConvBN(macro.stem, 3, macro.stem_stride, **bn)(
              a, train=False
          ),
          stem_shape,
          1,
      )
  )
  models.append(
      _block_model(
          spec_lib.Block(
              "x",
              first.cin,
              first.cout,
              first.kernel,
              first.expansion,
              first.stride,
              False,
          ),
          first_hw,
          bn,
          2,
      )
  )
  models.append(
      _block_model(
          spec_lib.Block(
              "x",
              last.cin,
              last.cout,
              last.kernel,
              last.expansion,
              last.stride,
              False,
          ),
          hw,
          bn,
          3,
      )
  )
  models.append(
      _fn_model(
          lambda a: sk.head(
              a,
              num_classes=num_classes,
              channels=macro.head_channels,
              dropout=0.0,
              train=False,
              bn=bn,
          ),
          (1, hw[0], hw[1], last.cout),
          4,
      )
  )
  fn, shape = lut.constant_function()
  models.append(tflite.function_to_tflite(fn, shape))
  return models


def uniform_models(
    macro: Macro, input_shape: Sequence[int], num_classes: int
) -> List[bytes]:
  """Whole decoded networks with every layer at one choice (4 models)."""
  from gram_jax.export import tflite  # pylint: disable=import-outside-toplevel

  x = jnp.zeros((1,) + tuple(input_shape), jnp.float32)
  models = []
  for i, name in enumerate(CHOICE_NAMES):
    spec = spec_lib.decode(
        spec_lib.uniform_decisions(macro, name), macro, num_classes
    )
    net = spec_lib.SinglePathNet(spec)
    v = net.init(jax.random.key(100 + i), x)
    models.append(
        tflite.function_to_tflite(
            lambda a, net=net, v=v: net.apply(v, a, train=False), x.shape
        )
    )
  return models


def build_host_table(
    macro: Macro,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    threads: int = 1,
    runs: int = 200,
    rounds: int = 5,
    warmup: int = 20,
    calibrate: bool = True,
    timer: Optional[Callable] = None,
    log: Optional[Callable[[str], None]] = None,
) -> rt.RuntimeTable:
  """Measures a `RuntimeTable` for `macro` with LiteRT on this host.

  Args:
    macro: the backbone.
    input_shape: ``(H, W, C)`` of one image.
    num_classes: classifier outputs.
    threads, runs, rounds, warmup: timing settings (`lut.host_timer`).
    calibrate: fit constant and scale on the four uniform networks.
    timer: a `lut` timer (default: `lut.host_timer` with the settings).
    log: progress messages.

  Returns:
    The table (unit ms, target "host").
  """
  say = log or (lambda m: None)
  timer = timer or lut.host_timer(
      threads=threads, runs=runs, rounds=rounds, warmup=warmup, log=log
  )
  layers = macro.layers()
  say(f"exporting {4 * len(layers) + 5} one-block models")
  models = layer_models(macro, input_shape, num_classes)
  times = np.asarray(timer(models), np.float64)
  invoke = float(times[-1])
  marginal = np.maximum(times[:-1] - invoke, 0.0)
  entries = marginal[: 4 * len(layers)].reshape(len(layers), 4)
  # A layer can time below the invoke cost on a noisy host; keep the k5e6
  # entry (a divisor of the runtime model) positive.
  entries = np.maximum(entries, 1e-6)
  constant = float(marginal[4 * len(layers) :].sum() + invoke)
  scale = 1.0
  meta = {
      "machine": platform.machine(),
      "node": platform.node(),
      "processor": platform.processor(),
      "threads": threads,
      "runs": runs,
      "rounds": rounds,
      "warmup": warmup,
      "macro": macro.to_dict(),
      "input_shape": list(input_shape),
      "num_classes": num_classes,
      "invoke_ms": invoke,
      "created": (
          datetime.datetime.now(datetime.timezone.utc).isoformat(
              timespec="seconds"
          )
      ),
  }
  if calibrate:
    say("exporting and timing the 4 uniform networks (calibration)")
    measured = timer(uniform_models(macro, input_shape, num_classes))
    sums = [float(entries[:, j].sum()) for j in range(4)]
    constant, scale = lut.fit_calibration(sums, measured, constant)
    constant = max(constant, 0.0)
    meta["calibration"] = {
        "measured_ms": [float(v) for v in measured],
        "uncalibrated_sums_ms": sums,
        "scale": scale,
    }
  return rt.RuntimeTable(
      constant, entries * scale, unit="ms", target="host", meta=meta
  )
