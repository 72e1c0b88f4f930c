"""The dense model reproduces the tutorial's architecture and carries its pixel scale."""

import numpy as np
import pytest

from mnist_core.config import ModelConfig
from mnist_core.model import build_model


def test_default_is_the_tutorials_7960_parameter_network():
    model = build_model(ModelConfig(), input_dim=784)
    scale, hidden, output = model.layers
    assert [layer.count_params() for layer in model.layers] == [0, 7850, 110]
    assert [tuple(layer.output.shape) for layer in (hidden, output)] == [(None, 10), (None, 10)]
    assert model.count_params() == 7960
    assert hidden.activation.__name__ == "sigmoid"
    assert output.activation.__name__ == "softmax"
    assert type(scale).__name__ == "Rescaling" and scale.scale == pytest.approx(1 / 255)


@pytest.mark.parametrize("pixel_max", [255.0, 16.0])
def test_the_model_takes_raw_pixels_of_its_dataset(pixel_max):
    import keras

    model = build_model(ModelConfig(), input_dim=64, pixel_max=pixel_max)
    pixels = np.random.default_rng(0).integers(0, int(pixel_max) + 1, (5, 64)).astype("float32")
    scaled_by_hand = keras.Sequential(model.layers[1:])(pixels / pixel_max)
    np.testing.assert_allclose(model(pixels), scaled_by_hand, atol=1e-6)


@pytest.mark.parametrize(("units", "input_dim"), [((10,), 784), ((128, 64), 784), ((32,), 64)])
def test_count_params_matches_keras(units, input_dim):
    config = ModelConfig(hidden_units=units, activation="relu")
    assert _count_params(config, input_dim) == build_model(config, input_dim).count_params()


def _count_params(config: ModelConfig, input_dim: int, num_classes: int = 10) -> int:
    """The parameters of a dense stack, counted by hand: (fan_in + 1) · fan_out per layer."""
    widths = [input_dim, *config.hidden_units, num_classes]
    return sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(widths, widths[1:]))
