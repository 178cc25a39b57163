"""The paper-scale GRAM search config shared by the table experiments.

Not a command on its own: `table1_cifar10.py` and `table3_imagenet.py`
build on it. Space and search settings follow SwiftNet [SN §3.2, §4.1] and
ALGORITHMS.md 1.1-1.3: 3 hierarchies x 3 DAGs x 30 nodes, the paper's five
ops, 1000 iterations, a 500-image CIFAR-10 proxy.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quickstart  # noqa: E402  pylint: disable=wrong-import-position


def paper_search(runlocal: bool):
  """The search ConfigDict; `runlocal` shrinks it to digits on a CPU."""
  c = quickstart.get_config()
  if runlocal:
    c.search.iterations = 40
    return c
  c.dataset = "cifar10"
  c.space.hierarchies = 3
  c.space.dags_per_hierarchy = 3
  c.space.nodes = 30
  c.space.width = 1.0
  c.proxy.num_train = 500
  c.proxy.num_val = 1000
  c.train.epochs = 20
  c.train.batch_size = 128
  c.search.iterations = 1000
  c.search.beta0 = 0.4
  c.checkpoint_every = 20
  return c
