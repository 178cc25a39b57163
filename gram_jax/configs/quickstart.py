"""Quickstart: a small GRAM search on the embedded digits data (no network).

Command:
  gram-jax search --config experiments/configs/quickstart.py --workdir runs/qs
  (this file ships in the package; experiments/configs/quickstart.py
  re-exports it)
  (or `make demo`, which also trains and evaluates the found network)

Space: 2 hierarchies x 3 DAGs x 8 nodes, width 0.25, the paper's op table.
Proxy task: 500 training and 400 validation images from the digits training
split; every candidate is trained from scratch for 10 epochs (Adam 4e-3).
Expected on an idle 2-core CPU (measured 2026-12-01): 2.0 s per iteration
with the compile included, so the 60 iterations take about 2 minutes,
followed by the final 40-epoch training of the found network (about 20 s).
"""

import ml_collections

from gram_jax.space import PAPER_OPS


def get_config(arg=None):
  """Returns the quickstart config. `arg="runlocal"` is accepted for symmetry."""
  del arg
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.dataset = "digits"
  c.data_dir = ""  # TFDS data directory ("" = TFDS default)

  c.space = ml_collections.ConfigDict()
  c.space.hierarchies = 2
  c.space.dags_per_hierarchy = 3
  c.space.nodes = 8
  c.space.ops = PAPER_OPS
  c.space.width = 0.25
  c.space.stem = ()
  c.space.aggregate = "sum"
  c.space.dag_output = "all"  # every live node feeds the DAG output
  c.space.pool = "max"
  c.space.max_filters = 0  # 0 = no cap

  c.proxy = ml_collections.ConfigDict()
  c.proxy.num_train = 500  # the paper's proxy size [SN §4.1]
  c.proxy.num_val = 400  # held out from the training split
  c.proxy.per_class = False

  c.train = ml_collections.ConfigDict()  # per-candidate proxy training
  c.train.epochs = 10
  c.train.batch_size = 50
  c.train.learning_rate = 4e-3  # AutoShrink's proxy recipe
  c.train.optimizer = "adam"
  c.train.select = "last"

  c.search = ml_collections.ConfigDict()
  c.search.iterations = 60
  c.search.strategy = "gram"  # gram | random
  c.search.alpha = 0.9
  c.search.beta0 = (
      0.9  # paper: 0.4 on CIFAR proxies; digits proxies reach ~0.95
  )
  c.search.beta_momentum = 0.9
  c.search.gamma = 0.1  # per unit of cost (paper: 1 per ms for latency)
  c.search.cost = "macs"  # macs: tau = log10(MACs) - 6 | lut | measured (ms)
  c.search.normalization = "bernoulli"  # see metagraph.update
  c.search.init_weight = 0.5  # about half the edges in early samples
  # A weight is the probability of sampling its edge (0.5 at the start), so
  # threshold 0.5 keeps the edges the search made more likely than not.
  c.search.prune_level = 0.5
  c.search.prune_mode = "threshold"
  c.search.lut_path = ""  # latency table (gram-jax lut build) for cost=lut
  c.search.latency_threads = 1  # LiteRT threads for cost=measured
  c.search.latency_runs = 30

  c.checkpoint_every = 10
  c.keep_checkpoints = 3

  # Final training of the found network (quickstart only).
  c.final = ml_collections.ConfigDict()
  c.final.epochs = 40
  c.final.batch_size = 64
  c.final.learning_rate = 4e-3
  c.final.optimizer = "adam"
  return c
