"""SwiftNet vs MobileNetV2 / FBNet on CIFAR-10 under the compare protocol.

Command (after a CIFAR-10 search in runs/gram_cifar10, e.g. the Table 1
experiment's search/, and `tfds.load("cifar10", download=True)` on a
machine with network):
  gram-jax compare --config experiments/configs/compare_cifar10.py \\
      --workdir runs/compare_cifar10

The protocol of gram_jax/compare.py (as compare_fashion_mnist.py): every
model at 32x32 on the same 45,000 training images (5,000 held out for
validation, split seed 0), the paper's CIFAR-10 recipe for all of them
(momentum SGD 0.01 x0.1 at 50% and 75% of 200 epochs, L2 5e-4, pad-4 crop
+ flip, batch 128 [SN §4.1]), seeds 0 and 1, the 10,000-image test split
for the table. The SwiftNet networks were searched at 32x32 and run there
with no stem, as in the paper's Table 1. The baselines keep their ImageNet
strides, so their last stages run on 1x1 maps (the usual CIFAR ports of
MobileNetV2 drop the first strides; these are the published networks).

Expected accelerator time: an estimate, not measured, of 10-20 GPU-minutes
per run (200 epochs x 45k images of a < 100M-MAC network), 3-5 GPU-hours
for the 8 models x 2 seeds; TFLite conversion and timing run on the host.

The paper's CIFAR-10 figures [SN Table 1], top-1 % / MACs / accuracy
density: SwiftNet-0.65 85.92 / 3M / 28.64, SwiftNet-0.5 88.74 / 5M /
17.75, SwiftNet-0.4 89.09 / 12M / 7.42, SwiftNet-0.3 90.17 / 36M / 2.50.
The paper gives no CIFAR-10 baseline numbers.
"""

import ml_collections


def get_config(arg=None):
  del arg
  c = ml_collections.ConfigDict()
  c.dataset = "cifar10"
  c.data_dir = ""
  c.recipe = ml_collections.ConfigDict()
  c.recipe.epochs = 200
  c.recipe.batch_size = 128
  c.recipe.optimizer = "momentum"
  c.recipe.learning_rate = 0.01
  c.recipe.schedule = "step"
  c.recipe.decay_rate = 0.1
  c.recipe.weight_decay = 5e-4
  c.recipe.augment = "crop_flip"
  c.recipe.augment_pad = 4
  c.recipe.val_examples = 5000
  c.recipe.split_seed = 0
  c.seeds = (0, 1)
  c.swiftnet = ml_collections.ConfigDict()
  c.swiftnet.searched = ml_collections.ConfigDict()
  c.swiftnet.searched.role = "searched"
  c.swiftnet.searched.search_workdir = "runs/gram_cifar10"
  c.swiftnet.searched.prune_levels = (0.3, 0.4, 0.5, 0.65)  # Table 1's
  c.swiftnet.searched.prune_mode = "threshold"
  c.swiftnet.searched.upscales = (1.0,)
  c.swiftnet.searched.stem = ()
  c.baselines = (
      "mobilenet_v2@0.35",
      "mobilenet_v2@0.5",
      "mobilenet_v2@1.0",
      "fbnet_96_035_1",
  )
  c.latency = ml_collections.ConfigDict()
  c.latency.threads = 1
  c.latency.runs = 100
  c.latency.warmup = 20
  c.int8 = ml_collections.ConfigDict()
  c.int8.calibration = 500
  c.similar_points = 0.5
  return c
