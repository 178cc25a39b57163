"""Datasets for architecture search: in-memory arrays and tf.data pipelines.

Small datasets are loaded whole into host memory as numpy arrays
(:func:`load`), from which seeded proxy splits (:func:`proxy_split`) and
fixed-shape minibatches (:func:`batches`) are drawn. Datasets too large for
memory (``imagenet2012``) are streamed with :func:`tfds_pipeline`.

``digits`` is scikit-learn's embedded 8x8 digits set and needs no network.
``fashion_mnist`` and ``mnist`` are read from the four standard IDX files
when a directory holding them is found (:func:`find_idx_dir`), otherwise
from TFDS. All other names are TensorFlow Datasets (TFDS) datasets that must
already be present in the TFDS data directory; nothing is ever downloaded
here. TensorFlow and TFDS are imported lazily, only by the functions reading
TFDS data, so ``import gram_jax.data``, ``load("digits")`` and IDX loads stay
TensorFlow-free.
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import Iterator, NamedTuple

import numpy as np

from gram_jax.errors import GramJaxError

DATASETS = (
    "digits",
    "cifar10",
    "mnist",
    "fashion_mnist",
    "svhn_cropped",
    "imagenet2012",
)

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


class _TfdsMissing(DatasetError):
  """The TFDS data of a dataset is not present (or TFDS is not installed).

  Separate from other `DatasetError`s so that `load` can replace it, for
  datasets that are also read from IDX files, by one message covering
  every place that was searched.

  Attributes:
      where: The TFDS data directory that was searched.
  """

  def __init__(self, message: str, where: str):
    super().__init__(message)
    self.where = where


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
    raise DatasetError(
        f"dataset {name!r} is not supported; allowed: {', '.join(DATASETS)}"
    )


def _standardise(x_train: np.ndarray, x_test: np.ndarray):
  """Standardises both splits per channel with train-split statistics."""
  axes = tuple(range(x_train.ndim - 1))
  mean = x_train.mean(axis=axes, dtype=np.float64)
  std = np.maximum(x_train.std(axis=axes, dtype=np.float64), 1e-8)
  mean, std = mean.astype(np.float32), std.astype(np.float32)
  return (x_train - mean) / std, (x_test - mean) / std


def load(
    name: str = "digits",
    *,
    data_dir: str | None = None,
    image_size: int | None = None,
    max_examples: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
  """Loads a dataset into host memory.

  Images are scaled to [0, 1] and then standardised per channel (mean 0,
  std 1) with statistics of the training split, applied to both splits.

  Args:
      name: One of `DATASETS`.
      data_dir: TFDS data directory (TFDS default when None). Unused for
          ``digits``. For ``fashion_mnist`` and ``mnist`` it may instead
          hold the four IDX files; see `find_idx_dir` for the lookup.
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
      DatasetError: For an unknown name, bad arguments, TFDS data that
          is not present in the data directory, or invalid IDX files.
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
  elif name in IDX_ENV_VARS:
    x_tr, y_tr, x_te, y_te = _load_idx_or_tfds(
        name, data_dir, image_size, max_examples
    )
    num_classes = 10
  else:
    if name == "imagenet2012" and (max_examples is None or image_size is None):
      raise DatasetError(
          "imagenet2012 does not fit in memory: load() needs both "
          "max_examples and image_size (use tfds_pipeline() to stream "
          "the full dataset)"
      )
    x_tr, y_tr, num_classes = _read_tfds(
        name, "train", data_dir, image_size, max_examples
    )
    x_te, y_te, _ = _read_tfds(
        name, _TEST_SPLIT.get(name, "test"), data_dir, image_size, max_examples
    )
  x_tr, x_te = _standardise(x_tr, x_te)
  return Dataset(
      name,
      x_tr,
      y_tr.astype(np.int32),
      x_te,
      y_te.astype(np.int32),
      num_classes,
  )


def _load_digits(test_fraction: float, seed: int, image_size: int | None):
  """scikit-learn digits scaled to [0, 1], stratified seeded split."""
  from sklearn.datasets import load_digits

  if not 0.0 < test_fraction < 1.0:
    raise DatasetError(f"test_fraction must be in (0, 1), got {test_fraction}")
  digits = load_digits()
  x = (digits.images / 16.0).astype(np.float32)[..., None]
  y = digits.target.astype(np.int32)
  if image_size is not None:
    import jax

    x = np.asarray(
        jax.image.resize(x, (len(x), image_size, image_size, 1), "bilinear")
    )
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


