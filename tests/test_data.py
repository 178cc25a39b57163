"""Tests for gram_jax.data (offline: digits, generated and packaged IDX
files, mocked TFDS)."""

import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

from gram_jax import data


@pytest.fixture(scope="module")
def digits():
  return data.load("digits")


@pytest.fixture(autouse=True)
def no_idx_lookup(monkeypatch):
  """Hides the caller's IDX environment variables and package paths.

  Keeps every test hermetic: fashion_mnist/mnist read IDX files only from
  places a test sets up itself.
  """
  for var in data.IDX_ENV_VARS.values():
    monkeypatch.delenv(var, raising=False)
  for name in data.IDX_DEFAULT_DIRS:
    monkeypatch.setitem(data.IDX_DEFAULT_DIRS, name, None)


def _indexed_dataset(num_examples=300, num_classes=3):
  """Dataset whose x_train[i] == i, to identify drawn examples."""
  x = np.arange(num_examples, dtype=np.float32).reshape(-1, 1, 1, 1)
  y = (np.arange(num_examples) % num_classes).astype(np.int32)
  return data.Dataset("toy", x, y, x[:0], y[:0], num_classes)


def _ids(x):
  return x.reshape(-1).astype(int)


# --- digits ---------------------------------------------------------------


def test_digits_shapes_and_normalisation(digits):
  assert digits.name == "digits" and digits.num_classes == 10
  assert digits.image_shape == (8, 8, 1)
  assert digits.x_train.shape == (1437, 8, 8, 1)
  assert len(digits.x_train) + len(digits.x_test) == 1797
  assert digits.x_test.shape[1:] == (8, 8, 1)
  assert digits.x_train.dtype == np.float32
  assert digits.x_test.dtype == np.float32
  assert digits.y_train.dtype == np.int32 and digits.y_test.dtype == np.int32
  assert set(np.unique(digits.y_train)) == set(range(10))
  np.testing.assert_allclose(digits.x_train.mean(axis=(0, 1, 2)), 0, atol=1e-5)
  np.testing.assert_allclose(digits.x_train.std(axis=(0, 1, 2)), 1, atol=1e-5)


def test_digits_split_is_seeded(digits):
  same = data.load("digits", seed=0)
  other = data.load("digits", seed=1)
  np.testing.assert_array_equal(same.x_train, digits.x_train)
  np.testing.assert_array_equal(same.y_test, digits.y_test)
  assert not np.array_equal(other.y_train, digits.y_train)


def test_digits_options():
  ds = data.load("digits", test_fraction=0.5, image_size=16, max_examples=100)
  assert ds.x_train.shape == (100, 16, 16, 1)
  assert ds.x_test.shape == (100, 16, 16, 1)
  with pytest.raises(data.DatasetError, match="test_fraction"):
    data.load("digits", test_fraction=1.0)


def test_unknown_name():
  with pytest.raises(data.DatasetError) as e:
    data.load("cifar100")
  msg = str(e.value)
  assert "'cifar100'" in msg
  assert ", ".join(data.DATASETS) in msg


def test_digits_does_not_import_tensorflow():
  code = (
      "import gram_jax.data as d, sys; d.load('digits'); "
      "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
  )
  result = subprocess.run(
      [sys.executable, "-c", code], capture_output=True, text=True, check=False
  )
  assert result.returncode == 0, result.stderr


# --- proxy_split ----------------------------------------------------------


def test_proxy_split_sizes_and_disjoint():
  ds = _indexed_dataset()
  split = data.proxy_split(ds, seed=0, num_train=100, num_val=150)
  train, val = _ids(split.x_train), _ids(split.x_val)
  assert len(train) == 100 and len(val) == 150
  assert len(set(train)) == 100 and len(set(val)) == 150
  assert not set(train) & set(val)
  np.testing.assert_array_equal(split.y_train, ds.y_train[train])
  np.testing.assert_array_equal(split.y_val, ds.y_train[val])


def test_proxy_split_is_seeded():
  ds = _indexed_dataset()
  a = data.proxy_split(ds, seed=3, num_train=50, num_val=50)
  b = data.proxy_split(ds, seed=3, num_train=50, num_val=50)
  c = data.proxy_split(ds, seed=4, num_train=50, num_val=50)
  for u, v in zip(a, b):
    np.testing.assert_array_equal(u, v)
  assert not np.array_equal(a.x_train, c.x_train)


