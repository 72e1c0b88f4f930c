"""The packed trainer computes what the single-trial path and Keras's own ``fit`` compute."""

import dataclasses

import numpy as np
import pytest

from mnist_core.config import ModelConfig, TrialConfig
from mnist_core.model import build_model
from mnist_core.packed_training import MemberGroups, initial_weights, train_pack
from mnist_core.training import make_optimizer, train
from mnist_core.trial import TrialFailure, TrialResult, run_pack

RATES = {"sgd": np.geomspace(0.01, 2.0, 64), "adam": np.geomspace(1e-4, 0.05, 64),
         "rmsprop": np.geomspace(1e-4, 0.05, 64), "adagrad": np.geomspace(1e-3, 0.5, 64)}


def _configs(optimizer: str, epochs: int = 1, hidden=(10,), activation="sigmoid"):
    return [TrialConfig(model=ModelConfig(hidden, activation), optimizer=optimizer,
                        learning_rate=float(rate), batch_size=100, epochs=epochs, seed=3)
            for rate in RATES[optimizer]]


def _assert_weights_close(actual, expected):
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop", "adagrad"])
def test_a_member_of_a_pack_of_64_equals_the_trial_trained_alone(digits, optimizer):
    configs = _configs(optimizer)
    fit = train_pack(configs, digits)
    for index in (0, 37, 63):
        alone = train(configs[index], digits)
        _assert_weights_close(fit.members[index].weights, alone.model.get_weights())
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert fit.members[index].history[key] == pytest.approx(alone.history[key],
                                                                    rel=1e-5)


def test_members_grouped_by_their_rows_equal_a_pack_per_group(digits):
    """Groups on rows of their own (folds, say): each group trains and is validated on its
    own rows of the same images, and ends where a pack of its members alone on them ends."""
    configs = [dataclasses.replace(config, epochs=3, momentum=0.9, nesterov=True, l2=1e-4,
                                   schedule="cosine", restore_best=True)
               for config in _configs("sgd")[20:60:10]]
    rows = np.random.default_rng(0).permutation(len(digits.y_train))
    held_out = np.array_split(rows, 3)[:3]
    groups = MemberGroups(tuple(np.sort(np.setdiff1d(rows, part)) for part in held_out),
                          tuple(np.sort(part) for part in held_out))
    fit = train_pack(configs * 3, digits, groups=groups)
    for group, (train_rows, val_rows) in enumerate(zip(groups.train_rows, groups.val_rows)):
        alone = train_pack(configs, dataclasses.replace(
            digits, x_train=digits.x_train[train_rows], y_train=digits.y_train[train_rows],
            x_val=digits.x_train[val_rows], y_val=digits.y_train[val_rows]))
        for index, want in enumerate(alone.members):
            got = fit.members[group * len(configs) + index]
            _assert_weights_close(got.weights, want.weights)
            assert got.best_epoch == want.best_epoch
            for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                assert got.history[key] == pytest.approx(want.history[key], rel=1e-5)
    with pytest.raises(ValueError, match="as many training rows"):
        MemberGroups((rows[:10], rows[:11]), (rows[:5], rows[:5]))


def test_groups_of_different_seeds_each_end_where_their_seed_ends_alone(digits):
    """Restarts of one setting in one pack (the refit's seeds): each group starts from its
    seed's weights and shuffles in its seed's order, also when it goes on from a state."""
    setting = dataclasses.replace(_configs("sgd")[40], epochs=4, momentum=0.9, nesterov=True,
                                  l2=1e-4, schedule="cosine")
    seeds = [3, 4, 9]
    configs = [dataclasses.replace(setting, seed=seed) for seed in seeds]
    rows = np.arange(len(digits.y_train))
    groups = MemberGroups((rows,) * 3, (rows[:0],) * 3)
    whole = dataclasses.replace(digits, x_val=digits.x_val[:0], y_val=digits.y_val[:0])
    fit = train_pack(configs, whole, groups=groups)
    halfway = train_pack(configs, whole, budgets=[2] * 3, groups=groups)
    goes_on = train_pack(configs, whole, groups=groups,
                         starts=[member.state for member in halfway.members])
    for index, config in enumerate(configs):
        alone = train(config, whole)
        _assert_weights_close(fit.members[index].weights, alone.model.get_weights())
        _assert_weights_close(goes_on.members[index].weights, alone.model.get_weights())
        assert fit.members[index].history["loss"] == pytest.approx(alone.history["loss"],
                                                                   rel=1e-5)
    assert fit.members[0].history["loss"] != pytest.approx(fit.members[1].history["loss"])
    with pytest.raises(ValueError, match="must share their seed"):
        train_pack(configs, whole)
    with pytest.raises(ValueError, match="must share their seed"):
        train_pack(configs[:2] * 3, whole, groups=groups)


def test_two_hidden_layers_and_relu_pack_too(digits):
    configs = _configs("sgd", hidden=(16, 12), activation="relu")[20:28]
    fit = train_pack(configs, digits)
    alone = train(configs[5], digits)
    _assert_weights_close(fit.members[5].weights, alone.model.get_weights())


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_pack_of_one_agrees_with_keras_fit(digits, optimizer):
    import keras

    config = _configs(optimizer)[40]
    fit = train_pack([config], digits)
    keras.utils.set_random_seed(config.seed)
    model = build_model(config.model, digits.input_dim, digits.pixel_max)
    model.compile(optimizer=make_optimizer(config),
                  loss="sparse_categorical_crossentropy")
    order = np.random.default_rng(config.seed).permutation(len(digits.y_train))
    model.fit(digits.x_train[order], digits.y_train[order], batch_size=100, epochs=1,
              shuffle=False, verbose=0)
    _assert_weights_close(fit.members[0].weights, model.get_weights())