# --- IDX files: fashion_mnist and mnist without TFDS -----------------------

# Environment variable naming a directory with the four IDX files.
IDX_ENV_VARS = {
    "fashion_mnist": "GRAM_JAX_FASHION_MNIST_DIR",
    "mnist": "GRAM_JAX_MNIST_DIR",
}
# Directory where a distribution package installs the IDX files: Debian's
# dataset-fashion-mnist. Debian has no MNIST package, hence None.
IDX_DEFAULT_DIRS = {
    "fashion_mnist": "/usr/share/datasets/fashion-mnist",
    "mnist": None,
}
# (images, labels) file names of each split as released; each file may also
# be gzip-compressed with a ``.gz`` suffix.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_IMAGES_MAGIC = 2051  # 0x0803: unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 2049  # 0x0801: unsigned bytes, 1 dimension
_IDX_SIDE = 28
_IDX_NUM_CLASSES = 10
_IDX_RELEASE = {
    "fashion_mnist": (
        "the Fashion-MNIST release (github.com/zalandoresearch/fashion-mnist)"
    ),
    "mnist": "the MNIST release",
}


def _idx_file(directory: str, stem: str) -> str | None:
  """Path of the file `stem` or ``stem.gz`` in `directory`, or None."""
  for name in (stem, stem + ".gz"):
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      return path
  return None


def _idx_files(directory: str, source: str) -> dict[str, str] | None:
  """Paths of the four IDX files by stem; None if `directory` has none.

  Raises:
      DatasetError: If only some of the four files are present: a partial
          copy is a mistake to report, not a reason to read elsewhere.
  """
  stems = [stem for pair in IDX_FILES.values() for stem in pair]
  found = {stem: _idx_file(directory, stem) for stem in stems}
  if not any(found.values()):
    return None
  for stem, path in found.items():
    if path is None:
      raise DatasetError(
          f"{os.path.join(directory, stem)}[.gz] ({source}): file "
          "missing; the directory must hold all four IDX files "
          f"{', '.join(stems)} (each optionally .gz)"
      )
  return found


def find_idx_dir(name: str, data_dir: str | None = None) -> str | None:
  """Finds the directory with the IDX files of ``fashion_mnist``/``mnist``.

  Looked up in this order, first match wins:

  1. `data_dir` (the command line's ``--data-dir``). Skipped if it holds
     none of the files, since it may be a TFDS data directory instead.
  2. The environment variable in `IDX_ENV_VARS` (if set and non-empty).
     It names nothing else, so a directory without the files is an error.
  3. The package directory in `IDX_DEFAULT_DIRS` (``fashion_mnist``:
     ``/usr/share/datasets/fashion-mnist``), skipped if absent.

  Args:
      name: ``"fashion_mnist"`` or ``"mnist"``.
      data_dir: Directory given by the caller, or None.

  Returns:
      The directory, or None if no candidate holds the files (the caller
      then reads TFDS).

  Raises:
      DatasetError: For another name, a directory holding only some of the
          four files, or an environment variable naming a directory
          without them.
  """
  if name not in IDX_ENV_VARS:
    raise DatasetError(
        f"dataset {name!r} has no IDX reader; allowed: "
        f"{', '.join(IDX_ENV_VARS)}"
    )
  var = IDX_ENV_VARS[name]
  if data_dir and _idx_files(data_dir, "data_dir") is not None:
    return data_dir
  env_dir = os.environ.get(var, "")
  if env_dir:
    if _idx_files(env_dir, f"${var}") is None:
      stem = IDX_FILES["train"][0]
      raise DatasetError(
          f"{os.path.join(env_dir, stem)}[.gz] (${var}): file missing; "
          f"${var} must name a directory holding the four IDX files "
          f"of {name!r}"
      )
    return env_dir
  default = IDX_DEFAULT_DIRS.get(name)
  if default and _idx_files(default, "default directory") is not None:
    return default
  return None


def _read_bytes(path: str) -> bytes:
  """Whole contents of `path`, gunzipped if it ends in ``.gz``."""
  try:
    if path.endswith(".gz"):
      with gzip.open(path, "rb") as f:
        return f.read()
    with open(path, "rb") as f:
      return f.read()
  except FileNotFoundError:
    raise DatasetError(f"{path}: file not found") from None
  except EOFError:
    raise DatasetError(
        f"{path}: truncated (the gzip stream ends early)"
    ) from None
  except (OSError, zlib.error) as e:
    raise DatasetError(
        f"{path}: cannot be read ({type(e).__name__}: {e})"
    ) from None