def test_proxy_split_per_class():
  ds = _indexed_dataset()
  split = data.proxy_split(ds, seed=0, num_train=20, num_val=30, per_class=True)
  assert np.bincount(split.y_train).tolist() == [20, 20, 20]
  assert np.bincount(split.y_val).tolist() == [30, 30, 30]
  assert not set(_ids(split.x_train)) & set(_ids(split.x_val))
  with pytest.raises(data.DatasetError, match="class 0"):
    data.proxy_split(ds, seed=0, num_train=60, num_val=50, per_class=True)


def test_proxy_split_digits(digits):
  split = data.proxy_split(digits, seed=0, num_train=500, num_val=400)
  assert split.x_train.shape == (500, 8, 8, 1)
  assert split.x_val.shape == (400, 8, 8, 1)
  with pytest.raises(data.DatasetError) as e:
    data.proxy_split(digits, seed=0, num_train=500, num_val=1000)
  for number in ("500", "1000", "1437"):
    assert number in str(e.value)


# --- batches --------------------------------------------------------------


def test_batches():
  x, y = np.arange(10)[:, None], np.arange(10)
  ordered = list(data.batches(x, y, 4, seed=None))
  assert [b[1].tolist() for b in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7]]
  ragged = list(data.batches(x, y, 4, seed=None, drop_remainder=False))
  assert ragged[-1][1].tolist() == [8, 9]
  shuffled = [b[1] for b in data.batches(x, y, 5, seed=0)]
  again = [b[1] for b in data.batches(x, y, 5, seed=0)]
  assert sorted(np.concatenate(shuffled).tolist()) == list(range(10))
  np.testing.assert_array_equal(np.concatenate(shuffled), np.concatenate(again))
  assert not np.array_equal(np.concatenate(shuffled), y)
  for bx, by in data.batches(x, y, 5, seed=1):
    np.testing.assert_array_equal(bx[:, 0], by)


# --- TFDS (mocked: no data, no network) -----------------------------------


@pytest.fixture(scope="module")
def tfds():
  return pytest.importorskip("tensorflow_datasets")


@pytest.mark.parametrize(
    "name,shape",
    [
        ("mnist", (28, 28, 1)),
        ("fashion_mnist", (28, 28, 1)),
        ("cifar10", (32, 32, 3)),
    ],
)
def test_load_tfds_mocked(tfds, name, shape):
  with tfds.testing.mock_data(num_examples=20):
    ds = data.load(name)
  assert ds.num_classes == 10 and ds.image_shape == shape
  assert ds.x_train.shape == (20,) + shape and ds.x_test.shape[1:] == shape
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  np.testing.assert_allclose(ds.x_train.mean(axis=(0, 1, 2)), 0, atol=1e-4)
  np.testing.assert_allclose(ds.x_train.std(axis=(0, 1, 2)), 1, atol=1e-4)
  assert ds.y_train.min() >= 0 and ds.y_train.max() < 10


def test_load_tfds_mocked_resize_and_cap(tfds):
  with tfds.testing.mock_data(num_examples=20):
    ds = data.load("cifar10", image_size=16, max_examples=8)
    imagenet = data.load("imagenet2012", image_size=24, max_examples=4)
  assert ds.x_train.shape == (8, 16, 16, 3) and ds.x_test.shape[0] == 8
  assert imagenet.x_train.shape == (4, 24, 24, 3)
  assert imagenet.num_classes == 1000


def test_load_imagenet_needs_max_examples():
  with pytest.raises(data.DatasetError, match="tfds_pipeline"):
    data.load("imagenet2012", image_size=64)


def test_tfds_pipeline_mocked(tfds):
  with tfds.testing.mock_data(num_examples=10):
    ds = data.tfds_pipeline(
        "cifar10", "train", batch_size=4, train=True, augment="crop_flip"
    )
    x, y = next(iter(tfds.as_numpy(ds)))
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32
    assert y.shape == (4,) and y.dtype == np.int32
    assert np.isfinite(x).all() and abs(x.mean()) < 3
    assert len(list(ds)) == 2  # 10 examples, remainder dropped
    val = data.tfds_pipeline(
        "imagenet2012", "validation", batch_size=3, train=False, image_size=32
    )
    assert [len(b[1]) for b in tfds.as_numpy(val)] == [3, 3, 3, 1]
  with pytest.raises(data.DatasetError, match="augment"):
    data.tfds_pipeline(
        "cifar10", "train", batch_size=4, train=True, augment="mixup"
    )


