"""Rewrites of converted TFLite models: ELU back into one builtin op.

The exporter traces every ``jax.nn.elu`` as ``relu(x) + expm1(x - relu(x))``
(`gram_jax.export.tflite`: that form quantises without clipping the
pre-activation), and the converter keeps it as five ops:

    r = RELU(x); d = SUB(x, r); e = EXP(d); m = SUB(e, 1); y = ADD(r, m)

TFLite has a builtin ``ELU`` with a float kernel and an int8 one (a lookup
table from the input's scale to the output's), so `fuse_elu` replaces each
such chain by ``y = ELU(x)``: one op instead of five, in float32 and int8,
with `x` and `y` keeping their own quantisation parameters (no clipping
either). The rewrite works on the flatbuffer through the schema's object
API (``ai_edge_litert.schema_py_generated``); it matches only a chain whose
intermediate tensors feed nothing else and whose constant is 1, and it
drops the tensors the removed ops leave unused.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

# LiteRT registers ELU (float32 and int8 kernels) as version 1 only; an
# int8 ELU stamped version 2 does not load.
_ELU_VERSION = 1


def fuse_elu(model: bytes) -> bytes:
  """`model` with every ELU chain (see the module doc) as one ``ELU`` op.

  Returns the model unchanged (the same bytes) when it holds no chain.
  """
  import flatbuffers  # pylint: disable=import-outside-toplevel
  from ai_edge_litert import schema_py_generated as schema  # pylint: disable=import-outside-toplevel

  ops_enum = schema.BuiltinOperator
  m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
  code_of = [
      max(c.builtinCode, c.deprecatedBuiltinCode) for c in m.operatorCodes
  ]
  fused_any = False
  elu_index: Optional[int] = None  # the ELU operator code, once added
  for graph in m.subgraphs:
    kinds = [code_of[op.opcodeIndex] for op in graph.operators]
    producer: Dict[int, int] = {}
    users: Dict[int, List[int]] = {}
    for i, op in enumerate(graph.operators):
      for t in op.outputs:
        producer[int(t)] = i
      for t in op.inputs:
        if t >= 0:
          users.setdefault(int(t), []).append(i)
    keep_out = {int(t) for t in graph.outputs}
    drop, replace = set(), {}
    for i, op in enumerate(graph.operators):
      chain = _match(graph, m, kinds, producer, users, keep_out, i, schema)
      if chain is None:
        continue
      x, y, removed = chain
      if elu_index is None:
        code = schema.OperatorCodeT()
        code.builtinCode = ops_enum.ELU
        code.deprecatedBuiltinCode = ops_enum.ELU
        code.version = _ELU_VERSION
        m.operatorCodes.append(code)
        elu_index = len(m.operatorCodes) - 1
      elu = schema.OperatorT()
      elu.opcodeIndex = elu_index
      elu.inputs = np.asarray([x], np.int32)
      elu.outputs = np.asarray([y], np.int32)
      elu.builtinOptionsType = schema.BuiltinOptions.NONE
      replace[i] = elu
      drop.update(removed)
    if not replace:
      continue
    fused_any = True
    graph.operators = [
        replace.get(i, op)
        for i, op in enumerate(graph.operators)
        if i not in drop
    ]
    _drop_unused_tensors(graph)
  if not fused_any:
    return model
  builder = flatbuffers.Builder(len(model))
  builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
  return bytes(builder.Output())


def _match(graph, m, kinds, producer, users, keep_out, i, schema):
  """``(x, y, [indices of the four other ops])`` when op `i` is the ADD
  that ends an ELU chain, else None."""
  ops_enum = schema.BuiltinOperator
  op = graph.operators[i]
  if kinds[i] != ops_enum.ADD or len(op.inputs) != 2:
    return None
  if not _no_fused_activation(op):
    return None

  def made_by(t, kind) -> Optional[int]:
    j = producer.get(int(t))
    return j if j is not None and kinds[j] == kind else None

  def private(t, consumers) -> bool:  # read only by the chain's own ops
    return int(t) not in keep_out and sorted(users.get(int(t), [])) == sorted(
        consumers
    )

  for r, s in (op.inputs, op.inputs[::-1]):
    j_relu, j_sub1 = made_by(r, ops_enum.RELU), made_by(s, ops_enum.SUB)
    if j_relu is None or j_sub1 is None:
      continue
    sub1 = graph.operators[j_sub1]
    j_exp = made_by(sub1.inputs[0], ops_enum.EXP)
    if j_exp is None or not _is_one(graph, m, sub1.inputs[1], schema):
      continue
    j_sub0 = made_by(graph.operators[j_exp].inputs[0], ops_enum.SUB)
    if j_sub0 is None:
      continue
    sub0 = graph.operators[j_sub0]
    x = int(graph.operators[j_relu].inputs[0])
    if int(sub0.inputs[0]) != x or int(sub0.inputs[1]) != int(r):
      continue
    if not _no_fused_activation(sub0) or not _no_fused_activation(sub1):
      continue
    e, d = int(sub1.inputs[0]), int(graph.operators[j_exp].inputs[0])
    if not (
        private(r, [j_sub0, i])
        and private(d, [j_exp])
        and private(e, [j_sub1])
        and private(s, [i])
    ):
      continue
    return x, int(op.outputs[0]), [j_relu, j_sub0, j_exp, j_sub1]
  return None


def _no_fused_activation(op) -> bool:
  options = op.builtinOptions
  return options is None or getattr(options, "fusedActivationFunction", 0) == 0


def _is_one(graph, m, t, schema) -> bool:
  """Whether tensor `t` is a constant equal to 1 (after dequantisation)."""
  tensor = graph.tensors[int(t)]
  data = m.buffers[tensor.buffer].data if tensor.buffer else None
  if data is None or len(data) == 0:
    return False
  raw = np.asarray(data, np.uint8).tobytes()
  dtypes = {
      schema.TensorType.FLOAT32: np.float32,
      schema.TensorType.INT8: np.int8,
      schema.TensorType.INT16: np.int16,
  }
  if tensor.type not in dtypes:
    return False
  values = np.frombuffer(raw, dtypes[tensor.type]).astype(np.float64)
  q = tensor.quantization
  if tensor.type != schema.TensorType.FLOAT32:
    if q is None or q.scale is None or len(q.scale) != 1:
      return False
    zero = q.zeroPoint[0] if q.zeroPoint is not None else 0
    values = (values - zero) * q.scale[0]
    return bool(np.all(np.abs(values - 1.0) <= q.scale[0]))
  return bool(np.all(values == 1.0))


def _drop_unused_tensors(graph) -> None:
  """Removes the tensors no op, input or output of `graph` refers to, and
  renumbers the rest."""
  used = {int(t) for t in graph.inputs} | {int(t) for t in graph.outputs}
  for op in graph.operators:
    used.update(int(t) for t in op.inputs if t >= 0)
    used.update(int(t) for t in op.outputs)
    if op.intermediates is not None:
      used.update(int(t) for t in op.intermediates)
  order = sorted(used)
  new = {old: k for k, old in enumerate(order)}

  def remap(ts):
    return np.asarray([new[int(t)] if t >= 0 else -1 for t in ts], np.int32)

  graph.tensors = [graph.tensors[t] for t in order]
  graph.inputs, graph.outputs = remap(graph.inputs), remap(graph.outputs)
  for op in graph.operators:
    op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
    if op.intermediates is not None:
      op.intermediates = remap(op.intermediates)
