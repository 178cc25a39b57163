"""SwiftNet vs MobileNetV2 / FBNet on the embedded digits data (offline, CPU).

Commands (the comparison needs a GRAM search to take SwiftNet candidates
from: `make demo` writes one to runs/quickstart in about 5 minutes):
  gram-jax quickstart --workdir runs/quickstart
  gram-jax compare --config experiments/configs/compare_digits.py \\
      --workdir runs/compare_digits

Candidates: the quickstart meta-graph with the lowest-weighted 30, 40, 50
and 60% of each DAG's edges pruned (quantile mode, as the quickstart itself
prunes: a 60-iteration search leaves all weights in about [0.85, 1]), against MobileNetV2 at widths
0.35, 0.5 and 1.0 and FBNet-96-0.35-1. Every model is trained with the
same recipe: Adam 4e-3, 15 epochs of batch 64 on the 1,437 digits training
images, upsampled to 32x32 so that the baselines' 32x downsampling ends in
a 1x1 map (at the native 8x8 it would end at 1x1 after three strides);
the SwiftNet candidates see the same 32x32 images. Latency: float32
TFLite, LiteRT on this host, 1 thread, median of 50 runs.

Expected runtime on 2 idle CPU cores: about 1 minute of compile and 10-40 s
of training per model, roughly 8-10 minutes in all (resumable: a killed
run continues with the next unfinished model). The numbers are small-data
figures, not the paper's ImageNet ones (see docs/baselines.md).
"""

import ml_collections


def get_config(arg=None):
  del arg
  c = ml_collections.ConfigDict()
  c.dataset = "digits"
  c.data_dir = ""
  c.recipe = ml_collections.ConfigDict()   # fields of fulltrain.Recipe
  c.recipe.epochs = 15
  c.recipe.batch_size = 64
  c.recipe.optimizer = "adam"
  c.recipe.learning_rate = 4e-3
  c.recipe.input_size = 32
  c.recipe.seed = 0
  c.swiftnet = ml_collections.ConfigDict()
  c.swiftnet.archs = ()                    # arch.json files, and/or:
  c.swiftnet.search_workdir = "runs/quickstart"  # a finished search
  c.swiftnet.prune_levels = (0.3, 0.4, 0.5, 0.6)
  c.swiftnet.prune_mode = "quantile"
  c.swiftnet.upscale = 1.0
  c.baselines = ("mobilenet_v2@0.35", "mobilenet_v2@0.5", "mobilenet_v2@1.0",
                 "fbnet_96_035_1")
  c.latency = ml_collections.ConfigDict()
  c.latency.threads = 1
  c.latency.runs = 50
  c.latency.warmup = 10
  c.similar_points = 1.0                   # "similar accuracy": +-1 point
  return c