def test_tfds_not_downloaded(tfds, tmp_path):
  del tfds
  with pytest.raises(data.DatasetError) as e:
    data.load("cifar10", data_dir=str(tmp_path))
  assert str(tmp_path) in str(e.value) and "download" in str(e.value)
  assert e.value.__cause__ is None and e.value.__suppress_context__
  with pytest.raises(data.DatasetError, match="downloads/manual"):
    data.tfds_pipeline(
        "imagenet2012",
        "train",
        batch_size=2,
        train=True,
        image_size=32,
        data_dir=str(tmp_path),
    )


# --- IDX files (fashion_mnist, mnist) -------------------------------------

_STEMS = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def _idx(magic, dims, payload):
  """Bytes of an IDX file: big-endian header, then the payload."""
  header = np.array([magic, *dims], dtype=">u4").tobytes()
  if not isinstance(payload, bytes):
    payload = np.asarray(payload).astype(np.uint8).tobytes()
  return header + payload


def _images(n, side=28):
  """n images, image i filled with the value (7 * i) % 256."""
  values = (7 * np.arange(n)) % 256
  return np.repeat(values, side * side).astype(np.uint8).reshape(n, side, side)


def _write(path, content, gz):
  if gz:
    path = str(path) + ".gz"
    with gzip.open(path, "wb") as f:
      f.write(content)
  else:
    with open(path, "wb") as f:
      f.write(content)
  return path


def _write_idx_dir(directory, n_train=30, n_test=20, gz=True, **override):
  """Writes the four IDX files; `override` maps a key of `_STEMS` to the
  raw (uncompressed) bytes to write instead. Returns the paths by key."""
  os.makedirs(directory, exist_ok=True)
  content = {
      "train_x": _idx(2051, (n_train, 28, 28), _images(n_train)),
      "train_y": _idx(2049, (n_train,), np.arange(n_train) % 10),
      "test_x": _idx(2051, (n_test, 28, 28), _images(n_test)),
      "test_y": _idx(2049, (n_test,), (np.arange(n_test) + 3) % 10),
  }
  content.update(override)
  return {
      key: _write(os.path.join(directory, _STEMS[key]), content[key], gz)
      for key in _STEMS
  }


@pytest.mark.parametrize("gz", [True, False])
def test_idx_load(tmp_path, gz):
  _write_idx_dir(tmp_path, gz=gz)
  x_tr, y_tr, x_te, y_te = data.read_idx_dir(str(tmp_path))
  np.testing.assert_array_equal(x_tr, _images(30))
  np.testing.assert_array_equal(y_tr, np.arange(30) % 10)
  np.testing.assert_array_equal(x_te, _images(20))
  np.testing.assert_array_equal(y_te, (np.arange(20) + 3) % 10)
  assert x_tr.dtype == np.uint8 and y_tr.dtype == np.uint8

  ds = data.load("fashion_mnist", data_dir=str(tmp_path))
  assert ds.name == "fashion_mnist" and ds.num_classes == 10
  assert ds.x_train.shape == (30, 28, 28, 1)
  assert ds.x_test.shape == (20, 28, 28, 1)
  assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
  assert ds.y_train.dtype == np.int32 and ds.y_test.dtype == np.int32
  np.testing.assert_array_equal(ds.y_train, np.arange(30) % 10)
  np.testing.assert_array_equal(ds.y_test, (np.arange(20) + 3) % 10)
  # Scaled to [0, 1], then standardised with train-split statistics.
  scaled = _images(30)[..., None] / 255.0
  mean, std = scaled.mean(), scaled.std()
  np.testing.assert_allclose(ds.x_train, (scaled - mean) / std, atol=1e-5)
  np.testing.assert_allclose(
      ds.x_test, (_images(20)[..., None] / 255.0 - mean) / std, atol=1e-5
  )


def test_idx_load_resize_and_cap(tmp_path):
  _write_idx_dir(tmp_path)
  ds = data.load("mnist", data_dir=str(tmp_path), image_size=14, max_examples=8)
  assert ds.x_train.shape == (8, 14, 14, 1)
  assert ds.x_test.shape == (8, 14, 14, 1)
  np.testing.assert_array_equal(ds.y_train, np.arange(8) % 10)
  np.testing.assert_array_equal(ds.y_test, (np.arange(8) + 3) % 10)
  # Each source image is constant, so each resized image is too, and
  # their order is kept (values increase with the index up to 7 * 7).
  per_image = ds.x_train.reshape(8, -1)
  np.testing.assert_allclose(per_image.std(axis=1), 0, atol=1e-5)
  assert np.all(np.diff(per_image[:, 0]) > 0)


