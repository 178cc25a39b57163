"""Helpers shared by tests."""

import hashlib
import os

import flax.linen as nn
import jax.numpy as jnp

from gram_jax.models.layers import DepthwiseConv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUTOSHRINK_CNN_RUNLOCAL = os.path.join(
    ROOT, "experiments", "configs", "autoshrink_cnn_runlocal.py"
)
# `--config.*` overrides that shrink the AutoShrink CNN runlocal config to a
# few seconds: 4 nodes, 4 filters, 60 / 40 proxy images, 1 epoch, k = 3.
TINY_AUTOSHRINK_CNN = [
    "--config.search.k=3",
    "--config.cnn.nodes=4",
    "--config.cnn.base_filters=4",
    "--config.cnn.stem_channels=4",
    "--config.cnn.scales=(1.0, 2.0)",
    "--config.cnn.pools=(1, 2)",
    "--config.cnn.replicate=(1, 1)",
    "--config.cnn.proxy.num_train=60",
    "--config.cnn.proxy.num_val=40",
    "--config.cnn.train.epochs=1",
    "--config.cnn.train.batch_size=20",
    "--config.cnn.train.eval_batch_size=40",
]


def tiny_lm_recipe(cell, **kw):
  """A ShrinkRNN `LMRecipe` small enough for a resume test (hidden 8,
  3 epochs, bptt 8), fields in `kw` replaced."""
  from gram_jax.autoshrink import train_rnn  # pylint: disable=import-outside-toplevel

  base = dict(
      cell=cell,
      nhid=8,
      epochs=3,
      batch_size=64,
      eval_batch_size=32,
      test_batch_size=32,
      bptt=8,
      max_seq_len_delta=4,
      bucket=0,
      nonmono=1,
  )
  base.update(kw)
  return train_rnn.LMRecipe(**base)


def free_linear(next_fun, args, kwargs, context):
  """Replaces Conv/Dense/DepthwiseConv by a zero-FLOP op of the same output
  shape."""
  mod = context.module
  if context.method_name != "__call__" or not isinstance(
      mod, (nn.Conv, nn.Dense, DepthwiseConv)
  ):
    return next_fun(*args, **kwargs)
  x = args[0]
  if isinstance(mod, DepthwiseConv):
    return x[:, :: mod.stride, :: mod.stride, :]
  if isinstance(mod, nn.Dense):
    return jnp.broadcast_to(x[..., :1], x.shape[:-1] + (mod.features,))
  s = mod.strides[0] if mod.strides else 1
  y = x[:, ::s, ::s, :1]  # SAME padding: ceil(H / s) rows, as the conv
  return jnp.broadcast_to(y, y.shape[:-1] + (mod.features,))


def file_digests(workdir, dirs=False):
  """``{relative path: sha256}`` of every file under `workdir` (to check
  that a refused command left a run directory untouched); with `dirs`,
  every directory too (-> None), so an added empty one shows."""
  out = {}
  for base, subdirs, files in os.walk(workdir):
    for d in subdirs if dirs else ():
      out[os.path.relpath(os.path.join(base, d), workdir)] = None
    for f in files:
      p = os.path.join(base, f)
      with open(p, "rb") as fh:
        out[os.path.relpath(p, workdir)] = hashlib.sha256(fh.read()).digest()
  return out


def tiny_single_path_config():
  """A Single-Path config dict small enough for a resume test: 256 digits
  images, one 8-channel stage, 2 epochs of 8 steps, checkpoints every 4."""
  from gram_jax.singlepath import config as sp_config  # pylint: disable=import-outside-toplevel

  d = sp_config.SinglePathConfig().to_dict()
  d.update(
      dataset="digits",
      max_examples=256,
      eval_examples=128,
      eval_batch_size=128,
      checkpoint_every=4,
  )
  d["macro"].update(
      stem_channels=4,
      stem_stride=2,
      first_channels=4,
      stages=["8x2/2"],
      last_channels=8,
      head_channels=16,
      dropout=0.0,
      bn_momentum=0.9,
  )
  d["runtime"].update(
      table="macs", runtime_lambda=3.0, scale=1.0, warmup_epochs=1.0
  )
  d["train"].update(
      epochs=2,
      batch_size=32,
      learning_rate=3e-3,
      optimizer="adam",
      threshold_lr_scale=100.0,
  )
  return d
