"""SwiftNet vs MobileNetV2 / FBNet on CIFAR-10 with the paper's recipe.

Command (after a CIFAR-10 search in runs/gram_cifar10 and
`tfds.load("cifar10", download=True)` on a machine with network):
  gram-jax compare --config experiments/configs/compare_cifar10.py \\
      --workdir runs/compare_cifar10

Recipe: the paper's CIFAR-10 full training [SN §4.1] (fulltrain.RECIPES:
momentum SGD 0.01, x0.1 at 50% and 75%, L2 5e-4, crop + flip, batch 128),
200 epochs, for every model at 32x32. The baselines keep their ImageNet
strides, so at 32x32 their last stages run on 1x1 maps (the usual CIFAR
ports of MobileNetV2 drop the first strides; these are the published
networks, unchanged): say so when quoting the table.

Expected accelerator time: about 10-20 GPU-minutes per model on one
modern GPU (200 epochs x 50k images of a < 100M-MAC network), about 2-3
hours for the eight models; TFLite timing runs on the host.

The paper's CIFAR-10 figures to compare against [SN Table 1], top-1 % /
MACs / accuracy density: SwiftNet-0.65 85.92 / 3M / 28.64, SwiftNet-0.5
88.74 / 5M / 17.75, SwiftNet-0.4 89.09 / 12M / 7.42, SwiftNet-0.3 90.17 /
36M / 2.50. The paper gives no CIFAR-10 baseline numbers.
"""

import ml_collections


def get_config(arg=None):
  del arg
  c = ml_collections.ConfigDict()
  c.dataset = "cifar10"
  c.data_dir = ""
  c.recipe = ml_collections.ConfigDict()
  c.recipe.epochs = 200
  c.recipe.seed = 0
  c.swiftnet = ml_collections.ConfigDict()
  c.swiftnet.archs = ()
  c.swiftnet.search_workdir = "runs/gram_cifar10"
  c.swiftnet.prune_levels = (0.3, 0.4, 0.5, 0.65)   # Table 1's levels
  c.swiftnet.prune_mode = "threshold"
  c.swiftnet.upscale = 1.0
  c.baselines = ("mobilenet_v2@0.35", "mobilenet_v2@0.5", "mobilenet_v2@1.0",
                 "fbnet_96_035_1")
  c.latency = ml_collections.ConfigDict()
  c.latency.threads = 1
  c.latency.runs = 100
  c.latency.warmup = 20
  c.similar_points = 1.0
  return c
