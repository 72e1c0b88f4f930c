"""Prediction: numpy forward pass equals Keras, probabilities sum to 1, models load safely."""

import numpy as np
import pytest

from mnist_core.config import ModelConfig
from mnist_core.errors import DataFormatError, DataNotFoundError
from mnist_core.keras_archive import read_dense_stack
from mnist_core.model import build_model
from mnist_core.prediction import DenseForward, load_model, load_model_bytes


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh", "elu", "softplus", "linear"])
def test_forward_pass_matches_keras_predict(activation):
    model = build_model(ModelConfig((16, 8), activation), input_dim=784)
    x = np.random.default_rng(0).random((300, 784), dtype=np.float32)
    probabilities = DenseForward.from_model(model).probabilities(x)
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_load_model_round_trip(tmp_path):
    model = build_model(ModelConfig(), input_dim=64)
    model.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    assert loaded.count_params() == model.count_params()


def test_load_model_missing(tmp_path):
    with pytest.raises(DataNotFoundError, match="no such model file"):
        load_model(tmp_path / "absent.keras")


def test_load_model_corrupt(tmp_path):
    path = tmp_path / "bad.keras"
    path.write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match="not a loadable Keras model"):
        load_model(path)


def _saved(model, tmp_path) -> bytes:
    model.save(tmp_path / "model.keras")
    return (tmp_path / "model.keras").read_bytes()


@pytest.mark.parametrize(("config", "input_dim", "pixel_max"), [
    (ModelConfig(), 64, 16.0), (ModelConfig((32, 16), "relu"), 784, 255.0),
    (ModelConfig((12,), "elu"), 784, 1.0),
])
def test_a_saved_model_is_read_from_its_archive_as_keras_loads_it(tmp_path, config, input_dim,
                                                                   pixel_max):
    data = _saved(build_model(config, input_dim, pixel_max=pixel_max), tmp_path)
    assert read_dense_stack(data) is not None  # the path that starts no TensorFlow
    read = DenseForward.from_archive(data, "model.keras")
    loaded = DenseForward.from_model(load_model_bytes(data, "model.keras"))
    assert read.pixel_max == loaded.pixel_max == pixel_max
    assert read.activations == loaded.activations
    for ours, keras_own in zip(read.weights + read.biases, loaded.weights + loaded.biases):
        np.testing.assert_array_equal(ours, keras_own)


def test_a_model_without_rescaling_takes_0_to_255_and_any_other_shape_is_loaded_by_keras(
        tmp_path):
    import keras

    legacy = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="relu"),
                               keras.layers.Dense(10, activation="softmax")])
    data = _saved(legacy, tmp_path)  # no Rescaling: a model from before it, taking 0-255
    assert read_dense_stack(data) is not None
    assert DenseForward.from_archive(data, "legacy.keras").pixel_max == 255.0
    dropout = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="relu"),
                                keras.layers.Dropout(0.5),
                                keras.layers.Dense(10, activation="softmax")])
    data = _saved(dropout, tmp_path)
    assert read_dense_stack(data) is None
    with pytest.raises(DataFormatError, match="not a supported Dense layer"):
        DenseForward.from_archive(data, "dropout.keras")
