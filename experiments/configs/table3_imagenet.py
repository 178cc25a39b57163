"""Table 3 of SwiftNet: ImageNet adaptation, input 96/128 x level 0.4/0.5 x
channel up-scaling 1.0/1.25/1.5 (12 networks).

Command (full: needs the Table 1 search run and ImageNet via TFDS, which
must be downloaded manually; an accelerator):
  gram-jax experiment --config experiments/configs/table3_imagenet.py \
      --workdir runs/table3 --config.from_workdir=runs/table1/search
Runlocal (digits, CPU, offline; about 20 min on a 2-core CPU): searches its
own small meta-graph, then trains 2 sizes x 2 levels x 3 up-scalings of it
on digits resized to 16 and 24 pixels, with the ImageNet recipe's stem conv
and RMSProp, shortened:
  gram-jax experiment --config experiments/configs/table3_imagenet.py:runlocal \
      --workdir runs/table3_local

The generated model gets a 3x3/2 stem conv with 32 channels before it (the
ImageNet recipe's `stem`, ALGORITHMS.md 1.3 #11) and the global average pool
adapts to the output size. Recipe [SN §4.1]: RMSProp lr 0.045 x0.94 every 2
epochs, L2 1e-5 (epochs not given: 100 here).

Expected accelerator time: roughly 1-3 GPU-days per network for 100 ImageNet
epochs at these sizes (input pipeline bound); 12 networks.

Paper [SN Table 3] (top-1 / top-5 %, MACs, params): see `PAPER` below; the
best, 128-0.4-1.50: 63.28 / 85.22, 53M MACs, 2.07M params.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _paper_search import paper_search  # noqa: E402  pylint: disable=wrong-import-position

_ROWS = [  # input, level, up-scale, top-1, top-5, M MACs, M params
    (96, 0.5, 1.0, 48.24, 73.56, 10, 0.87),
    (96, 0.4, 1.0, 54.44, 77.12, 14, 1.15),
    (128, 0.5, 1.0, 54.69, 77.27, 18, 0.87),
    (128, 0.4, 1.0, 59.13, 81.32, 26, 1.15),
    (96, 0.5, 1.25, 51.03, 74.33, 15, 1.20),
    (96, 0.4, 1.25, 56.21, 78.83, 21, 1.58),
    (128, 0.5, 1.25, 57.91, 80.51, 26, 1.20),
    (128, 0.4, 1.25, 61.99, 84.26, 38, 1.58),
    (96, 0.5, 1.5, 52.76, 76.01, 20, 1.56),
    (96, 0.4, 1.5, 57.46, 80.03, 30, 2.07),
    (128, 0.5, 1.5, 59.45, 81.62, 36, 1.56),
    (128, 0.4, 1.5, 63.28, 85.22, 53, 2.07),
]
PAPER = [
    {
        "dataset": "imagenet2012",
        "input_size": s,
        "level": l,
        "upscale": u,
        "top1": t1,
        "top5": t5,
        "mmacs": mm,
        "mparams": mp,
    }
    for s, l, u, t1, t5, mm, mp in _ROWS
]


def get_config(arg=None):
  runlocal = arg == "runlocal"
  c = ml_collections.ConfigDict()
  c.name = "SwiftNet Table 3: ImageNet adaptation" + (
      " (runlocal: digits)" if runlocal else ""
  )
  c.search = paper_search(runlocal)
  c.from_workdir = ""
  c.levels = (0.4, 0.5)
  # runlocal: a 40-iteration search leaves every edge weight (a sampling
  # probability, 0.5 at the start) within about 0.1 of 0.5, so absolute
  # levels would keep all edges or almost none; quantile levels drop that
  # fraction of each DAG's lowest-weighted edges instead.
  c.prune_mode = "quantile" if runlocal else "threshold"
  c.upscales = (1.0, 1.25, 1.5)
  c.upscale_divisor = 1
  c.datasets = ("digits",) if runlocal else ("imagenet2012",)
  c.input_sizes = (16, 24) if runlocal else (96, 128)
  c.recipe = ml_collections.ConfigDict()
  if runlocal:  # the ImageNet recipe's optimizer, schedule and stem
    c.recipe.epochs = 15
    c.recipe.optimizer = "rmsprop"
    c.recipe.learning_rate = 0.0045
    c.recipe.schedule = "exponential"
    c.recipe.decay_rate = 0.94
    c.recipe.decay_epochs = 2.0
    c.recipe.weight_decay = 1e-5
    c.recipe.stem = ("conv3x3_32/2",)
  c.measure_latency = True
  c.latency_threads = 1
  c.reference = [] if runlocal else PAPER
  return c
