"""One list of hyperparameters: every ``TrialConfig`` field has a report column, a
``jobs.train`` flag with its default and help, a sweep grid key, and a per-member vector
where it is real-valued."""

import dataclasses

import pytest

from jobs.train import parse_args
from mnist_core.config import HYPERPARAMETERS, ModelConfig, TrialConfig, hyperparameter_fields
from mnist_core.packed_state import MEMBER_RATES
from mnist_core.reports import METRICS_SCHEMA, TRIALS_SCHEMA
from mnist_core.sweep.config import SECTIONS


def test_the_list_is_every_field_of_the_trial_and_model_configs():
    fields = {item.name for item in dataclasses.fields(ModelConfig)}
    fields |= {item.name for item in dataclasses.fields(TrialConfig)} - {"model"}
    assert set(HYPERPARAMETERS) == fields
    assert list(TrialConfig().as_record()) == list(HYPERPARAMETERS)


@pytest.mark.parametrize("name", HYPERPARAMETERS)
def test_each_hyperparameter_has_a_column_a_flag_and_a_grid_key(name):
    assert name in TRIALS_SCHEMA.names and name in METRICS_SCHEMA.names
    args = parse_args([])
    default = TrialConfig().as_record()[name]
    assert getattr(args, name) == (tuple(default) if isinstance(default, list) else default)
    assert name in SECTIONS["grid"] or name == "seed"  # seeds come from [sweep] seeds


def test_every_field_says_what_it_is():
    assert all(item.metadata["help"] for item in hyperparameter_fields())


def test_real_valued_hyperparameters_vary_per_pack_member():
    reals = {item.name for item in hyperparameter_fields() if isinstance(item.default, float)}
    assert set(MEMBER_RATES) == reals == {"learning_rate", "momentum", "l2", "decay_rate"}


def test_a_row_with_a_column_the_schema_lacks_is_refused(tmp_path):
    from mnist_core import storage

    with pytest.raises(AssertionError, match="not in the schema"):
        storage.write_rows(str(tmp_path / "t.parquet"), [{"trial_id": "a", "colour": 1}],
                           METRICS_SCHEMA)
