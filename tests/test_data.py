"""Tests for gram_jax.data (offline: digits and mocked TFDS only)."""

import subprocess
import sys

import numpy as np
import pytest

from gram_jax import data


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


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
    np.testing.assert_allclose(digits.x_train.mean(axis=(0, 1, 2)), 0,
                               atol=1e-5)
    np.testing.assert_allclose(digits.x_train.std(axis=(0, 1, 2)), 1,
                               atol=1e-5)


def test_digits_split_is_seeded(digits):
    same = data.load("digits", seed=0)
    other = data.load("digits", seed=1)
    np.testing.assert_array_equal(same.x_train, digits.x_train)
    np.testing.assert_array_equal(same.y_test, digits.y_test)
    assert not np.array_equal(other.y_train, digits.y_train)


def test_digits_options():
    ds = data.load("digits", test_fraction=0.5, image_size=16,
                   max_examples=100)
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
    code = ("import gram_jax.data as d, sys; d.load('digits'); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                            text=True, check=False)
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
    split = data.proxy_split(ds, seed=0, num_train=20, num_val=30,
                             per_class=True)
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
    np.testing.assert_array_equal(np.concatenate(shuffled),
                                  np.concatenate(again))
    assert not np.array_equal(np.concatenate(shuffled), y)
    for bx, by in data.batches(x, y, 5, seed=1):
        np.testing.assert_array_equal(bx[:, 0], by)


# --- TFDS (mocked: no data, no network) -----------------------------------

@pytest.fixture(scope="module")
def tfds():
    return pytest.importorskip("tensorflow_datasets")


@pytest.mark.parametrize("name,shape", [("mnist", (28, 28, 1)),
                                        ("cifar10", (32, 32, 3))])
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
        ds = data.tfds_pipeline("cifar10", "train", batch_size=4, train=True,
                                augment="crop_flip")
        x, y = next(iter(tfds.as_numpy(ds)))
        assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32
        assert y.shape == (4,) and y.dtype == np.int32
        assert np.isfinite(x).all() and abs(x.mean()) < 3
        assert len(list(ds)) == 2  # 10 examples, remainder dropped
        val = data.tfds_pipeline("imagenet2012", "validation", batch_size=3,
                                 train=False, image_size=32)
        assert [len(b[1]) for b in tfds.as_numpy(val)] == [3, 3, 3, 1]
    with pytest.raises(data.DatasetError, match="augment"):
        data.tfds_pipeline("cifar10", "train", batch_size=4, train=True,
                           augment="mixup")


def test_tfds_not_downloaded(tfds, tmp_path):
    del tfds
    with pytest.raises(data.DatasetError) as e:
        data.load("cifar10", data_dir=str(tmp_path))
    assert str(tmp_path) in str(e.value) and "download" in str(e.value)
    assert e.value.__cause__ is None and e.value.__suppress_context__
    with pytest.raises(data.DatasetError, match="downloads/manual"):
        data.tfds_pipeline("imagenet2012", "train", batch_size=2, train=True,
                           image_size=32, data_dir=str(tmp_path))