def _idx_header(path: str, buf: bytes, magic: int, ndim: int, what: str):
  """Checks an IDX header's size and magic number; returns its sizes."""
  header = 4 * (1 + ndim)
  if len(buf) < header:
    raise DatasetError(
        f"{path}: truncated: {len(buf)} bytes, shorter "
        f"than the {header}-byte IDX header"
    )
  # IDX headers are big-endian 32-bit integers: magic, then each size.
  fields = [int(v) for v in np.frombuffer(buf, dtype=">u4", count=1 + ndim)]
  if fields[0] != magic:
    raise DatasetError(
        f"{path}: bad magic number {fields[0]}; expected "
        f"{magic} (an IDX {what} file)"
    )
  if fields[1] < 1:
    raise DatasetError(f"{path}: holds no {what} (count 0 in header)")
  return tuple(fields[1:])


def _idx_payload(path: str, buf: bytes, dims: tuple, what: str) -> np.ndarray:
  """The uint8 array after the header, if the length matches `dims`."""
  header = 4 * (1 + len(dims))
  expected = header + int(np.prod(dims))
  if len(buf) != expected:
    state = "truncated" if len(buf) < expected else "too long"
    raise DatasetError(
        f"{path}: {state}: {len(buf)} bytes, but the header "
        f"({'x'.join(map(str, dims))} {what}) needs {expected}"
    )
  return np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_images(path: str) -> np.ndarray:
  """Reads an IDX images file (magic 2051) of 28x28 uint8 images.

  Args:
      path: The file, gzip-compressed if its name ends in ``.gz``.

  Returns:
      A read-only uint8 array of shape ``[N, 28, 28]``.

  Raises:
      DatasetError: One line naming `path`: unreadable, bad magic number,
          not 28x28, no images, or a length that does not match the
          header.
  """
  buf = _read_bytes(path)
  dims = _idx_header(path, buf, _IDX_IMAGES_MAGIC, 3, "images")
  if dims[1:] != (_IDX_SIDE, _IDX_SIDE):
    raise DatasetError(
        f"{path}: images are {dims[1]}x{dims[2]}; "
        f"expected {_IDX_SIDE}x{_IDX_SIDE}"
    )
  return _idx_payload(path, buf, dims, "images")


def read_idx_labels(
    path: str, num_classes: int = _IDX_NUM_CLASSES
) -> np.ndarray:
  """Reads an IDX labels file (magic 2049) of class ids.

  Args:
      path: The file, gzip-compressed if its name ends in ``.gz``.
      num_classes: Labels must lie in ``0 .. num_classes - 1``.

  Returns:
      A read-only uint8 array of shape ``[N]``.

  Raises:
      DatasetError: One line naming `path`: unreadable, bad magic number,
          no labels, a length that does not match the header, or a label
          out of range.
  """
  buf = _read_bytes(path)
  dims = _idx_header(path, buf, _IDX_LABELS_MAGIC, 1, "labels")
  labels = _idx_payload(path, buf, dims, "labels")
  bad = np.flatnonzero(labels >= num_classes)
  if bad.size:
    raise DatasetError(
        f"{path}: label {int(labels[bad[0]])} at index {int(bad[0])} is "
        f"out of range 0..{num_classes - 1} ({bad.size} of {len(labels)} "
        "labels)"
    )
  return labels


def read_idx_dir(directory: str):
  """Reads and validates the four IDX files in `directory`.

  Args:
      directory: Holds ``train-images-idx3-ubyte``,
          ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
          ``t10k-labels-idx1-ubyte``, each optionally ``.gz``.

  Returns:
      ``(x_train, y_train, x_test, y_test)``: uint8 images ``[N, 28, 28]``
      and uint8 labels ``[N]``, as stored.

  Raises:
      DatasetError: One line naming the file: missing, invalid (see
          `read_idx_images`, `read_idx_labels`) or with an image count
          that differs from its labels count.
  """
  paths = _idx_files(directory, "data directory")
  if paths is None:
    stem = IDX_FILES["train"][0]
    raise DatasetError(
        f"{os.path.join(directory, stem)}[.gz]: file "
        "missing; the directory holds no IDX files"
    )
  out = []
  for images_stem, labels_stem in IDX_FILES.values():
    images = read_idx_images(paths[images_stem])
    labels = read_idx_labels(paths[labels_stem])
    if len(images) != len(labels):
      raise DatasetError(
          f"{paths[images_stem]}: holds {len(images)} images but "
          f"{paths[labels_stem]} holds {len(labels)} labels"
      )
    out += [images, labels]
  return tuple(out)


