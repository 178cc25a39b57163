"""GRAM against random search at an equal budget, on Fashion-MNIST.

Command (every stage resumes; rerun the same command after an interruption):
  gram-jax ablation --config experiments/configs/ablation_fashion_mnist.py:runlocal \
      --workdir runs/ablation_fmnist

Data: the real Fashion-MNIST (60,000 / 10,000 images, 28x28), read offline
from the four IDX files (`apt-get install dataset-fashion-mnist`, or
`--config.search.data_dir=DIR`).

Protocol: for each seed, one GRAM search and one random search over the very
same meta-graph (the seed fixes the node ops and the 500 / 1,000 proxy split
taken from the training split), with the same iterations, proxy recipe, cost
(``log10 MACs - 6``) and gamma. Each run's network is derived at one MACs
budget (the median MACs of random search's samples): GRAM's meta-graph pruned
to the budget, and each run's best-rewarded sample within the budget. Every
network is trained from scratch on the whole training set with one recipe and
evaluated on the 10,000 test images.

Space: 2 hierarchies x 3 DAGs x 8 nodes (168 edges), width 0.25, the paper's
op table, behind two 3x3 stride-2 convs so the DAGs run at 7x7 and 4x4.

runlocal (2-core CPU): 3 seeds x 2 strategies x 100 iterations at about 5 s
per candidate (about 50 minutes of searching), then 9 trainings of 4 epochs
(about 1 minute per epoch each); about 1.5 hours in all.
Default (an accelerator): 5 seeds, 3 x 3 DAGs of 12 nodes at width 0.5,
300 iterations, 30-epoch trainings; not run here.
"""

import ml_collections

from gram_jax.space import PAPER_OPS


def get_config(arg=None):
  runlocal = arg == "runlocal"
  c = ml_collections.ConfigDict()
  c.name = "GRAM vs random search, Fashion-MNIST" + (
      " (runlocal)" if runlocal else ""
  )

  s = c.search = ml_collections.ConfigDict()
  s.seed = 0  # replaced by each of c.seeds
  s.dataset = "fashion_mnist"
  s.data_dir = ""
  s.space = ml_collections.ConfigDict()
  s.space.hierarchies = 2 if runlocal else 3
  s.space.dags_per_hierarchy = 3
  s.space.nodes = 8 if runlocal else 12
  s.space.ops = PAPER_OPS
  s.space.width = 0.25 if runlocal else 0.5
  s.space.stem = ("conv3x3_32/2", "conv3x3_32/2")
  s.space.aggregate = "sum"
  s.space.dag_output = "all"
  s.space.pool = "max"
  s.space.max_filters = 0
  s.proxy = ml_collections.ConfigDict()
  s.proxy.num_train = 500  # the paper's proxy size [SN §4.1]
  s.proxy.num_val = 1000  # a larger held-out split: less reward noise
  s.proxy.per_class = False
  s.train = ml_collections.ConfigDict()
  s.train.epochs = 10
  s.train.batch_size = 50
  s.train.learning_rate = 4e-3
  s.train.optimizer = "adam"
  s.train.select = "last"
  s.train.schedule = "constant"  # "cosine": half the proxy noise
  g = s.search = ml_collections.ConfigDict()
  g.iterations = 100 if runlocal else 300
  g.strategy = "gram"  # replaced by each of c.strategies
  g.alpha = 0.9  # the paper's
  g.beta0 = 0.75  # about the proxy accuracy of a random sample
  g.beta_momentum = 0.9
  g.gamma = 0.1
  g.cost = "macs"
  g.normalization = "bernoulli"
  g.init_weight = 0.5
  g.prune_level = 0.5
  g.prune_mode = "threshold"
  s.checkpoint_every = 10
  s.keep_checkpoints = 3

  c.strategies = ("gram", "random")
  c.seeds = (0, 1, 2) if runlocal else (0, 1, 2, 3, 4)
  c.max_macs = 0.0  # 0: the median MACs of random's samples
  c.prune_mode = "quantile"  # fine MACs steps for the budget
  c.prune_step = 0.01
  c.recipe = ml_collections.ConfigDict()
  c.recipe.epochs = 4 if runlocal else 30
  c.recipe.batch_size = 128
  c.recipe.optimizer = "adam"
  c.recipe.learning_rate = 2e-3
  c.recipe.schedule = "cosine"
  c.recipe.weight_decay = 0.0
  c.recipe.augment = "none"
  c.recipe.max_examples = 0  # 0: the whole training split
  c.recipe.seed = 0
  c.measure_latency = True
  c.latency_threads = 1
  return c