def test_idx_load_does_not_import_tensorflow(tmp_path):
  _write_idx_dir(tmp_path)
  code = (
      "import gram_jax.data as d, sys; "
      f"ds = d.load('fashion_mnist', data_dir={str(tmp_path)!r}); "
      "assert ds.x_train.shape == (30, 28, 28, 1); "
      "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
  )
  result = subprocess.run(
      [sys.executable, "-c", code], capture_output=True, text=True, check=False
  )
  assert result.returncode == 0, result.stderr


_BAD_FILES = {
    "bad_magic": (
        "train_x",
        lambda: _idx(2049, (30, 28, 28), _images(30)),
        "bad magic number 2049; expected 2051",
    ),
    "labels_magic": (
        "test_y",
        lambda: _idx(2051, (20,), np.zeros(20)),
        "bad magic number 2051; expected 2049",
    ),
    "wrong_dims": (
        "train_x",
        lambda: _idx(2051, (30, 32, 32), _images(30, side=32)),
        "images are 32x32; expected 28x28",
    ),
    "truncated": (
        "train_x",
        lambda: _idx(2051, (30, 28, 28), _images(30))[:-100],
        "truncated",
    ),
    "truncated_header": ("test_y", lambda: b"\0\0\x08", "truncated"),
    "too_long": ("test_y", lambda: _idx(2049, (20,), np.zeros(21)), "too long"),
    "empty": ("test_x", lambda: _idx(2051, (0, 28, 28), b""), "holds no"),
    "label_range": (
        "train_y",
        lambda: _idx(2049, (30,), [0] * 29 + [10]),
        "label 10 at index 29 is out of range 0..9",
    ),
    "count_mismatch": (
        "train_y",
        lambda: _idx(2049, (29,), np.zeros(29)),
        "holds 30 images but",
    ),
}


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("case", sorted(_BAD_FILES))
def test_idx_errors(tmp_path, case, gz):
  key, content, expected = _BAD_FILES[case]
  paths = _write_idx_dir(tmp_path, gz=gz, **{key: content()})
  with pytest.raises(data.DatasetError) as e:
    data.load("fashion_mnist", data_dir=str(tmp_path))
  msg = str(e.value)
  assert expected in msg
  assert paths[key] in msg
  assert "\n" not in msg
  assert e.value.__cause__ is None


