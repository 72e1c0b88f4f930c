"""Config validation: every bad field gets a ConfigError naming it."""

import pytest

from mnist_core.config import DataConfig, ModelConfig, TrialConfig
from mnist_core.errors import ConfigError


def test_defaults_are_the_tutorial():
    config = TrialConfig()
    assert config.model == ModelConfig(hidden_units=(10,), activation="sigmoid")
    assert (config.optimizer, config.batch_size, config.epochs) == ("sgd", 100, 5)


def test_as_record_is_flat():
    record = TrialConfig(model=ModelConfig((32, 16), "relu"), seed=3).as_record()
    assert record["hidden_units"] == [32, 16]
    assert record["activation"] == "relu"
    assert record["seed"] == 3
    assert "model" not in record


@pytest.mark.parametrize(
    ("factory", "fields", "named"),
    [
        (DataConfig, {"dataset": "cifar"}, "dataset"),
        (DataConfig, {"validation_split": 1.0}, "validation_split"),
        (DataConfig, {"validation_split": -0.1}, "validation_split"),
        (DataConfig, {"seed": "zero"}, "seed"),
        (ModelConfig, {"hidden_units": ()}, "hidden_units"),
        (ModelConfig, {"hidden_units": (10, 0)}, "hidden_units"),
        (ModelConfig, {"hidden_units": [10]}, "hidden_units"),
        (ModelConfig, {"activation": "swishy"}, "activation"),
        (TrialConfig, {"optimizer": "lbfgs"}, "optimizer"),
        (TrialConfig, {"learning_rate": 0}, "learning_rate"),
        (TrialConfig, {"batch_size": 0}, "batch_size"),
        (TrialConfig, {"epochs": -1}, "epochs"),
        (TrialConfig, {"epochs": 2.5}, "epochs"),
        (TrialConfig, {"batch_size": True}, "batch_size"),
    ],
)
def test_bad_field_is_named(factory, fields, named):
    with pytest.raises(ConfigError, match=named):
        factory(**fields)
