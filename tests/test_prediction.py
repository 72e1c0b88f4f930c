"""Prediction: numpy forward pass equals Keras, probabilities sum to 1, models load safely."""

import numpy as np
import pytest

from mnist_core.config import ModelConfig
from mnist_core.errors import DataFormatError, DataNotFoundError
from mnist_core.model import build_model
from mnist_core.prediction import DenseForward, load_model


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