def test_idx_gzip_errors(tmp_path):
  paths = _write_idx_dir(tmp_path)
  with open(paths["train_x"], "rb") as f:
    compressed = f.read()
  with open(paths["train_x"], "wb") as f:
    f.write(compressed[: len(compressed) // 2])
  with pytest.raises(data.DatasetError) as e:
    data.read_idx_images(paths["train_x"])
  assert str(e.value) == (
      f"{paths['train_x']}: truncated (the gzip stream ends early)"
  )
  with open(paths["train_y"], "wb") as f:
    f.write(_idx(2049, (30,), np.zeros(30)))  # not gzip despite .gz
  with pytest.raises(data.DatasetError, match="cannot be read") as e:
    data.read_idx_labels(paths["train_y"])
  assert paths["train_y"] in str(e.value) and "\n" not in str(e.value)


def test_idx_missing_file(tmp_path):
  paths = _write_idx_dir(tmp_path, gz=False)
  os.remove(paths["test_y"])
  with pytest.raises(data.DatasetError) as e:
    data.load("fashion_mnist", data_dir=str(tmp_path))
  msg = str(e.value)
  assert os.path.join(str(tmp_path), _STEMS["test_y"]) in msg
  assert "file missing" in msg and "\n" not in msg
  with pytest.raises(data.DatasetError, match="file not found"):
    data.read_idx_labels(paths["test_y"])


def test_idx_lookup_order(tmp_path, monkeypatch):
  # Three complete sets told apart by their training-set size.
  for sub, n in (("arg", 11), ("env", 12), ("default", 13)):
    _write_idx_dir(tmp_path / sub, n_train=n)
  arg, env, default = (str(tmp_path / s) for s in ("arg", "env", "default"))
  tfds_dir = str(tmp_path / "tfds")  # a data_dir without IDX files
  os.makedirs(tfds_dir)
  monkeypatch.setitem(data.IDX_DEFAULT_DIRS, "fashion_mnist", default)
  monkeypatch.setenv("GRAM_JAX_FASHION_MNIST_DIR", env)

  def train_size(**kwargs):
    return len(data.load("fashion_mnist", **kwargs).y_train)

  assert data.find_idx_dir("fashion_mnist", arg) == arg
  assert train_size(data_dir=arg) == 11
  assert data.find_idx_dir("fashion_mnist", tfds_dir) == env
  assert train_size(data_dir=tfds_dir) == 12
  assert train_size() == 12
  # Each dataset reads its own variable only.
  assert data.find_idx_dir("mnist") is None
  monkeypatch.setenv("GRAM_JAX_MNIST_DIR", arg)
  assert data.find_idx_dir("mnist") == arg
  monkeypatch.delenv("GRAM_JAX_FASHION_MNIST_DIR")
  assert data.find_idx_dir("fashion_mnist") == default
  assert train_size(data_dir=tfds_dir) == 13
  monkeypatch.setenv("GRAM_JAX_FASHION_MNIST_DIR", "")  # same as unset
  assert train_size() == 13
  # The variable names nothing but IDX files: without them, an error.
  monkeypatch.setenv("GRAM_JAX_FASHION_MNIST_DIR", tfds_dir)
  with pytest.raises(data.DatasetError, match=r"\$GRAM_JAX_FASHION_MNIST_DIR"):
    data.find_idx_dir("fashion_mnist")
  with pytest.raises(data.DatasetError, match="no IDX reader"):
    data.find_idx_dir("cifar10")


def test_idx_missing_everywhere_without_tfds(tmp_path, monkeypatch):
  # None in sys.modules makes the import fail as if not installed.
  monkeypatch.setitem(sys.modules, "tensorflow", None)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
  monkeypatch.setitem(
      data.IDX_DEFAULT_DIRS, "fashion_mnist", str(tmp_path / "absent")
  )
  with pytest.raises(data.DatasetError) as e:
    data.load("fashion_mnist", data_dir=str(tmp_path))
  msg = str(e.value)
  assert "\n" not in msg and e.value.__context__ is None
  for part in (
      f"data_dir {tmp_path}",
      "$GRAM_JAX_FASHION_MNIST_DIR (unset)",
      str(tmp_path / "absent"),
      "not installed",
      "apt-get install dataset-fashion-mnist",
      "--data-dir",
      "tfds.load('fashion_mnist', download=True)",
  ):
    assert part in msg, part
  with pytest.raises(data.DatasetError) as e:
    data.load("mnist")
  msg = str(e.value)
  assert "$GRAM_JAX_MNIST_DIR" in msg and "apt-get" not in msg


def test_idx_missing_everywhere_tfds(tfds, tmp_path):
  del tfds
  with pytest.raises(data.DatasetError) as e:
    data.load("fashion_mnist", data_dir=str(tmp_path))
  msg = str(e.value)
  assert "\n" not in msg
  assert e.value.__cause__ is None and e.value.__context__ is None
  # data_dir without IDX files is still searched as a TFDS data dir.
  assert f"not in the TFDS data_dir {tmp_path}" in msg
  assert "apt-get install dataset-fashion-mnist" in msg


_DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def test_real_fashion_mnist():
  present = all(
      any(
          os.path.isfile(os.path.join(_DEBIAN_FASHION_MNIST, stem + ext))
          for ext in (".gz", "")
      )
      for stem in _STEMS.values()
  )
  if not present:
    reason = (
        f"Fashion-MNIST IDX files not in {_DEBIAN_FASHION_MNIST}; "
        "install them with: apt-get install dataset-fashion-mnist"
    )
    if os.environ.get("CI") == "true":
      pytest.fail(reason)
    pytest.skip(reason)
  ds = data.load("fashion_mnist", data_dir=_DEBIAN_FASHION_MNIST)
  assert ds.x_train.shape == (60_000, 28, 28, 1)
  assert ds.x_test.shape == (10_000, 28, 28, 1)
  assert ds.num_classes == 10
  assert np.bincount(ds.y_train).tolist() == [6_000] * 10
  assert np.bincount(ds.y_test).tolist() == [1_000] * 10
  # The published order: the first labels of each split as released.
  assert ds.y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
  assert ds.y_test[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
  assert abs(float(ds.x_train.mean())) < 1e-3
  assert abs(float(ds.x_train.std()) - 1) < 1e-3
