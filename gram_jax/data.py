"""Datasets for architecture search: in-memory arrays and tf.data pipelines.

Small datasets are loaded whole into host memory as numpy arrays
(:func:`load`), from which seeded proxy splits (:func:`proxy_split`) and
fixed-shape minibatches (:func:`batches`) are drawn. Datasets too large for
memory (``imagenet2012``) are streamed with :func:`tfds_pipeline`.

``digits`` is scikit-learn's embedded 8x8 digits set and needs no network.
All other names are TensorFlow Datasets (TFDS) datasets that must already be
present in the TFDS data directory; nothing is ever downloaded here.
TensorFlow and TFDS are imported lazily, only by the functions reading TFDS
data, so ``import gram_jax.data`` and ``load("digits")`` stay TensorFlow-free.
"""

from __future__ import annotations

import os
from typing import Iterator, NamedTuple

import numpy as np

from gram_jax.errors import GramJaxError

DATASETS = ("digits", "cifar10", "mnist", "fashion_mnist", "svhn_cropped",
            "imagenet2012")

# Usual published per-channel mean/std of the training images scaled to
# [0, 1]; used by `tfds_pipeline`, which cannot compute them on the fly.
# Native image shape (H, W, C) and class count of each dataset, to size
# networks without loading data (imagenet2012: the usual 224 crop).
INFO = {
    "digits": ((8, 8, 1), 10),
    "cifar10": ((32, 32, 3), 10),
    "mnist": ((28, 28, 1), 10),
    "fashion_mnist": ((28, 28, 1), 10),
    "svhn_cropped": ((32, 32, 3), 10),
    "imagenet2012": ((224, 224, 3), 1000),
}


def info(name: str):
    """``(image_shape, num_classes)`` of a supported dataset, no loading."""
    _check_name(name)
    return INFO[name]


NORMALISATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "svhn_cropped": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "imagenet2012": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

# TFDS split used as the test split of each dataset.
_TEST_SPLIT = {"imagenet2012": "validation"}
_AUGMENTATIONS = ("none", "crop_flip")


class DatasetError(GramJaxError):
    """A dataset cannot be loaded or split as requested."""


class Dataset(NamedTuple):
    """A dataset held in host memory.

    Attributes:
        name: Dataset name, one of `DATASETS`.
        x_train: float32 NHWC training images, standardised per channel with
            training-split statistics.
        y_train: int32 training class ids.
        x_test: float32 NHWC test images, standardised like `x_train`.
        y_test: int32 test class ids.
        num_classes: Number of classes.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape ``(H, W, C)`` of one image."""
        return tuple(self.x_train.shape[1:])


