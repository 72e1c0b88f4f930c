"""Training on real TensorFlow: history shape, determinism, and the accuracy the model reaches."""

import pytest

from mnist_core.config import ModelConfig, TrialConfig
from mnist_core.evaluation import evaluate
from mnist_core.training import make_optimizer, train


def test_history_has_train_and_validation_metrics_per_epoch(digits):
    fit = train(TrialConfig(epochs=3), digits)
    assert set(fit.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 3 for values in fit.history.values())
    assert fit.history["loss"][-1] < fit.history["loss"][0]


def test_same_seed_same_model(digits):
    config = TrialConfig(epochs=2, seed=7)
    first, second = train(config, digits), train(config, digits)
    assert first.history == second.history


def test_different_seed_different_model(digits):
    first = train(TrialConfig(epochs=2, seed=1), digits)
    second = train(TrialConfig(epochs=2, seed=2), digits)
    assert first.history["loss"] != second.history["loss"]


@pytest.mark.slow
def test_digits_reaches_085_test_accuracy(digits):
    config = TrialConfig(model=ModelConfig((32,), "relu"), optimizer="adam",
                         learning_rate=0.01, epochs=30, batch_size=32)
    fit = train(config, digits)
    assert evaluate(fit.model, digits.x_test, digits.y_test).accuracy >= 0.85


def test_epoch_callback_sees_every_epoch(digits):
    seen = []
    train(TrialConfig(epochs=2), digits, on_epoch=lambda epoch, row: seen.append((epoch, row)))
    assert [epoch for epoch, _ in seen] == [1, 2]
    assert set(seen[0][1]) == {"loss", "accuracy", "val_loss", "val_accuracy"}


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adagrad", "nadam"])
def test_optimizers_by_name(name):
    optimizer = make_optimizer(TrialConfig(optimizer=name, learning_rate=0.25))
    assert float(optimizer.learning_rate) == pytest.approx(0.25)
