"""SwiftNet vs MobileNetV2-0.35 / FBNet-96-0.35-1 on ImageNet at 96x96.

Command (ImageNet-1k prepared for TFDS as imagenet2012, manual download;
a search in runs/gram_imagenet):
  gram-jax compare --config experiments/configs/compare_imagenet.py \\
      --workdir runs/compare_imagenet
  (128x128: --config.recipe.input_size=128)

Recipe: the paper's ImageNet adaptation (fulltrain.RECIPES["imagenet2012"]:
RMSProp 0.045 x0.94 every 2 epochs, L2 1e-5, batch 256, input 96; the
3x3/2 stem conv is added to SwiftNet candidates only, the baselines keep
their own stride-2 stem), 100 epochs for every model; pruning levels 0.4
and 0.5 at channel up-scaling 1.0 (set swiftnet.upscale to 1.25 / 1.5 for
the other rows of Table 3).

Expected accelerator time: about 3-6 GPU-hours per model on one A100/H100
class GPU (100 epochs x 1.28M images at 96x96, input pipeline bound), so
one to two GPU-days for the six models; TFLite timing runs on the host
(the paper timed on a Pixel 1: use `gram-jax latency --android` on the
exported models/<name>/model.tflite for phone numbers).

The paper's figures to compare against (ImageNet-1K, 96x96 unless noted):
  * Table 2: MobileNetV2-0.35 45.5% / 11M MACs / 4.5 ms (Pixel 1);
    FBNet-96-0.35-2 51.9% / 13.7M / 4.26 ms; SwiftNet-0.4 54.4% / 10.4M /
    4.24 ms (Table 3 lists the same network as 96-0.4-1.00: 54.44%, 14M
    MACs, 1.15M parameters).
  * Table 3: 96-0.5-1.00 48.24% / 10M / 0.87M params; 96-0.4-1.00 54.44% /
    14M / 1.15M; 128-0.4-1.50 63.28% / 53M / 2.07M (19.09 ms on Pixel 1).
  * Headline: 2.15x the accuracy density of MobileNetV2 (8.90 vs 4.14),
    2.42x faster at similar accuracy (1.47x vs FBNet).
FBNet-96-0.35-2 (the paper's baseline) is not released; FBNet-96-0.35-1
(50.2%, 12.9M MACs in the FBNet paper) is the registered stand-in.
"""

import ml_collections


def get_config(arg=None):
  del arg
  c = ml_collections.ConfigDict()
  c.dataset = "imagenet2012"
  c.data_dir = ""
  c.recipe = ml_collections.ConfigDict()
  c.recipe.epochs = 100
  c.recipe.input_size = 96
  c.recipe.seed = 0
  c.swiftnet = ml_collections.ConfigDict()
  c.swiftnet.archs = ()
  c.swiftnet.search_workdir = "runs/gram_imagenet"
  c.swiftnet.prune_levels = (0.4, 0.5)
  c.swiftnet.prune_mode = "threshold"
  c.swiftnet.upscale = 1.0
  c.baselines = ("mobilenet_v2@0.35", "mobilenet_v2@0.5", "mobilenet_v2@0.75",
                 "fbnet_96_035_1")
  c.latency = ml_collections.ConfigDict()
  c.latency.threads = 1
  c.latency.runs = 100
  c.latency.warmup = 20
  c.similar_points = 1.0
  return c