class ProxySplit(NamedTuple):
    """Disjoint train/validation subsets of a dataset's training split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise DatasetError(f"dataset {name!r} is not supported; allowed: "
                           f"{', '.join(DATASETS)}")


def _standardise(x_train: np.ndarray, x_test: np.ndarray):
    """Standardises both splits per channel with train-split statistics."""
    axes = tuple(range(x_train.ndim - 1))
    mean = x_train.mean(axis=axes, dtype=np.float64)
    std = np.maximum(x_train.std(axis=axes, dtype=np.float64), 1e-8)
    mean, std = mean.astype(np.float32), std.astype(np.float32)
    return (x_train - mean) / std, (x_test - mean) / std


def load(name: str = "digits", *, data_dir: str | None = None,
         image_size: int | None = None, max_examples: int | None = None,
         test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Loads a dataset into host memory.

    Images are scaled to [0, 1] and then standardised per channel (mean 0,
    std 1) with statistics of the training split, applied to both splits.

    Args:
        name: One of `DATASETS`.
        data_dir: TFDS data directory (TFDS default when None). Unused for
            ``digits``.
        image_size: If given, images are resized (bilinear) to
            ``image_size x image_size``. Required for ``imagenet2012``.
        max_examples: If given, at most this many train examples and at most
            this many test examples are read. Required for ``imagenet2012``.
        test_fraction: Fraction of ``digits`` held out as the test split
            (TFDS datasets use their own test split).
        seed: Seed of the stratified ``digits`` train/test split.

    Returns:
        The `Dataset`.

    Raises:
        DatasetError: For an unknown name, bad arguments, or TFDS data that
            is not present in the data directory.
    """
    _check_name(name)
    if max_examples is not None and max_examples < 1:
        raise DatasetError(f"max_examples must be >= 1, got {max_examples}")
    if image_size is not None and image_size < 1:
        raise DatasetError(f"image_size must be >= 1, got {image_size}")
    if name == "digits":
        x_tr, y_tr, x_te, y_te = _load_digits(test_fraction, seed, image_size)
        if max_examples is not None:
            x_tr, y_tr = x_tr[:max_examples], y_tr[:max_examples]
            x_te, y_te = x_te[:max_examples], y_te[:max_examples]
        num_classes = 10
    else:
        if name == "imagenet2012" and (max_examples is None
                                       or image_size is None):
            raise DatasetError(
                "imagenet2012 does not fit in memory: load() needs both "
                "max_examples and image_size (use tfds_pipeline() to stream "
                "the full dataset)")
        x_tr, y_tr, num_classes = _read_tfds(name, "train", data_dir,
                                             image_size, max_examples)
        x_te, y_te, _ = _read_tfds(name, _TEST_SPLIT.get(name, "test"),
                                   data_dir, image_size, max_examples)
    x_tr, x_te = _standardise(x_tr, x_te)
    return Dataset(name, x_tr, y_tr.astype(np.int32), x_te,
                   y_te.astype(np.int32), num_classes)


def _load_digits(test_fraction: float, seed: int, image_size: int | None):
    """scikit-learn digits scaled to [0, 1], stratified seeded split."""
    from sklearn.datasets import load_digits

    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(
            f"test_fraction must be in (0, 1), got {test_fraction}")
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int32)
    if image_size is not None:
        import jax
        x = np.asarray(jax.image.resize(
            x, (len(x), image_size, image_size, 1), "bilinear"))
    # Stratified: ceil(test_fraction * N) test examples shared among classes
    # in proportion to their size (largest remainders get the leftovers).
    classes, counts = np.unique(y, return_counts=True)
    quota = test_fraction * counts
    per_class = np.floor(quota).astype(int)
    leftover = int(np.ceil(test_fraction * len(y))) - per_class.sum()
    per_class[np.argsort(per_class - quota, kind="stable")[:leftover]] += 1
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for c, k in zip(classes, per_class):
        test[rng.permutation(np.flatnonzero(y == c))[:k]] = True
    train_idx = rng.permutation(np.flatnonzero(~test))
    test_idx = rng.permutation(np.flatnonzero(test))
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


def _tfds_load(name: str, split: str, data_dir: str | None, **kwargs):
    """`tfds.load` without downloading; missing data -> `DatasetError`."""
    import tensorflow_datasets as tfds

    try:
        return tfds.load(name, split=split, data_dir=data_dir, download=False,
                         as_supervised=True, **kwargs)
    except Exception as e:
        where = data_dir or tfds.core.constants.DATA_DIR
        if name == "imagenet2012":
            how = (f"download the ILSVRC2012 tar files manually into "
                   f"{os.path.join(where, 'downloads', 'manual')}/ as "
                   f"documented by TFDS, then run python -c \"import "
                   f"tensorflow_datasets as tfds; tfds.load('imagenet2012', "
                   f"data_dir='{where}', download=True)\"")
        else:
            how = (f"run python -c \"import tensorflow_datasets as tfds; "
                   f"tfds.load('{name}', data_dir='{where}', download=True)\""
                   f" on a machine with network, or pass --data_dir")
        raise DatasetError(
            f"dataset {name!r} (split {split!r}) is not in data_dir {where} "
            f"({type(e).__name__}); to get it, {how}") from None