def test_members_start_from_the_single_trial_paths_weights(digits):
    import keras

    config = _configs("sgd")[0]
    keras.utils.set_random_seed(config.seed)
    expected = build_model(config.model, digits.input_dim, digits.pixel_max).get_weights()
    _assert_weights_close(initial_weights(config, digits), expected)


def test_full_runs_reach_the_same_test_accuracy(digits):
    configs = _configs("sgd", epochs=10)[::8]
    packed = run_pack(configs, digits)
    for config, result in zip(configs, packed):
        (alone,) = run_pack([config], digits)
        assert result.evaluation.accuracy == pytest.approx(alone.evaluation.accuracy, abs=0.002)
        assert result.params == alone.params == 760


def test_a_member_with_fewer_epochs_is_frozen_after_its_last(digits):
    short, long = _configs("sgd", epochs=3)[30], _configs("sgd", epochs=6)[31]
    fit = train_pack([short, long], digits)
    assert len(fit.members[0].history["loss"]) == 3 and len(fit.members[1].history["loss"]) == 6
    _assert_weights_close(fit.members[0].weights, train(short, digits).model.get_weights())


def test_a_diverging_member_fails_alone(digits):
    configs = _configs("sgd", epochs=3, activation="relu")[::16]
    configs.append(dataclasses.replace(configs[0], learning_rate=1e20))
    results = run_pack(configs, digits)
    assert isinstance(results[-1], TrialFailure)
    assert results[-1].error.startswith("loss became nan in epoch")
    assert all(isinstance(result, TrialResult) for result in results[:-1])
    (alone,) = run_pack([configs[1]], digits)
    assert results[1].evaluation.accuracy == pytest.approx(alone.evaluation.accuracy, abs=0.002)


SEARCH_SETTINGS = [
    {"momentum": 0.9},
    {"momentum": 0.5, "nesterov": True},
    {"l2": 1e-3},
    {"schedule": "cosine"},
    {"schedule": "exponential", "decay_rate": 0.5},
    {"restore_best": True},
    {"patience": 1},
]


@pytest.mark.parametrize("settings", SEARCH_SETTINGS, ids=lambda s: "-".join(map(str, s)))
def test_each_search_hyperparameter_packs_to_the_same_result(digits, settings):
    base = _configs("sgd", epochs=4)[::12]
    configs = [dataclasses.replace(config, **settings) for config in base]
    configs[1] = base[1]  # a plain member beside the others: settings are per member
    fit = train_pack(configs, digits)
    for index in (0, 1, 3):
        alone = train(configs[index], digits)
        member = fit.members[index]
        assert member.best_epoch == alone.best_epoch
        assert len(member.history["loss"]) == len(alone.history["loss"])
        _assert_weights_close(member.weights, alone.model.get_weights())
        assert member.history["val_accuracy"] == pytest.approx(alone.history["val_accuracy"],
                                                               rel=1e-5)


def test_patience_stops_a_member_and_reports_its_best_epoch(digits):
    config = TrialConfig(learning_rate=3.0, epochs=30, patience=2, seed=3)
    (member,) = train_pack([config, dataclasses.replace(config, patience=0)], digits).members[:1]
    accuracies = member.history["val_accuracy"]
    assert len(accuracies) < 30
    assert member.best_epoch == int(np.argmax(accuracies)) + 1
    assert len(accuracies) - member.best_epoch == 2


def test_a_budget_shorter_than_the_epochs_keeps_the_full_schedule(digits):
    config = TrialConfig(learning_rate=1.0, epochs=6, schedule="cosine", seed=3)
    (packed,) = train_pack([config, dataclasses.replace(config, learning_rate=0.5)], digits,
                           budgets=[2, 2]).members[:1]
    alone = train(config, digits, epochs=2)
    assert len(packed.history["loss"]) == 2
    _assert_weights_close(packed.weights, alone.model.get_weights())


@pytest.mark.parametrize(("optimizer", "extra"), [
    ("sgd", {"momentum": 0.9, "nesterov": True, "l2": 1e-4, "schedule": "cosine",
             "restore_best": True}),
    ("sgd", {"schedule": "exponential", "decay_rate": 0.7, "patience": 2}),
    ("adam", {"restore_best": True}),
    ("adagrad", {}),
])
def test_a_pack_that_goes_on_from_its_state_equals_one_trained_straight_through(
        digits, optimizer, extra):
    configs = [dataclasses.replace(config, epochs=7, **extra)
               for config in _configs(optimizer, hidden=(10, 8))[::8]]
    straight = train_pack(configs, digits)
    first = train_pack(configs, digits, budgets=[3] * len(configs))
    assert all(member.state is not None and member.state.epoch == 3 for member in first.members)
    assert all(member.state is None for member in straight.members)  # ran to their epochs
    promoted = [2, 5, 7]  # a later rung trains a subset of the members on
    goes_on = train_pack([configs[index] for index in promoted], digits,
                         starts=[first.members[index].state for index in promoted])
    for position, index in enumerate(promoted):
        got, want = goes_on.members[position], straight.members[index]
        _assert_weights_close(got.weights, want.weights)
        assert got.best_epoch == want.best_epoch
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert got.history[key] == pytest.approx(want.history[key], rel=1e-5)
