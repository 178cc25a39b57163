"""SwiftNet vs MobileNetV2 and FBNet on Fashion-MNIST: one protocol for all.

Commands (offline; Fashion-MNIST from its IDX files, e.g. the Debian
package dataset-fashion-mnist, or TFDS):
  gram-jax search --config experiments/configs/search_fashion_mnist.py \\
      --workdir runs/search_fashion_mnist          # SwiftNet, searched
  gram-jax quickstart --workdir runs/quickstart   # digits: the transfer rows
  gram-jax compare \\
      --config experiments/configs/compare_fashion_mnist.py:runlocal \\
      --workdir runs/compare_fashion_mnist_local
  (full, on an accelerator: the same without :runlocal, --workdir
  runs/compare_fashion_mnist)
  gram-jax compare \\
      --config experiments/configs/compare_fashion_mnist.py:fulldata \\
      --workdir runs/compare_fashion_mnist_fulldata
  (the Table 4 row on the whole training split: the shipped release
  networks within 0.86 M MACs and the two nearest baselines; needs no
  search, see `_fulldata` below)

The protocol (gram_jax/compare.py; parse_config refuses a config that
breaks it, naming the field):
  * every model sees the same 28x28x1 images: the official training split
    minus a 5,000-image validation split (split seed 0, the same for every
    model and seed), random crop after 2 pixels of padding and horizontal
    flip; runlocal trains on a seeded 8,000-image subset of the rest, the
    same for every model;
  * one recipe: momentum SGD 0.9, lr 0.05 with cosine decay, L2 5e-4,
    batch 128, 60 epochs (runlocal 20); no per-model settings;
  * the validation split makes every choice (matched baselines, the rows
    the summary quotes); the official 10,000-image test split is evaluated
    once per run, after the last epoch, for the table;
  * seeds 0, 1, 2 (runlocal 0, 1) per row: mean +- sample std;
  * baselines in their published form, scaled by their own knob:
    MobileNetV2 at widths 0.35, 0.5, 0.75, 1.0, FBNet-96-0.35-1 and
    FBNet-A;
  * SwiftNet, two families, pruned at several levels and channel-scaled:
    `searched`: the Fashion-MNIST proxy search (its space has the stem);
    `transfer` (the paper's Table 4 setting): the digits quickstart
    meta-graph used on Fashion-MNIST with no new search, given the same
    adaptation stem (two 3x3/2 convs, 16 channels: 28x28 -> 7x7, close to
    the 8x8 it was searched at, so its DAGs do not run at full resolution).
  Quantile pruning: the short (60-iteration) searches leave every edge
  weight (a sampling probability, 0.5 at the start) within about 0.15 of
  0.5, so absolute thresholds would keep all edges or almost none.
  Channel scaling 0.5 as well as up-scaling: with the stem, a network of
  the quickstart space has 1.4-1.7 M MACs at 28x28 (measured on a short
  search's meta-graph), and x0.5 brings it near the paper's 0.86 M.

Outputs (in --workdir): results.md/.csv/.json, pareto.png, curves.png
(training and validation accuracy per epoch: check that training has
plateaued) and release/ (one JSON per SwiftNet row that `gram-jax train
--arch <file>` retrains, recipe.json for the baselines). Everything
resumes per model and seed.

Cost. Measured training step (batch 128, 28x28, momentum SGD; `python
benchmarks/compare_epoch_cost.py --train 8000`) on the idle 2-core Intel
Xeon this was developed on: MobileNetV2 0.35 / 0.5 / 0.75 / 1.0: 0.090 /
0.116 / 0.188 / 0.215 s; FBNet-96-0.35-1 0.087 s; FBNet-A 0.171 s; a
1.2 M-MAC SwiftNet of the quickstart space with the stem 0.049 s. (The
depthwise layers train as shifted sums on the CPU, gram_jax/depthwise.py:
with XLA's grouped convolution the MBConv networks' steps take 3-4x as
long, `python benchmarks/depthwise.py`.) An epoch of 8,000 training images
plus the 10,000 evaluated ones: 6.5 / 8.3 / 13.8 / 16.0 s, 6.3 s, 12.5 s,
4.4 s.
  * runlocal: 62 steps + 10,000 evaluated images per epoch, 20 epochs x 2
    seeds, 15 models: about 60 min of baselines, 25-30 min of SwiftNets,
    plus compilation and about 15 min of TFLite conversions and timing:
    about 1 h 45 min on the idle machine, resumable.
  * full (55,000 training images, 60 epochs, 3 seeds, 31 models): about
    2 CPU-days here at these step times, so not for this machine. On one
    modern GPU: an estimate, not measured, of 3-6 GPU-hours (1-6 M-MAC
    networks, so a step is launch-bound at a few ms; 430 steps per epoch),
    plus the TFLite conversions and host timing on the CPU (about an hour).

Paper figures (set beside ours in results.md): Table 4, the CIFAR-10
meta-graph on Fashion-MNIST with no new search: 0.86 M MACs, 93.56% top-1,
density 108.79 %/M MACs. Headline (ImageNet 96x96, Pixel 1): 2.15x the
accuracy density of MobileNetV2 and 2.42x faster at similar accuracy
(2.35x and 1.47x against FBNet). Published Fashion-MNIST results for
scale: MobileNet 95.0% (flip augmentation), ResNet18 94.9%, a 2-conv net
with < 100 K parameters 92.5%, human 83.5%.
"""