def _num_classes(name: str, data_dir: str | None) -> int:
    import tensorflow_datasets as tfds

    return tfds.builder(name, data_dir=data_dir).info.features[
        "label"].num_classes


def _read_tfds(name: str, split: str, data_dir: str | None,
               image_size: int | None, max_examples: int | None):
    """Reads a TFDS split into numpy: images in [0, 1], int labels."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    if max_examples is not None:
        split = f"{split}[:{max_examples}]"
    # Deliberately not batch_size=-1: it needs the split sizes from the
    # dataset metadata, which mocked datasets lack (it then batches by
    # sys.maxsize and aborts the process).
    ds = _tfds_load(name, split, data_dir)
    if max_examples is not None:
        ds = ds.take(max_examples)
    if image_size is not None:
        ds = ds.map(lambda x, y: (tf.image.resize(x, (image_size, image_size),
                                                  method="bilinear"), y),
                    num_parallel_calls=tf.data.AUTOTUNE)
    xs, ys = [], []
    for x, y in tfds.as_numpy(ds.batch(1024).prefetch(tf.data.AUTOTUNE)):
        xs.append(x.astype(np.float32) / 255.0)
        ys.append(y.astype(np.int32))
    if not xs:
        raise DatasetError(f"dataset {name!r} split {split!r} is empty")
    return (np.concatenate(xs), np.concatenate(ys),
            _num_classes(name, data_dir))


def proxy_split(dataset: Dataset, *, seed: int, num_train: int = 500,
                num_val: int = 1000, per_class: bool = False) -> ProxySplit:
    """Draws disjoint proxy train/validation sets from the training split.

    The test split is never touched. Examples are drawn without replacement
    with ``np.random.default_rng(seed)``, so the result is deterministic.

    Args:
        dataset: The dataset.
        seed: Sampling seed.
        num_train: Number of proxy training examples (per class if
            `per_class`).
        num_val: Number of proxy validation examples (per class if
            `per_class`).
        per_class: Draw class-balanced sets with `num_train` and `num_val`
            examples of every class.

    Returns:
        The `ProxySplit`.

    Raises:
        DatasetError: If the training split (or a class of it) has fewer
            than ``num_train + num_val`` examples.
    """
    if num_train < 1 or num_val < 0:
        raise DatasetError(f"need num_train >= 1 and num_val >= 0, got "
                           f"num_train={num_train}, num_val={num_val}")
    y = dataset.y_train
    rng = np.random.default_rng(seed)
    need = num_train + num_val
    if per_class:
        train_idx, val_idx = [], []
        for c in range(dataset.num_classes):
            idx = np.flatnonzero(y == c)
            if len(idx) < need:
                raise DatasetError(
                    f"proxy split needs num_train={num_train} + num_val="
                    f"{num_val} = {need} examples per class, but class {c} "
                    f"of {dataset.name!r} has only {len(idx)} training "
                    f"examples")
            idx = rng.permutation(idx)
            train_idx.append(idx[:num_train])
            val_idx.append(idx[num_train:need])
        train_idx = rng.permutation(np.concatenate(train_idx))
        val_idx = rng.permutation(np.concatenate(val_idx))
    else:
        if len(y) < need:
            raise DatasetError(
                f"proxy split needs num_train={num_train} + num_val={num_val}"
                f" = {need} examples, but the training split of "
                f"{dataset.name!r} has only {len(y)}")
        perm = rng.permutation(len(y))
        train_idx, val_idx = perm[:num_train], perm[num_train:need]
    return ProxySplit(dataset.x_train[train_idx], y[train_idx],
                      dataset.x_train[val_idx], y[val_idx])


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, *,
            seed: int | None, drop_remainder: bool = True
            ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Iterates once over ``(x, y)`` in minibatches.

    Args:
        x: Inputs, leading axis indexes examples.
        y: Labels, same length as `x`.
        batch_size: Examples per batch.
        seed: Shuffle with ``np.random.default_rng(seed)`` if not None,
            otherwise keep the order.
        drop_remainder: Drop the last incomplete batch so that every batch
            has the same shape.

    Returns:
        An iterator of ``(x_batch, y_batch)`` numpy pairs.
    """
    if batch_size < 1:
        raise DatasetError(f"batch_size must be >= 1, got {batch_size}")
    if len(x) != len(y):
        raise DatasetError(f"x and y lengths differ: {len(x)} != {len(y)}")
    n = len(x)
    order = (np.arange(n) if seed is None
             else np.random.default_rng(seed).permutation(n))
    stop = n - n % batch_size if drop_remainder else n

    def generate():
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            yield x[idx], y[idx]

    return generate()


