"""JAX -> TFLite conversion (float32, or int8 with a representative set).

The route, pinned to jax 0.10.2 and TensorFlow 2.21 (STYLE.md 1.8):

1. ``jax2tf.convert`` serialises the function as StableHLO inside a single
   ``XlaCallModule`` TF op. jax 0.10 always does this (native
   serialisation); its deprecated ``enable_xla=False`` is accepted but
   ignored, so it is not passed here. The module is lowered for the CPU
   whatever the host has, so a GPU machine exports the same model.
2. ``tf.function`` with a fixed input signature ``f32[B, H, W, C]`` (NHWC).
3. ``tf.lite.TFLiteConverter.from_concrete_functions`` legalises the
   StableHLO to TFLite builtin ops (``TFLITE_BUILTINS`` only: a model that
   needs TF ops or custom ops fails here, with an `ExportError` naming them).
   Inference-mode BatchNorm folds into the convolution weights.
4. int8: post-training full-integer quantisation calibrated on a
   representative set (``TFLITE_BUILTINS_INT8``, int8 input and output).

Before conversion every ``jax.nn.elu`` is rewritten, on the jaxpr, to the
equal ``relu(x) + expm1(x - relu(x))``, which quantises without clipping
(see the comment above `_elu`); after it, `gram_jax.export.fuse` turns the
five ops the converter makes of that form back into one builtin ``ELU``
(float32, or int8 with the input's and output's own scales). The
converter's C++ log (file descriptor 2) is captured during conversion and
read for the names of failing ops, so a conversion must not run
concurrently with other threads writing to stderr.

Everything TensorFlow is imported inside functions: the core library and
``import gram_jax.export`` never load TensorFlow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from typing import (Any, Callable, Dict, List, Mapping, Optional, Sequence)

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jex_core

from gram_jax import io
from gram_jax.arch import ArchSpec
from gram_jax.depthwise import depthwise_impl
from gram_jax.errors import GramJaxError
from gram_jax.export import fuse

OPS_HELP = "https://ai.google.dev/edge/litert/models/ops_compatibility"


class ExportError(GramJaxError):
  """A model cannot be exported to TFLite, or an export input is bad."""


def to_tflite(
    spec: ArchSpec,
    variables: Dict[str, Any],
    input_shape: Sequence[int],
    *,
    int8: bool = False,
    representative: Optional[np.ndarray] = None,
    batch_size: int = 1,
) -> bytes:
  """Converts a trained `ExactNet` to a TFLite flatbuffer.

  Args:
    spec: the architecture.
    variables: its ``{"params": ..., "batch_stats": ...}``.
    input_shape: ``(H, W, C)`` of one image.
    int8: full-integer quantisation (int8 weights, activations, input and
      output); needs `representative`.
    representative: ``f32[N, H, W, C]`` calibration images (training
      images, preprocessed as for training), fed `batch_size` at a time.
    batch_size: the fixed batch dimension of the model's input.

  Returns:
    The ``.tflite`` model as bytes: input ``f32[batch_size, H, W, C]``
    (int8 when `int8`), output the logits.

  Raises:
    ExportError: bad arguments, variables that do not fit `spec`, or an op
      that TFLite's builtin op set cannot express (named in the message).

  Examples:
    >>> model = to_tflite(spec, variables, (8, 8, 1))  # doctest: +SKIP
    >>> write_tflite("model.tflite", model)  # doctest: +SKIP
  """
  # Here, not at the top, so that `import gram_jax.export` loads no Flax
  # (as `gram_jax.io.load_variables`).
  from gram_jax.models import ExactNet

  shape = _check_shape(input_shape, "input_shape", rank=3)
  batch_size = _check_int(batch_size, "batch_size")
  if not isinstance(variables, Mapping) or "params" not in variables:
    raise ExportError(
        "variables: expected a dict with 'params' (and "
        "'batch_stats'), as returned by io.load_variables"
    )
  net = ExactNet(spec)

  def forward(x):
    return net.apply(variables, x, train=False)

  return function_to_tflite(
      forward, (batch_size,) + shape, int8=int8, representative=representative
  )


def function_to_tflite(
    fn: Callable[[jax.Array], Any],
    input_shape: Sequence[int],
    *,
    int8: bool = False,
    representative: Optional[np.ndarray] = None,
    fuse_elu: bool = True,
) -> bytes:
  """Converts ``fn(x: f32[input_shape])`` (weights closed over) to TFLite.

  The lower-level form of `to_tflite`, for any JAX function of one float32
  array (other model families, tests).

  Args:
    fn: a JAX-traceable function of one array.
    input_shape: the full input shape, batch dimension first.
    int8: full-integer quantisation; needs `representative`.
    representative: calibration inputs; ``f32[N, *input_shape[1:]]``, fed
      ``input_shape[0]`` at a time.
    fuse_elu: each ELU as one builtin op (`gram_jax.export.fuse`); False
      keeps the converter's five-op chain (for comparisons).

  Returns:
    The ``.tflite`` model as bytes.

  Raises:
    ExportError: as `to_tflite`.
  """
  shape = _check_shape(input_shape, "input_shape")
  if int8:
    calibration = _check_representative(representative, shape)
  elif representative is not None:
    raise ExportError(
        "representative: only used with int8=True; drop it or set int8=True"
    )
  else:
    calibration = None
  # Depthwise layers export as the convolution (one DEPTHWISE_CONV_2D),
  # not the shifted sums they train as on the CPU (gram_jax.depthwise).
  with depthwise_impl("conv"):
    try:
      fn = _with_quantizable_elu(fn, jnp.zeros(shape, jnp.float32))
    except Exception as e:  # flax/jax raise many types for bad variables
      raise ExportError(
          f"the model cannot be traced at input {shape}: "
          f"{type(e).__name__}: {_first_line(str(e))}"
      ) from None
    model = _convert(fn, shape, calibration)
  return fuse.fuse_elu(model) if fuse_elu else model


def write_tflite(path: str, model: bytes) -> None:
  """Writes `model` to `path` atomically (a temporary file, then a rename)."""
  if not isinstance(model, (bytes, bytearray)) or model[4:8] != b"TFL3":
    raise ExportError(
        f"{path}: refusing to write something that is not a TFLite flatbuffer"
    )
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    raise ExportError(
        f"{path}: directory {directory} does not exist; create it first"
    )
  io.write_bytes_atomic(path, model)


def list_ops(model: bytes) -> List[str]:
  """Builtin op names of a TFLite model, in execution order.

  Custom ops appear as ``"CUSTOM:<name>"``. Reads the flatbuffer with the
  schema shipped in ``ai-edge-litert``; no interpreter is built.
  """
  from ai_edge_litert import schema_py_generated as schema

  names = {
      v: k
      for k, v in vars(schema.BuiltinOperator).items()
      if not k.startswith("_")
  }
  m = schema.Model.GetRootAs(bytes(model), 0)
  codes = []
  for i in range(m.OperatorCodesLength()):
    oc = m.OperatorCodes(i)
    code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
    if code == schema.BuiltinOperator.CUSTOM:
      codes.append("CUSTOM:" + (oc.CustomCode() or b"?").decode())
    else:
      codes.append(names.get(code, str(code)))
  ops = []
  for s in range(m.SubgraphsLength()):
    graph = m.Subgraphs(s)
    ops.extend(
        codes[graph.Operators(j).OpcodeIndex()]
        for j in range(graph.OperatorsLength())
    )
  return ops


# --- ELU for integer quantisation ---------------------------------------------
#
# jax.nn.elu is select(x > 0, x, expm1(x)). TFLite quantises SELECT with one
# scale for its inputs and output, so the pre-activation x inherits the ELU
# output's range [-1, max]: every value below -1 is clipped before the exp.
# On digits that cost 7x the mean logit error of the form below and left
# int8/float top-1 agreement at 97-98%. relu(x) + expm1(x - relu(x)) is the
# same function in float (exactly: x - relu(x) is min(x, 0)), and each of its
# ops gets its own scale. Both float and int8 exports use it, so the two
# graphs have the same structure (and latency comparisons are like for like).
# The converted chain RELU, SUB, EXP, SUB, ADD then becomes one ELU op
# (`fuse.fuse_elu`), whose int8 kernel is a lookup table from the input's
# scale to the output's: 4.6x faster in int8 and 1.1x in float32 on a
# 0.8 M-MAC SwiftNet, int8 test accuracy unchanged (benchmarks/elu_fusion.py).


def _elu(x):
  r = jax.nn.relu(x)
  return r + jnp.expm1(x - r)


def _with_quantizable_elu(fn, example):
  """`fn` with every ``jax.nn.elu`` call replaced by `_elu`."""
  closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(example)
  out_tree = jax.tree.structure(out_shape)

  def rewritten(x):
    outs = _eval_jaxpr(closed.jaxpr, closed.consts, [x])
    return jax.tree.unflatten(out_tree, outs)

  return rewritten


def _eval_jaxpr(jaxpr, consts, args):
  env = {}

  def read(v):
    return v.val if isinstance(v, jex_core.Literal) else env[v]

  env.update(zip(jaxpr.constvars, consts))
  env.update(zip(jaxpr.invars, args))
  for eqn in jaxpr.eqns:
    invals = [read(v) for v in eqn.invars]
    inner = (
        eqn.params.get("jaxpr")
        if eqn.primitive.name in ("jit", "pjit")
        else None
    )
    if (
        inner is not None
        and eqn.params.get("name") == "elu"
        and len(invals) == 1
    ):
      outs = [_elu(invals[0])]
    elif inner is not None:
      outs = _eval_jaxpr(inner.jaxpr, inner.consts, invals)
    else:
      params = eqn.primitive.get_bind_params(eqn.params)
      outs = eqn.primitive.bind(*invals, **params)
      if not eqn.primitive.multiple_results:
        outs = [outs]
    env.update(zip(eqn.outvars, outs))
  return [read(v) for v in jaxpr.outvars]


# --- the converter ------------------------------------------------------------


def _convert(fn, shape, calibration) -> bytes:
  import tensorflow as tf
  from jax.experimental import jax2tf

  with _quiet():
    try:
      tf_fn = tf.function(
          jax2tf.convert(
              fn, with_gradient=False, native_serialization_platforms=("cpu",)
          ),
          input_signature=[tf.TensorSpec(shape, tf.float32, name="input")],
          autograph=False,
      )
      concrete = tf_fn.get_concrete_function()
    except Exception as e:  # jax2tf raises many types
      raise ExportError(
          "jax2tf could not convert the model: "
          f"{type(e).__name__}: {_first_line(str(e))}"
      ) from None
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if calibration is not None:
      batch = shape[0]

      def representative_dataset():
        for i in range(0, len(calibration) - batch + 1, batch):
          yield [calibration[i : i + batch]]

      converter.optimizations = [tf.lite.Optimize.DEFAULT]
      converter.representative_dataset = representative_dataset
      converter.target_spec.supported_ops = [
          tf.lite.OpsSet.TFLITE_BUILTINS_INT8
      ]
      converter.inference_input_type = tf.int8
      converter.inference_output_type = tf.int8
    log: List[str] = []
    try:
      with _captured_stderr(log):
        return converter.convert()
    except Exception as e:  # ConverterError and friends
      raise ExportError(_describe_failure(f"{e}\n{''.join(log)}")) from None


@contextlib.contextmanager
def _quiet():
  """Silences the known, harmless warnings of this route, locally."""

  # from_concrete_functions without a trackable_obj takes the "deprecated"
  # path, which is the one that keeps the weights as constants; the new path
  # round-trips through a SavedModel and was 3-10x slower here.
  class DropKnown(logging.Filter):

    def filter(self, record):
      return "trackable_obj" not in record.getMessage()

  absl_logger = logging.getLogger("absl")
  known = DropKnown()
  absl_logger.addFilter(known)
  try:
    with warnings.catch_warnings():
      # int8 input of a float graph: the calibrated input range is used.
      warnings.filterwarnings(
          "ignore", message=".*Statistics for quantized inputs were expected.*"
      )
      yield
  finally:
    absl_logger.removeFilter(known)


@contextlib.contextmanager
def _captured_stderr(box: List[str]):
  """Sends file descriptor 2 (the converter's C++ log) into `box`."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as tmp:
    os.dup2(tmp.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      tmp.seek(0)
      box.append(tmp.read().decode("utf-8", "replace"))


_OP_PATTERNS = (
    # 'vhlo.sort_v1' op is not part of the vhlo support yet.
    re.compile(
        r"'(?:vhlo|stablehlo|mhlo|chlo)\.([a-z][a-z0-9_]*?)(?:_v\d+)?'" r" op"
    ),
    # unregistered operation 'vhlo.composite_v2' ... chlo.erf (the name
    # inside the serialised module, printed with the error).
    re.compile(r"chlo\.([a-z][a-z0-9_]*)"),
    # 'tf.Erf' op is neither a custom op nor a flex op
    re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op"),
    # 'tfl.gelu' op failed to verify ...
    re.compile(r"'tfl\.(\w+)' op"),
)
_LIST_PATTERN = re.compile(r"(?:Custom|Flex|TF Select) ops: ([^\n]+)")
_GENERIC = {"XlaCallModule", "composite", "return", "func", "impl"}


def unsupported_ops(message: str) -> List[str]:
  """Names of the ops a TFLite converter error message complains about."""
  found: List[str] = []
  for pattern in _OP_PATTERNS:
    found += pattern.findall(message)
  for line in _LIST_PATTERN.findall(message):
    found += [name.strip() for name in line.split(",") if name.strip()]
  names = []
  for name in found:
    if name not in names:
      names.append(name)
  specific = [n for n in names if n not in _GENERIC]
  return specific or names


def _describe_failure(message: str) -> str:
  ops = unsupported_ops(message)
  if ops:
    shown = ", ".join(ops[:8]) + (", ..." if len(ops) > 8 else "")
    why = ""
    if "deserialize portable artifact" in message:
      why = (
          " (jax serialised it as a StableHLO composite newer than this "
          "TensorFlow's converter reads)"
      )
    return (
        f"TFLite conversion failed: op {shown} cannot be converted to "
        f"TFLite builtin ops{why}; change the model to avoid it "
        f"(supported ops: {OPS_HELP})"
    )
  return f"TFLite conversion failed: {_first_line(message)}"


# --- checks -------------------------------------------------------------------


def _first_line(text: str, limit: int = 300) -> str:
  for line in text.splitlines():
    line = line.strip()
    if line:
      return line[:limit]
  return "(no message)"


def _check_int(value, field: str, minimum: int = 1) -> int:
  if (
      isinstance(value, bool)
      or not isinstance(value, (int, np.integer))
      or value < minimum
  ):
    raise ExportError(
        f"{field}: {value!r} is not allowed; allowed: an integer >= {minimum}"
    )
  return int(value)


def _check_shape(shape, field: str, rank: Optional[int] = None):
  try:
    dims = tuple(shape)
  except TypeError:
    dims = None
  if (
      dims is None
      or (rank is not None and len(dims) != rank)
      or not dims
      or not all(
          isinstance(d, (int, np.integer))
          and not isinstance(d, bool)
          and d >= 1
          for d in dims
      )
  ):
    what = f"{rank} positive integers" if rank else "positive integers"
    raise ExportError(
        f"{field}: {shape!r} is not allowed; allowed: {what}"
        + (" (H, W, C)" if rank == 3 else "")
    )
  return tuple(int(d) for d in dims)


def _check_representative(representative, shape) -> np.ndarray:
  if representative is None:
    raise ExportError(
        "representative: int8 export needs a representative "
        "set (f32[N, H, W, C] training images) to calibrate "
        "activation ranges"
    )
  x = np.asarray(representative, dtype=np.float32)
  if x.ndim != len(shape) or x.shape[1:] != shape[1:]:
    raise ExportError(
        f"representative: shape {x.shape} does not match the "
        f"model input {shape}; expected [N, "
        f"{', '.join(map(str, shape[1:]))}]"
    )
  if len(x) < shape[0]:
    raise ExportError(
        f"representative: {len(x)} images, fewer than one batch of {shape[0]}"
    )
  if not np.all(np.isfinite(x)):
    raise ExportError("representative: contains NaN or inf")
  return x
