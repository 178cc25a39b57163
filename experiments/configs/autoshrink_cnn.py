"""AutoShrink CNN search with the paper's settings on a CIFAR-10 proxy.

Command:
  python -m gram_jax.cli autoshrink --config experiments/configs/autoshrink_cnn.py \
      --workdir runs/autoshrink_cifar10
  (cifar10 must be in the TFDS data directory; --config.cnn.data_dir=... )

Settings (ALGORITHMS.md 2.1-2.2): complete 8-node DAG (28 edges), frozen
balanced sep3x3 / conv1x1 ops, k = 10 candidates per round, score
acc - 0.1 (log10 MACs - 6), keep_fraction 0.01 (to 0 edges), best snapshot.
Proxy network: stem 3x3/1 32 ch, 3 stages x 1 cell, F = 16/32/64, pools
1/2/2. Per candidate: Adam 4e-3, batch 128, <= 20 epochs with the official
early stops, best epoch's val accuracy, L2 1e-5. Proxy data: 500 training
and 100 validation images per class, both from the CIFAR-10 training split
without replacement (official: with replacement, val from the test split).
Expected: <= 28 rounds x <= 10 candidates (<= 280 proxy trainings); the
paper reports 1.5 GPU-hours on a TITAN Xp. On a CPU this is days: use a GPU.
"""

import importlib.util
import os


def get_config(arg=None):
  here = os.path.dirname(os.path.abspath(__file__))
  spec = importlib.util.spec_from_file_location(
      "autoshrink_cnn_runlocal",
      os.path.join(here, "autoshrink_cnn_runlocal.py"),
  )
  base = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(base)
  c = base.get_config(arg)
  c.search.k = 10
  c.search.keep_fraction = 0.01
  c.cnn.dataset = "cifar10"
  c.cnn.nodes = 8
  c.cnn.base_filters = 16
  c.cnn.stem_channels = 32
  c.cnn.vmap = False  # measure with benchmarks/autoshrink_throughput.py
  c.cnn.proxy.num_train = 500
  c.cnn.proxy.num_val = 100
  c.cnn.proxy.per_class = True
  c.cnn.train.epochs = 20
  c.cnn.train.batch_size = 128
  c.cnn.train.eval_batch_size = 100
  return c
