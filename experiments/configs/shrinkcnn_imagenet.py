"""ShrinkCNN on ImageNet: the official training recipe (ALGORITHMS.md 2.4).

Status: the network (`gram_jax.autoshrink.shrinkcnn`), its MACs/params
(383.7M / 3.60M at 224, tested), the learning-rate schedule and optimizer
(`shrinkcnn.schedule`, `shrinkcnn.optimizer`) and the L2 term
(`cnn_search.l2_penalty`) are implemented; there is NO `gram-jax` command
yet that trains ShrinkCNN on ImageNet (`gram-jax train` trains GRAM
ArchSpecs). This file is the recipe such a run must follow:

  from gram_jax.autoshrink import shrinkcnn
  cfg = shrinkcnn.imagenet_config(activation="relu")   # "swish": ShrinkCNN-B
  net = shrinkcnn.shrinkcnn(cfg)                         # released cell
  tx = shrinkcnn.optimizer(steps_per_epoch=1281167 // 256)

Expected accelerator time: the official run took about 600 GPU-hours on
TITAN RTX (2 GPUs, mixed precision, 300 epochs); on one H100 with bf16,
expect on the order of 100-200 hours (estimate, not measured).
Paper / README numbers to compare with (ALGORITHMS.md 2.6):
  ShrinkCNN-A (ReLU):  73.9% top-1, 3.6M params, 384M MACs
  ShrinkCNN-B (swish): 75.1% top-1, 3.6M params, 384M MACs
"""

import ml_collections


def get_config(arg=None):
  """`arg="B"` selects the swish variant."""
  c = ml_collections.ConfigDict()
  c.model = "B" if arg == "B" else "A"
  c.activation = "swish" if arg == "B" else "relu"
  c.dataset = "imagenet2012"  # TFDS, manual download
  c.num_classes = 1001  # TF-slim: class 0 = background
  c.image_size = 224
  c.epochs = 300
  c.batch_size = 256  # 2 GPUs x 128
  c.optimizer = "rmsprop"  # TF: decay 0.9, momentum 0.9, eps 1.0
  c.base_learning_rate = 0.1  # solver 0.05 x 2 GPUs
  c.warmup_epochs = 10  # linear, then cosine to epoch 300; per EPOCH
  c.weight_decay = 4e-5  # Keras l2 (no 1/2); not depthwise, not BN
  c.label_smoothing = 0.1
  c.ema_decay = 0.999  # evaluate with the EMA weights
  c.bn_momentum = 0.999
  c.bn_epsilon = 1e-3
  c.dropout = 0.0
  c.init = "variance_scaling(2.0, fan_out, truncated_normal); fc N(0, 0.01)"
  c.train_augment = (
      "distorted bbox crop area [0.75, 1], aspect [0.75, 1.33], "
      "min_object_covered 0.1, 100 attempts; random resize "
      "method; flip; Inception colour distortion; random "
      "erasing p=0.5 area [0.02, 0.4] r1=0.3; scale to [-1, 1]"
  )
  c.eval_preprocess = "central crop 0.875, bicubic resize 224, [-1, 1]"
  c.mixed_precision = True
  return c