def _idx_to_float(images: np.ndarray, image_size: int | None) -> np.ndarray:
  """uint8 ``[N, 28, 28]`` -> float32 ``[N, S, S, 1]`` in [0, 1]."""
  # One vectorised pass straight to float32 (no float64 intermediate).
  x = np.divide(images[..., None], np.float32(255.0), dtype=np.float32)
  if image_size is not None and image_size != x.shape[1]:
    import jax

    x = np.asarray(
        jax.image.resize(x, (len(x), image_size, image_size, 1), "bilinear")
    )
  return x


def _idx_missing(name: str, data_dir: str | None, tfds_reason: str) -> str:
  """One-line message for `name` found neither as IDX files nor in TFDS."""
  var = IDX_ENV_VARS[name]
  places = []
  if data_dir:
    places.append(f"data_dir {data_dir}")
  places.append(f"${var} ({os.environ.get(var) or 'unset'})")
  if IDX_DEFAULT_DIRS.get(name):
    places.append(IDX_DEFAULT_DIRS[name])
  ways = []
  if name == "fashion_mnist":
    ways.append("run apt-get install dataset-fashion-mnist (Debian)")
  ways.append(
      f"put the four IDX files of {_IDX_RELEASE[name]} into "
      f"--data-dir or ${var}"
  )
  ways.append(
      f'run python -c "import tensorflow_datasets as tfds; '
      f"tfds.load('{name}', download=True)\" on a machine with "
      f"network"
  )
  return (
      f"dataset {name!r} not found: no IDX files "
      f"({IDX_FILES['train'][0]}[.gz] etc.) in {', '.join(places)}, "
      f"and {tfds_reason}; to get it, {'; or '.join(ways)}"
  )


def _load_idx_or_tfds(
    name: str,
    data_dir: str | None,
    image_size: int | None,
    max_examples: int | None,
):
  """``fashion_mnist``/``mnist`` from IDX files if found, else from TFDS.

  Returns float32 images in [0, 1] and int labels of both splits.
  """
  directory = find_idx_dir(name, data_dir)
  if directory is not None:
    x_tr, y_tr, x_te, y_te = read_idx_dir(directory)
    # Cap before converting, so that only kept images become float32.
    x_tr, y_tr = x_tr[:max_examples], y_tr[:max_examples]
    x_te, y_te = x_te[:max_examples], y_te[:max_examples]
    return (
        _idx_to_float(x_tr, image_size),
        y_tr,
        _idx_to_float(x_te, image_size),
        y_te,
    )
  try:
    x_tr, y_tr, _ = _read_tfds(
        name, "train", data_dir, image_size, max_examples
    )
    x_te, y_te, _ = _read_tfds(name, "test", data_dir, image_size, max_examples)
    return x_tr, y_tr, x_te, y_te
  except ImportError:
    reason = "TensorFlow Datasets is not installed"
  except _TfdsMissing as e:
    reason = f"not in the TFDS data_dir {e.where}"
  raise DatasetError(_idx_missing(name, data_dir, reason))


def _tfds_load(name: str, split: str, data_dir: str | None, **kwargs):
  """`tfds.load` without downloading; missing data -> `DatasetError`."""
  import tensorflow_datasets as tfds

  try:
    return tfds.load(
        name,
        split=split,
        data_dir=data_dir,
        download=False,
        as_supervised=True,
        **kwargs,
    )
  except Exception as e:
    where = data_dir or tfds.core.constants.DATA_DIR
    if name == "imagenet2012":
      how = (
          f"download the ILSVRC2012 tar files manually into "
          f"{os.path.join(where, 'downloads', 'manual')}/ as "
          f'documented by TFDS, then run python -c "import '
          f"tensorflow_datasets as tfds; tfds.load('imagenet2012', "
          f"data_dir='{where}', download=True)\""
      )
    else:
      how = (
          f'run python -c "import tensorflow_datasets as tfds; '
          f"tfds.load('{name}', data_dir='{where}', download=True)\""
          f" on a machine with network, or pass --data_dir"
      )
    raise _TfdsMissing(
        f"dataset {name!r} (split {split!r}) is not in data_dir {where} "
        f"({type(e).__name__}); to get it, {how}",
        where,
    ) from None


