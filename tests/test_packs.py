"""Grouping trials into packs: shared keys only, balanced sizes, the auto rule."""

import pickle

import numpy as np
import pyarrow as pa
import pytest

from mnist_core.sweep.config import parse_sweep_config
from mnist_core.sweep.packs import (
    CPU_PACK_LIMIT,
    GPU_PACK_LIMIT,
    grid_packs,
    make_packs,
    pack_key,
    pack_size_for,
    restart_packs,
)
from mnist_core.sweep.refit import refit_configs
from mnist_core.sweep.trials import Trial, trial_positions
from mnist_core.sweep.views import AllData, Restarts

CONFIG = """
[sweep]
dataset = "digits"
seeds = [0, 1]
[grid]
optimizer = ["sgd", "nadam"]
learning_rate = [0.01, 0.02, 0.05, 0.1, 0.2]
epochs = [5, 20]
"""


def test_packs_hold_only_trials_that_share_a_key_and_nadam_trains_alone():
    trials = list(parse_sweep_config(CONFIG).trials)
    packs = make_packs(trials, largest=4)
    assert sorted(t.trial_id for p in packs for t in p.trials) == sorted(
        t.trial_id for t in trials)
    for pack in packs:
        assert len({pack_key(trial.config) for trial in pack.trials}) == 1
    sgd = [p for p in packs if p.trials[0].config.optimizer == "sgd"]
    nadam = [p for p in packs if p.trials[0].config.optimizer == "nadam"]
    assert sorted(len(p.trials) for p in sgd) == [3, 3, 3, 3, 4, 4]
    assert len(nadam) == 20 and all(len(p.trials) == 1 for p in nadam)
    assert len({p.pack_id for p in packs}) == len(packs)


def test_restart_packs_hold_a_group_per_seed_or_a_pack_per_seed():
    trials = parse_sweep_config(CONFIG).trials
    sgd = next(t for t in trials if t.config.optimizer == "sgd")
    seeds = [Trial(sgd.trial_id, config) for config in refit_configs(sgd.config, 4, 5)]
    assert [trial.config.seed for trial in seeds] == [sgd.config.seed + i for i in range(5)]
    assert all(trial.config.epochs == 4 and not trial.config.restore_best for trial in seeds)
    packs = restart_packs(seeds, largest=3)  # 5 seeds on 2 slots
    assert [pack.view for pack in packs] == [Restarts(3), Restarts(2)]
    assert sorted(t.config.seed for pack in packs for t in pack.trials) == [
        t.config.seed for t in seeds]
    assert all(pack.keep_all_models for pack in packs)
    nadam = next(t for t in trials if t.config.optimizer == "nadam")
    alone = restart_packs([Trial(nadam.trial_id, config)
                           for config in refit_configs(nadam.config, 4, 3)], largest=3)
    assert [(len(pack.trials), pack.view) for pack in alone] == [(1, AllData())] * 3


@pytest.mark.parametrize(("pending", "slots", "setting", "gpu", "expected"), [
    (16, 2, "auto", False, 8),
    (1000, 2, "auto", False, CPU_PACK_LIMIT),
    (100_000, 4, "auto", True, GPU_PACK_LIMIT),
    (3, 8, "auto", False, 1),
    (1000, 2, 1, False, 1),
    (1000, 2, 50, True, 50),
])
def test_pack_size_keeps_slots_busy_then_packs_up_to_the_limit(pending, slots, setting, gpu,
                                                              expected):
    assert pack_size_for(pending, slots, setting, gpu) == expected


def test_packs_of_wide_networks_are_split_to_fit_a_worker():
    from mnist_core.sweep.packs import MAX_PACK_PARAMS

    rates = ", ".join(str(0.01 * (index + 1)) for index in range(30))
    wide = (CONFIG.replace("[grid]", "[grid]\nhidden_units = [[20000]]")
            .replace('optimizer = ["sgd", "nadam"]', 'optimizer = ["sgd"]')
            .replace("seeds = [0, 1]", "seeds = [0]")
            .replace("learning_rate = [0.01, 0.02, 0.05, 0.1, 0.2]", f"learning_rate = [{rates}]"))
    trials = list(parse_sweep_config(wide).trials)
    per_trial = trials[0].config.model.max_params  # 15.9M parameters each
    packs = make_packs(trials, largest=GPU_PACK_LIMIT)
    assert max(len(pack.trials) for pack in packs) == MAX_PACK_PARAMS // per_trial == 12
    assert sum(len(pack.trials) for pack in packs) == len(trials)


DRAWN = """
[sweep]
dataset = "digits"
seeds = [0, 1]
samples = 40
[grid]
optimizer = ["sgd", "nadam"]
activation = ["sigmoid", "relu"]
batch_size = {choice = [32, 64, 128]}
hidden_units = {choice = [[10], [32], [10, 10]]}
learning_rate = {loguniform = [0.01, 1.0]}
"""


@pytest.mark.parametrize("text", [CONFIG, DRAWN])
def test_packs_of_positions_are_the_packs_of_the_trials_they_make(text):
    grid = parse_sweep_config(text).trials
    positions = np.arange(3, len(grid), 2)  # some recorded already: every other one owed
    trials = [grid[int(position)] for position in positions]
    expected = make_packs(trials, largest=5)
    found = grid_packs(grid, positions, largest=5)
    assert [[t.trial_id for t in p.trials] for p in found] == [
        [t.trial_id for t in p.trials] for p in expected]
    assert [[t.config for t in p.trials] for p in found] == [
        [t.config for t in p.trials] for p in expected]


def test_a_pack_of_positions_crosses_as_columns_not_trials():
    grid = parse_sweep_config(DRAWN).trials
    (pack, *_) = grid_packs(grid, np.arange(len(grid)), largest=8)
    made = [trial.trial_id for trial in pack.trials]  # made once, here
    sent = pickle.loads(pickle.dumps(pack))
    assert "trials" not in vars(sent.trials)  # what crosses is the columns
    assert [trial.trial_id for trial in sent.trials] == made
    assert list(trial_positions(pa.array(made))) == list(
        sent.trials.positions)
