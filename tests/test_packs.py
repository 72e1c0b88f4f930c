"""Grouping trials into packs: shared keys only, balanced sizes, the auto rule."""

import pytest

from mnist_core.sweep.config import parse_sweep_config
from mnist_core.sweep.packs import (
    CPU_PACK_LIMIT,
    GPU_PACK_LIMIT,
    make_packs,
    pack_key,
    pack_size_for,
)

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