import ml_collections

STEM = ("conv3x3_16/2", "conv3x3_16/2")


RELEASE = "experiments/results/fashion_mnist/release"
VARIANTS = ("runlocal", "fulldata")


def get_config(arg=None):
  if arg not in (None, "") + VARIANTS:
    raise ValueError(
        f"config variant: {arg!r} is not allowed; allowed: "
        f"{', '.join(VARIANTS)} (or none: the full comparison)"
    )
  if arg == "fulldata":
    return _fulldata()
  runlocal = arg == "runlocal"
  c = ml_collections.ConfigDict()
  c.dataset = "fashion_mnist"
  c.data_dir = ""
  # The protocol: this block trains every model.
  c.recipe = ml_collections.ConfigDict()
  c.recipe.epochs = 20 if runlocal else 60
  c.recipe.batch_size = 128
  c.recipe.optimizer = "momentum"
  c.recipe.learning_rate = 0.05
  c.recipe.schedule = "cosine"
  c.recipe.weight_decay = 5e-4
  c.recipe.augment = "crop_flip"
  c.recipe.augment_pad = 2
  c.recipe.val_examples = 5000
  c.recipe.train_examples = 8000 if runlocal else 0  # 0: all the rest
  c.recipe.split_seed = 0
  c.seeds = (0, 1) if runlocal else (0, 1, 2)

  c.swiftnet = ml_collections.ConfigDict()
  c.swiftnet.searched = ml_collections.ConfigDict()
  c.swiftnet.searched.role = "searched"
  c.swiftnet.searched.search_workdir = "runs/search_fashion_mnist"
  c.swiftnet.searched.prune_levels = (
      (0.5, 0.8) if runlocal else (0.3, 0.5, 0.65, 0.8)
  )
  c.swiftnet.searched.prune_mode = "quantile"
  c.swiftnet.searched.upscales = (
      (0.5, 1.0, 1.5) if runlocal else (0.5, 1.0, 1.5, 2.0)
  )
  c.swiftnet.searched.stem = ()  # the searched space has it
  c.swiftnet.transfer = ml_collections.ConfigDict()
  c.swiftnet.transfer.role = "transfer"
  c.swiftnet.transfer.search_workdir = "runs/quickstart"
  c.swiftnet.transfer.prune_levels = (0.5,) if runlocal else (0.3, 0.5, 0.8)
  c.swiftnet.transfer.prune_mode = "quantile"
  c.swiftnet.transfer.upscales = (0.5, 1.0, 1.5)
  c.swiftnet.transfer.stem = STEM

  c.baselines = (
      "mobilenet_v2@0.35",
      "mobilenet_v2@0.5",
      "mobilenet_v2@0.75",
      "mobilenet_v2@1.0",
      "fbnet_96_035_1",
      "fbnet_a",
  )
  c.latency = ml_collections.ConfigDict()
  c.latency.threads = 1
  c.latency.runs = 100
  c.latency.warmup = 20
  c.int8 = ml_collections.ConfigDict()
  c.int8.calibration = 500  # training images
  c.similar_points = 0.5
  return c


def _fulldata():
  """The Table 4 row on the whole training split, at small cost.

  The runlocal comparison trains on 8,000 images for 20 epochs; this
  variant takes the shipped runlocal networks that fit the paper's
  0.86 M MACs (the searched one and the transfer one) and the two
  baselines nearest them in MACs, and trains them on all 55,000 training
  images for 15 epochs, with BatchNorm statistics recomputed for every
  evaluation (recipe.precise_bn). Everything else is the protocol above.
  Cost on the 2-core machine: 1 h 40 min (2 seeds x 4 models) with other
  work beside it; per epoch about 20 s for the SwiftNets and 45 s for the
  baselines when nothing else runs.
  """
  c = get_config("runlocal")
  c.recipe.epochs = 15
  c.recipe.train_examples = 0
  c.recipe.precise_bn = 20
  c.swiftnet = ml_collections.ConfigDict()
  for fam, name, searched_on in (
      ("searched", "searched-L0.80-x1", "fashion_mnist"),
      ("transfer", "transfer-L0.50-x0.5", "digits"),
  ):
    f = ml_collections.ConfigDict()
    f.role = fam
    f.archs = (f"{RELEASE}/{name}.json",)  # stem and all, as released
    f.searched_on = searched_on
    f.upscales = (1.0,)
    c.swiftnet[fam] = f
  c.baselines = ("mobilenet_v2@0.35", "fbnet_96_035_1")
  return c