def _num_classes(name: str, data_dir: str | None) -> int:
  import tensorflow_datasets as tfds

  return (
      tfds.builder(name, data_dir=data_dir).info.features["label"].num_classes
  )


def _read_tfds(
    name: str,
    split: str,
    data_dir: str | None,
    image_size: int | None,
    max_examples: int | None,
):
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
    ds = ds.map(
        lambda x, y: (
            tf.image.resize(x, (image_size, image_size), method="bilinear"),
            y,
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
  xs, ys = [], []
  for x, y in tfds.as_numpy(ds.batch(1024).prefetch(tf.data.AUTOTUNE)):
    xs.append(x.astype(np.float32) / 255.0)
    ys.append(y.astype(np.int32))
  if not xs:
    raise DatasetError(f"dataset {name!r} split {split!r} is empty")
  return (np.concatenate(xs), np.concatenate(ys), _num_classes(name, data_dir))


def proxy_split(
    dataset: Dataset,
    *,
    seed: int,
    num_train: int = 500,
    num_val: int = 1000,
    per_class: bool = False,
) -> ProxySplit:
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
    raise DatasetError(
        "need num_train >= 1 and num_val >= 0, got "
        f"num_train={num_train}, num_val={num_val}"
    )
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
            "examples"
        )
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
          f"{dataset.name!r} has only {len(y)}"
      )
    perm = rng.permutation(len(y))
    train_idx, val_idx = perm[:num_train], perm[num_train:need]
  return ProxySplit(
      dataset.x_train[train_idx],
      y[train_idx],
      dataset.x_train[val_idx],
      y[val_idx],
  )


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    seed: int | None,
    drop_remainder: bool = True,
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
  order = (
      np.arange(n)
      if seed is None
      else np.random.default_rng(seed).permutation(n)
  )
  stop = n - n % batch_size if drop_remainder else n

  def generate():
    for start in range(0, stop, batch_size):
      idx = order[start : start + batch_size]
      yield x[idx], y[idx]

  return generate()


def tfds_pipeline(
    name: str,
    split: str,
    *,
    batch_size: int,
    data_dir: str | None = None,
    image_size: int | None = None,
    train: bool,
    seed: int = 0,
    augment: str = "none",
):
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
    raise DatasetError(
        f"dataset {name!r} is not a TFDS dataset; use load({name!r}) instead"
    )
  if augment not in _AUGMENTATIONS:
    raise DatasetError(
        f"augment {augment!r} is not supported; allowed: "
        f"{', '.join(_AUGMENTATIONS)}"
    )
  if name == "imagenet2012" and image_size is None:
    raise DatasetError("imagenet2012 images vary in size: pass image_size")
  mean, std = (tf.constant(v, tf.float32) for v in NORMALISATION[name])
  # Shuffle the still-encoded images (cheap, even for ImageNet), decode
  # afterwards in `preprocess`.
  ds = _tfds_load(
      name,
      split,
      data_dir,
      shuffle_files=train,
      read_config=tfds.ReadConfig(shuffle_seed=seed),
      decoders={"image": tfds.decode.SkipDecoding()},
  )
  shape = tfds.builder(name, data_dir=data_dir).info.features["image"].shape
  if train:
    ds = ds.shuffle(max(10 * batch_size, 10_000), seed=seed)

  def preprocess(encoded, label):
    image = tf.io.decode_image(
        encoded, channels=shape[-1], expand_animations=False
    )
    image = tf.cast(image, tf.float32) / 255.0
    if image_size is None:
      image = tf.ensure_shape(image, shape)
    else:
      image = tf.image.resize(
          image, (image_size, image_size), method="bilinear"
      )
    if augment == "crop_flip":
      h, w, c = image.shape  # static here
      image = tf.image.pad_to_bounding_box(image, 4, 4, h + 8, w + 8)
      image = tf.image.random_crop(image, (h, w, c), seed=seed)
      image = tf.image.random_flip_left_right(image, seed=seed)
    return (image - mean) / std, tf.cast(label, tf.int32)

  ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.batch(batch_size, drop_remainder=train).prefetch(tf.data.AUTOTUNE)
