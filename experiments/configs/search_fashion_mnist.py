"""A GRAM search on a Fashion-MNIST proxy, for `compare_fashion_mnist.py`.

Command (offline once the Fashion-MNIST IDX files are installed, e.g. the
Debian package dataset-fashion-mnist):
  gram-jax search --config experiments/configs/search_fashion_mnist.py \\
      --workdir runs/search_fashion_mnist

The quickstart search (experiments/configs/quickstart.py: 2 hierarchies x
3 DAGs x 8 nodes, width 0.25, 500 proxy training and 400 validation
images, 10 epochs per candidate, 60 iterations) on Fashion-MNIST, with the
adaptation stem in the searched space: two 3x3 stride-2 convs (16 channels
after the width) take the 28x28 images to 7x7, about the 8x8 the digits
quickstart searches at, so the DAGs search and later train at the same
resolution. `compare_fashion_mnist.py` gives the digits quickstart
meta-graph the same stem for its transfer rows.

The proxy's learning rate decays to 0 over each candidate's training
(``train.schedule="cosine"``): on this proxy that halves the training noise
of a candidate's reward (0.025 -> 0.0125 standard deviation, measured with
benchmarks/proxy_noise.py; experiments/README.md, GRAM vs random search).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quickstart  # noqa: E402  pylint: disable=wrong-import-position


def get_config(arg=None):
  del arg
  c = quickstart.get_config()
  c.dataset = "fashion_mnist"
  c.space.stem = ("conv3x3_64/2", "conv3x3_64/2")  # x width 0.25: 16
  c.train.schedule = "cosine"
  return c
