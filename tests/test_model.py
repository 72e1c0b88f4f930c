"""The dense model reproduces the tutorial's architecture."""

import pytest

from mnist_core.config import ModelConfig
from mnist_core.model import build_model, count_params


def test_default_is_the_tutorials_7960_parameter_network():
    model = build_model(ModelConfig(), input_dim=784)
    assert [layer.count_params() for layer in model.layers] == [7850, 110]
    assert [tuple(layer.output.shape) for layer in model.layers] == [(None, 10), (None, 10)]
    assert model.count_params() == 7960
    assert model.layers[0].activation.__name__ == "sigmoid"
    assert model.layers[-1].activation.__name__ == "softmax"


@pytest.mark.parametrize(("units", "input_dim"), [((10,), 784), ((128, 64), 784), ((32,), 64)])
def test_count_params_matches_keras(units, input_dim):
    config = ModelConfig(hidden_units=units, activation="relu")
    assert count_params(config, input_dim) == build_model(config, input_dim).count_params()
