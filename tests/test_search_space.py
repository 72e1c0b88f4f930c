"""Sampled search spaces: reproducible draws inside their bounds, and one-line errors."""

import math

import pytest

from mnist_core.errors import ConfigError
from mnist_core.sweep.config import parse_sweep_config

SEARCH = """
[sweep]
dataset = "digits"
samples = 40
search_seed = {seed}
seeds = [0, 1]
[grid]
activation = ["sigmoid", "relu"]
learning_rate = {{loguniform = [0.01, 3.0]}}
momentum = {{uniform = [0.0, 0.95]}}
batch_size = {{randint = [32, 129]}}
schedule = {{choice = ["constant", "cosine"]}}
hidden_units = {{choice = [[10], [16, 8]]}}
"""


def _trials(seed=7):
    return parse_sweep_config(SEARCH.format(seed=seed)).trials


def test_grid_times_samples_times_seeds():
    trials = _trials()
    assert len(trials) == 2 * 40 * 2
    assert len({trial.trial_id for trial in trials}) == len(trials)


def test_draws_are_reproducible_and_change_with_the_search_seed():
    assert [t.trial_id for t in _trials()] == [t.trial_id for t in _trials()]
    assert [t.config for t in _trials()] == [t.config for t in _trials()]
    assert [t.config for t in _trials(seed=8)] != [t.config for t in _trials()]


def test_draws_respect_their_bounds_and_spread_over_them():
    configs = [trial.config for trial in _trials()]
    rates = [config.learning_rate for config in configs]
    assert all(0.01 <= rate <= 3.0 for rate in rates)
    logs = sorted(math.log10(rate) for rate in rates)
    assert logs[len(logs) // 4] < -0.8 and logs[3 * len(logs) // 4] > -0.5  # log-spread
    assert all(0.0 <= config.momentum <= 0.95 for config in configs)
    assert {config.batch_size for config in configs} <= set(range(32, 129))
    assert {config.schedule for config in configs} == {"constant", "cosine"}
    assert {config.model.hidden_units for config in configs} == {(10,), (16, 8)}


def test_seeds_replicate_the_same_draw():
    trials = _trials()
    for first, second in zip(trials[0::2], trials[1::2]):
        assert (first.config.seed, second.config.seed) == (0, 1)
        assert first.config.learning_rate == second.config.learning_rate


@pytest.mark.parametrize(("grid", "sweep", "message"), [
    ("learning_rate = {loguniform = [0.0, 1.0]}", "samples = 4", "must be above 0"),
    ("learning_rate = {uniform = [1.0, 0.5]}", "samples = 4", "empty or inverted"),
    ("learning_rate = {uniform = [0.5, 0.5]}", "samples = 4", "empty or inverted"),
    ("learning_rate = {normal = [0.5, 0.1]}", "samples = 4", "unknown distribution"),
    ("learning_rate = {choice = []}", "samples = 4", "non-empty list"),
    ("batch_size = {randint = [10.5, 20]}", "samples = 4", "two integers"),
    ("learning_rate = [0.1]", "samples = 4", "needs at least one distribution"),
    ("learning_rate = {uniform = [0.1, 1.0]}", "", "samples is required"),
    ("momentum = {uniform = [0.5, 1.5]}", "samples = 50", "momentum must be in"),
])
def test_bad_search_spaces_are_one_line_errors(grid, sweep, message):
    text = f'[sweep]\ndataset = "digits"\n{sweep}\n[grid]\n{grid}\n'
    with pytest.raises(ConfigError, match=message) as caught:
        parse_sweep_config(text)
    assert "\n" not in str(caught.value)