def tfds_pipeline(name: str, split: str, *, batch_size: int,
                  data_dir: str | None = None, image_size: int | None = None,
                  train: bool, seed: int = 0, augment: str = "none"):
    """Streams a TFDS dataset as a batched, normalised `tf.data.Dataset`.

    For datasets too large for host memory. Images are optionally resized
    (bilinear), augmented, scaled to [0, 1] and standardised with the fixed
    constants in `NORMALISATION`.

    Args:
        name: A TFDS name from `DATASETS` (not ``digits``).
        split: TFDS split string, e.g. ``"train"`` or ``"validation[:10%]"``.
        batch_size: Examples per batch.
        data_dir: TFDS data directory (TFDS default when None).
        image_size: Resize images to ``image_size x image_size``. Required
            for ``imagenet2012`` (variable image sizes).
        train: Shuffle (files and examples) and drop the last partial batch.
        seed: Shuffling/augmentation seed.
        augment: ``"none"`` or ``"crop_flip"`` (pad 4 pixels, random crop
            back to size, random horizontal flip).

    Returns:
        A `tf.data.Dataset` of ``(image, label)`` pairs: float32 NHWC images
        and int32 labels.

    Raises:
        DatasetError: For bad arguments or data missing from the data dir.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    _check_name(name)
    if name not in NORMALISATION:
        raise DatasetError(f"dataset {name!r} is not a TFDS dataset; use "
                           f"load({name!r}) instead")
    if augment not in _AUGMENTATIONS:
        raise DatasetError(f"augment {augment!r} is not supported; allowed: "
                           f"{', '.join(_AUGMENTATIONS)}")
    if name == "imagenet2012" and image_size is None:
        raise DatasetError("imagenet2012 images vary in size: pass image_size")
    mean, std = (tf.constant(v, tf.float32) for v in NORMALISATION[name])
    # Shuffle the still-encoded images (cheap, even for ImageNet), decode
    # afterwards in `preprocess`.
    ds = _tfds_load(name, split, data_dir, shuffle_files=train,
                    read_config=tfds.ReadConfig(shuffle_seed=seed),
                    decoders={"image": tfds.decode.SkipDecoding()})
    shape = tfds.builder(name, data_dir=data_dir).info.features["image"].shape
    if train:
        ds = ds.shuffle(max(10 * batch_size, 10_000), seed=seed)

    def preprocess(encoded, label):
        image = tf.io.decode_image(encoded, channels=shape[-1],
                                   expand_animations=False)
        image = tf.cast(image, tf.float32) / 255.0
        if image_size is None:
            image = tf.ensure_shape(image, shape)
        else:
            image = tf.image.resize(image, (image_size, image_size),
                                    method="bilinear")
        if augment == "crop_flip":
            h, w, c = image.shape  # static here
            image = tf.image.pad_to_bounding_box(image, 4, 4, h + 8, w + 8)
            image = tf.image.random_crop(image, (h, w, c), seed=seed)
            image = tf.image.random_flip_left_right(image, seed=seed)
        return (image - mean) / std, tf.cast(label, tf.int32)

    ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=train).prefetch(
        tf.data.AUTOTUNE)
