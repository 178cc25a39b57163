"""AutoShrink CNN search on the embedded digits data, small enough for a CPU.

Command:
  python -m gram_jax.cli autoshrink \
      --config experiments/configs/autoshrink_cnn_runlocal.py \
      --workdir runs/autoshrink_cnn

What it runs: the official search loop (complete 6-node DAG, k = 5 distinct
single-edge removals per round, score acc - 0.1 (log10 MACs - 6), remove the
best, prune unreachable nodes, down to round(15 * 0.01) = 0 edges, best
snapshot of the trajectory) on a narrow proxy network (stem 8, F = 4, 8, 16
per stage, 8x8 digits -> 8, 4, 2) trained from scratch per candidate for 4
epochs on 400 images, validated on 300.
Expected: about 12-15 rounds x <= 5 candidates; a few minutes on an idle
2-core CPU (compile once, then well under a second per candidate). Proxy
accuracies of 0.6-0.9 at this size; the result is a toy, the recipe is the
paper's (use `--config.cnn.*` overrides, or autoshrink_cnn.py, for the
CIFAR-10 proxy).
"""

import ml_collections


def get_config(arg=None):
  del arg
  c = ml_collections.ConfigDict()
  c.kind = "cnn"
  c.seed = 0
  c.search = ml_collections.ConfigDict()
  c.search.k = 5  # paper: 10
  c.search.keep_fraction = 0.01  # official CNN value: shrink to 0 edges
  c.keep_checkpoints = 3

  c.cnn = ml_collections.ConfigDict()
  c.cnn.dataset = "digits"
  c.cnn.data_dir = ""
  c.cnn.nodes = 6  # paper: 8
  c.cnn.base_filters = 4  # paper: 16
  c.cnn.scales = (1.0, 2.0, 4.0)
  c.cnn.pools = (1, 2, 2)
  c.cnn.replicate = (1, 1, 1)
  c.cnn.stem_channels = 8  # paper: 32
  c.cnn.activation = "relu"
  c.cnn.use_residual = True
  c.cnn.score_factor = 0.1
  c.cnn.vmap = False  # True: a round's candidates side by side
  c.cnn.proxy = ml_collections.ConfigDict()
  c.cnn.proxy.num_train = 400
  c.cnn.proxy.num_val = 300
  c.cnn.proxy.per_class = False
  c.cnn.train = ml_collections.ConfigDict()
  c.cnn.train.epochs = 4  # paper: <= 20 with early stopping
  c.cnn.train.batch_size = 50  # paper: 128
  c.cnn.train.learning_rate = 4e-3
  c.cnn.train.optimizer = "adam"
  c.cnn.train.weight_decay = 1e-5
  c.cnn.train.early_stop = True
  c.cnn.train.eval_batch_size = 300
  return c
