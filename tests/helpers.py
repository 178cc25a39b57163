"""Helpers shared by tests."""

import hashlib
import os

import flax.linen as nn
import jax.numpy as jnp


def free_linear(next_fun, args, kwargs, context):
  """Replaces Conv/Dense by a zero-FLOP op of the same output shape."""
  mod = context.module
  if context.method_name != "__call__" or not isinstance(mod, (nn.Conv,
                                                               nn.Dense)):
    return next_fun(*args, **kwargs)
  x = args[0]
  if isinstance(mod, nn.Dense):
    return jnp.broadcast_to(x[..., :1], x.shape[:-1] + (mod.features,))
  s = mod.strides[0] if mod.strides else 1
  y = x[:, ::s, ::s, :1]  # SAME padding: ceil(H / s) rows, as the conv
  return jnp.broadcast_to(y, y.shape[:-1] + (mod.features,))


def file_digests(workdir):
  """``{relative path: sha256}`` of every file under `workdir` (to check
  that a refused command left a run directory untouched)."""
  out = {}
  for base, _, files in os.walk(workdir):
    for f in files:
      p = os.path.join(base, f)
      with open(p, "rb") as fh:
        out[os.path.relpath(p, workdir)] = hashlib.sha256(fh.read()).digest()
  return out
