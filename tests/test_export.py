"""A sweep exported as an Optuna study: loaded back, its trials, states, params and
intermediate values are the sweep's, and Optuna's own parameter importance runs on it."""

import pytest

from jobs._cli import run
from jobs.export import main
from mnist_core.sweep.config import parse_sweep_config
from mnist_core.sweep.driver import run_sweep
from mnist_core.sweep.reading import read_sweep

pytestmark = pytest.mark.slow
optuna = pytest.importorskip("optuna", reason="the tracking extra is not installed")

SWEEP = """
[sweep]
name = "export"
dataset = "digits"
samples = 9
[grid]
learning_rate = {loguniform = [0.01, 2.0]}
momentum = {uniform = [0.0, 0.9]}
hidden_units = [[10], [16]]
epochs = [3]
[scheduler]
kind = "halving"
eta = 3
min_epochs = 1
"""


def test_a_sweep_becomes_an_optuna_study(ray_session, tmp_path, capsys):
    run_sweep(parse_sweep_config(SWEEP), str(tmp_path / "runs"), "export-1",
              show_progress=False)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    folder = tmp_path / "runs" / "export-1"
    assert run(main, ["optuna", str(folder), "--storage", storage]) == 0
    assert "study export-1: 18 trials" in capsys.readouterr().out
    study = optuna.load_study(study_name="export-1", storage=storage)
    rows = {row["trial_id"]: row for row in read_sweep(str(folder))["trials"].to_pylist()}
    states = {"ok": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED}
    assert len(study.trials) == 18
    for trial in study.trials:
        row = rows[trial.user_attrs["trial_id"]]
        assert trial.state == states[row["status"]]
        assert trial.params["learning_rate"] == pytest.approx(row["learning_rate"])
        assert trial.params["hidden_units"] == "x".join(map(str, row["hidden_units"]))
        assert len(trial.intermediate_values) == (3 if row["status"] == "ok" else 1)
    assert study.best_value == max(r["val_accuracy"] for r in rows.values()
                                   if r["status"] == "ok")
    importance = optuna.importance.get_param_importances(study)
    assert set(importance) == {"learning_rate", "momentum", "hidden_units"}
    assert run(main, ["optuna", str(folder), "--storage", storage]) == 2  # taken
    capsys.readouterr()
    unusable = f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'x.db'}"
    assert run(main, ["optuna", str(folder), "--storage", unusable]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: --storage {unusable}: not a storage Optuna can use (")
