"""Hyperparameter importance finds the parameter that matters, on a synthetic sweep where one
does and one does not."""

import numpy as np

from mnist_core.importance import hyperparameter_importance


def _sweep(count=300, seed=1):
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        rate, noise = 10 ** rng.uniform(-3, 0), rng.uniform(0, 1)
        accuracy = 0.5 + 0.4 * np.exp(-(np.log10(rate) + 1) ** 2) + rng.normal(0, 0.005)
        rows.append({"trial_id": f"t{index:04d}", "status": "ok", "val_accuracy": accuracy,
                     "learning_rate": rate, "momentum": noise,
                     "activation": "relu" if index % 2 else "sigmoid"})
    return rows


def test_the_parameter_that_matters_gets_nearly_all_the_importance():
    shares = hyperparameter_importance(_sweep(), ["learning_rate", "momentum", "activation"],
                                       frozenset({"learning_rate"}))
    assert set(shares) == {"learning_rate", "momentum", "activation"}
    assert abs(sum(shares.values()) - 1) < 1e-9
    assert shares["learning_rate"] > 0.9 > 0.05 > max(shares["momentum"],
                                                       shares["activation"])


def test_too_few_trials_or_no_variation_say_nothing():
    rows = _sweep(count=5)
    assert hyperparameter_importance(rows, ["learning_rate"]) == {}
    flat = [row | {"val_accuracy": 0.9} for row in _sweep()]
    assert hyperparameter_importance(flat, ["learning_rate"]) == {}
