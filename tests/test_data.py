"""Loading, checking and preprocessing the datasets, and every bad input's one-line error."""

import os

import numpy as np
import pytest
from _idx import write_idx

from mnist_core.config import DataConfig
from mnist_core.data import DEBIAN_FASHION, IDX_FILES, load_dataset, load_raw
from mnist_core.errors import DataFormatError, DataNotFoundError


def test_digits_is_flattened_in_its_own_units_and_split(digits):
    assert digits.input_dim == 64
    assert digits.x_train.dtype == np.float32
    assert digits.x_train.min() >= 0.0 and digits.x_train.max() == digits.pixel_max == 16.0
    assert len(digits.y_train) + len(digits.y_val) + len(digits.y_test) == 1797
    assert len(digits.y_test) == 360
    assert set(np.unique(digits.y_val)) == set(range(10))


def test_digits_test_set_does_not_depend_on_seed():
    first = load_dataset(DataConfig(dataset="digits", validation_split=0.2, seed=1))
    second = load_dataset(DataConfig(dataset="digits", validation_split=0.2, seed=2))
    np.testing.assert_array_equal(first.x_test, second.x_test)
    assert not np.array_equal(first.y_val, second.y_val)


def test_validation_split_is_stratified_and_seeded():
    config = DataConfig(dataset="digits", validation_split=0.25, seed=5)
    first, again = load_dataset(config), load_dataset(config)
    np.testing.assert_array_equal(first.y_val, again.y_val)
    train_share = np.bincount(first.y_train, minlength=10) / len(first.y_train)
    val_share = np.bincount(first.y_val, minlength=10) / len(first.y_val)
    assert np.abs(train_share - val_share).max() < 0.02


def test_npz_is_loaded_and_flattened(tmp_path, mnist_like):
    np.savez(tmp_path / "mnist.npz", **mnist_like)
    splits = load_dataset(DataConfig(dataset="mnist", data_path=str(tmp_path / "mnist.npz")))
    assert splits.input_dim == 784
    assert splits.image_shape == (28, 28)
    assert splits.pixel_max == 255.0
    np.testing.assert_array_equal(splits.x_test[0], mnist_like["x_test"][0].ravel())


@pytest.mark.parametrize("compress", [True, False])
def test_idx_folder_is_loaded(tmp_path, mnist_like, compress):
    for key, stem in IDX_FILES.items():
        write_idx(tmp_path / (stem + (".gz" if compress else "")), mnist_like[key])
    raw = load_raw("mnist", str(tmp_path))
    np.testing.assert_array_equal(raw.y_train, mnist_like["y_train"])
    assert raw.x_test.shape == (50, 28, 28)


def _npz(tmp_path, arrays, **kwargs):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays, **kwargs)
    return str(path)


def _corrupt(mnist_like, key, transform):
    arrays = dict(mnist_like)
    arrays[key] = transform(arrays[key])
    return arrays


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: {k: v for k, v in d.items() if k != "y_test"}, "missing key.*y_test"),
        (lambda d: _corrupt(d, "y_train", lambda y: np.where(y == 3, 11, y)), "outside 0-9"),
        (lambda d: _corrupt(d, "y_test", lambda y: y.astype(np.int64) - 1), "outside 0-9"),
        (lambda d: _corrupt(d, "y_train", lambda y: y[:-1]), "200 images but y_train has 199"),
        (lambda d: _corrupt(d, "x_train", lambda x: np.where(x > 250, np.nan, x.astype(float))),
         "NaN"),
        (lambda d: _corrupt(d, "x_test", lambda x: x.astype(np.float32) * 2), "pixels must lie"),
        (lambda d: _corrupt(d, "x_test", lambda x: x.astype(np.int16) - 1), "pixels must lie"),
    ],
)
def test_bad_npz_contents_are_named(tmp_path, mnist_like, make, message):
    path = _npz(tmp_path, make(mnist_like))
    with pytest.raises(DataFormatError, match=message) as caught:
        load_raw("mnist", path)
    assert path in str(caught.value) and "\n" not in str(caught.value)


def test_pickled_npz_is_refused(tmp_path, mnist_like):
    arrays = dict(mnist_like, y_test=np.array([{"evil": 1}] * 50, dtype=object))
    path = _npz(tmp_path, arrays)
    with pytest.raises(DataFormatError, match="pickled objects"):
        load_raw("mnist", path)


def test_not_an_npz(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(DataFormatError, match="not a readable npz"):
        load_raw("mnist", str(path))


def test_missing_path(tmp_path):
    with pytest.raises(DataNotFoundError, match="no such data file"):
        load_raw("mnist", str(tmp_path / "absent.npz"))


def test_idx_folder_missing_a_file(tmp_path, mnist_like):
    for key, stem in IDX_FILES.items():
        if key != "y_test":
            write_idx(tmp_path / stem, mnist_like[key])
    with pytest.raises(DataNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_raw("mnist", str(tmp_path))


def test_idx_images_and_labels_counts_differ(tmp_path, mnist_like):
    for key, stem in IDX_FILES.items():
        write_idx(tmp_path / stem, mnist_like[key][:-5] if key == "y_test" else mnist_like[key])
    with pytest.raises(DataFormatError, match="50 images but y_test has 45"):
        load_raw("mnist", str(tmp_path))


def test_keras_cache_is_used(tmp_path, mnist_like, monkeypatch):
    (tmp_path / "datasets").mkdir()
    np.savez(tmp_path / "datasets" / "mnist.npz", **mnist_like)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    raw = load_raw("mnist")
    assert raw.source.endswith("mnist.npz") and len(raw.y_train) == 200


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="dataset-fashion-mnist not installed")
def test_debian_fashion_mnist_package(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    raw = load_raw("fashion_mnist")
    assert raw.x_train.shape == (60000, 28, 28) and raw.x_test.shape == (10000, 28, 28)
    assert os.fspath(DEBIAN_FASHION) in raw.source


def test_scoring_demos_tile_only_the_test_images_no_model_trained_on():
    from mnist_core.data import held_out_images

    images, labels = held_out_images("digits")
    splits = load_dataset(DataConfig(dataset="digits", validation_split=0.1))
    assert len(images) == len(splits.x_test) == 360
    np.testing.assert_array_equal(images, splits.x_test.reshape(len(images), -1))
    np.testing.assert_array_equal(labels, splits.y_test)
