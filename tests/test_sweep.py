"""Sweeps on a real local Ray: reports, faults, retries and resume after a killed driver."""

import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from _processes import crash_when

from jobs.sweep import main
from mnist_core import sweep
from mnist_core.prediction import load_model
from mnist_core.sweep_config import load_sweep_config

pytestmark = pytest.mark.slow

GRID = """
[sweep]
name = "{name}"
dataset = "digits"
validation_split = 0.1
seeds = [0]

[grid]
hidden_units = [[10]]
activation = ["sigmoid", "relu"]
optimizer = ["sgd", "adam"]
learning_rate = [0.1]
batch_size = [64]
epochs = [{epochs}]

[resources]
num_cpus = 1
num_gpus = 0
max_retries = {retries}
"""


def _config(tmp_path, name="grid", epochs=3, retries=1) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(GRID.format(name=name, epochs=epochs, retries=retries))
    return path


def _sweep_folder(out: Path) -> Path:
    (folder,) = [path for path in out.iterdir() if path.is_dir()]
    return folder


def _tables(folder: Path) -> dict:
    return {name: pq.read_table(folder / f"{name}.parquet").to_pylist()
            for name in ("trials", "epochs", "confusion", "per_class")}


def _assert_reports_consistent(folder: Path, trials: int, epochs: int) -> dict:
    tables = _tables(folder)
    ids = [row["trial_id"] for row in tables["trials"]]
    assert len(ids) == len(set(ids)) == trials
    ok = {row["trial_id"]: row for row in tables["trials"] if row["status"] == "ok"}
    assert len(tables["epochs"]) == len(ok) * epochs
    assert len(tables["per_class"]) == len(ok) * 10
    assert len(tables["confusion"]) == len(ok) * 100
    for trial_id, row in ok.items():
        counts = np.zeros((10, 10), int)
        for cell in tables["confusion"]:
            if cell["trial_id"] == trial_id:
                counts[cell["true_label"], cell["predicted_label"]] = cell["count"]
        assert counts.sum() == 360
        assert np.trace(counts) / counts.sum() == pytest.approx(row["test_accuracy"])
    return tables


def test_sweep_writes_every_report(ray_session, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["--config", str(_config(tmp_path)), "--out", str(out), "--no-progress"]) == 0
    folder = _sweep_folder(out)
    tables = _assert_reports_consistent(folder, trials=4, epochs=3)
    trials = tables["trials"]
    assert {row["status"] for row in trials} == {"ok"}
    assert all(row["attempts"] == 1 and row["params"] == 760 for row in trials)
    assert {(row["activation"], row["optimizer"]) for row in trials} == {
        ("sigmoid", "sgd"), ("sigmoid", "adam"), ("relu", "sgd"), ("relu", "adam")}
    best = max(trials, key=lambda row: row["val_accuracy"])
    model = load_model(folder / "best" / "model.keras")
    assert model.count_params() == 760
    for name in ("confusion.png", "learning_curves.png", "accuracy_by_hyperparameter.png"):
        assert (folder / "best" / name).read_bytes()[:4] == b"\x89PNG"
    assert best["trial_id"] in (folder / "best" / "best.json").read_text()
    printed = capsys.readouterr().out
    assert "top 4 by validation accuracy" in printed and best["trial_id"] in printed


def test_workers_are_reused_across_trials(ray_session, tmp_path):
    config = _config(tmp_path, epochs=1)
    config.write_text(config.read_text().replace("seeds = [0]", "seeds = [0, 1, 2]"))
    out = tmp_path / "runs"
    main(["--config", str(config), "--out", str(out), "--no-progress"])
    trials = pq.read_table(_sweep_folder(out) / "trials.parquet").to_pylist()
    pids = [row["worker_pid"] for row in trials]
    # 12 trials on 2 CPUs: Ray's pool may hold a few idle workers, but far fewer than 12.
    assert len(pids) == 12 and len(set(pids)) <= 6
    # TensorFlow's start-up is paid once per worker process: later trials report none.
    for pid in set(pids):
        assert sum(row["worker_setup_seconds"] > 0 for row in trials
                   if row["worker_pid"] == pid) <= 1


def test_a_trial_that_raises_is_recorded_and_the_sweep_goes_on(ray_session, tmp_path, faults):
    config_path = _config(tmp_path, name="raises")
    victim = load_sweep_config(config_path).trials[1].trial_id
    out = tmp_path / "runs"
    sweep_id = "raises-1"
    (faults / f"{sweep_id}.{victim}.raise").touch()
    summary = sweep.run_sweep(load_sweep_config(config_path), str(out), sweep_id,
                               show_progress=False)
    assert (summary.ok, summary.failed) == (3, 1)
    tables = _assert_reports_consistent(out / sweep_id, trials=4, epochs=3)
    (failed,) = [row for row in tables["trials"] if row["status"] == "failed"]
    assert failed["trial_id"] == victim
    assert "RuntimeError: injected fault" in failed["error"]
    assert failed["attempts"] == 1 and failed["test_accuracy"] is None


@pytest.mark.parametrize(("retries", "status", "attempts"), [(1, "ok", 2), (0, "failed", 1)])
def test_a_killed_worker_is_retried(ray_session, tmp_path, faults, retries, status, attempts):
    config = load_sweep_config(_config(tmp_path, name="crash", retries=retries))
    victim = config.trials[2].trial_id
    sweep_id = f"crash-{retries}"
    (faults / f"{sweep_id}.{victim}.crash").touch()
    sweep.run_sweep(config, str(tmp_path), sweep_id, show_progress=False)
    tables = _assert_reports_consistent(tmp_path / sweep_id, trials=4, epochs=3)
    row = next(row for row in tables["trials"] if row["trial_id"] == victim)
    assert (row["status"], row["attempts"]) == (status, attempts)
    if status == "failed":
        assert "WorkerCrashedError" in row["error"] or "died" in row["error"].lower()


def test_resume_after_the_driver_is_killed(ray_session, tmp_path):
    config_path = _config(tmp_path, name="resume", epochs=30)
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "jobs.sweep", "--config", str(config_path), "--out",
               str(out), "--no-progress"]
    trials_file = crash_when(command, "*/trials.parquet", out, rows=1)
    done_before = pq.read_table(trials_file).num_rows
    assert 1 <= done_before < 4, "the driver should be killed mid-sweep"
    sweep_id = trials_file.parent.name
    assert main(["--resume", sweep_id, "--out", str(out), "--no-progress"]) == 0
    tables = _assert_reports_consistent(out / sweep_id, trials=4, epochs=30)
    assert {row["status"] for row in tables["trials"]} == {"ok"}
    assert main(["--resume", sweep_id, "--out", str(out), "--no-progress"]) == 0
    _assert_reports_consistent(out / sweep_id, trials=4, epochs=30)
