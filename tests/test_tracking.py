"""Tracking against a real local MLflow store (SQLite) and real TensorBoard event files."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.sweep import main

pytestmark = pytest.mark.slow
mlflow = pytest.importorskip("mlflow", reason="the tracking extra is not installed")

SWEEP = """
[sweep]
name = "tracked"
dataset = "digits"
[grid]
learning_rate = [0.1, 0.5, 1.0]
epochs = [3]
[tracking]
experiment = "tracked-test"
"""


@pytest.fixture(scope="module")
def tracked(ray_session, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracked")
    config = folder / "sweep.toml"
    config.write_text(SWEEP)
    store = f"sqlite:///{folder / 'mlruns.db'}"
    assert main(["--config", str(config), "--out", str(folder / "runs"), "--no-progress",
                 "--mlflow", store, "--tensorboard", str(folder / "tb")]) == 0
    (sweep,) = [path for path in (folder / "runs").iterdir() if path.is_dir()]
    trials = pq.read_table(sweep / "trials.parquet").to_pylist()
    return {"folder": folder, "store": store, "sweep": sweep, "trials": trials}


def test_mlflow_holds_a_parent_run_and_a_child_per_trial(tracked):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracked["store"])
    experiment = client.get_experiment_by_name("tracked-test").experiment_id
    (parent,) = client.search_runs([experiment], "tags.kind = 'sweep'")
    children = client.search_runs([experiment], "tags.kind = 'trial'")
    assert parent.data.tags["sweep_id"] == tracked["sweep"].name
    assert sorted(run.data.tags["trial_id"] for run in children) == sorted(
        row["trial_id"] for row in tracked["trials"])
    best = max(tracked["trials"], key=lambda row: row["val_accuracy"])
    assert parent.data.tags["best_trial_id"] == best["trial_id"]
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(best["val_accuracy"])
    assert "best/model.keras" in {a.path for a in client.list_artifacts(parent.info.run_id,
                                                                         "best")}
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        row = next(r for r in tracked["trials"] if r["trial_id"] == run.data.tags["trial_id"])
        assert float(run.data.params["learning_rate"]) == row["learning_rate"]
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [metric.step for metric in history] == [1, 2, 3]
        assert run.data.metrics["final_test_accuracy"] == pytest.approx(row["test_accuracy"])
        confusion = client.download_artifacts(run.info.run_id, "confusion.csv",
                                              str(tracked["folder"]))
        lines = Path(confusion).read_text().strip().splitlines()
        assert lines[0] == "true_label,predicted_label,count" and len(lines) == 101


def test_a_resumed_sweep_logs_nothing_twice(tracked):
    from mlflow.tracking import MlflowClient

    assert main(["--resume", tracked["sweep"].name, "--out", str(tracked["folder"] / "runs"),
                 "--no-progress", "--mlflow", tracked["store"]]) == 0
    client = MlflowClient(tracking_uri=tracked["store"])
    experiment = client.get_experiment_by_name("tracked-test").experiment_id
    assert len(client.search_runs([experiment], "tags.kind = 'trial'")) == 3
    assert len(client.search_runs([experiment], "tags.kind = 'sweep'")) == 1


def test_tensorboard_event_files_hold_every_epoch(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for row in tracked["trials"]:
        events = EventAccumulator(str(tracked["folder"] / "tb" / tracked["sweep"].name
                                      / row["trial_id"]))
        events.Reload()
        assert set(events.Tags()["scalars"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        values = [event.value for event in events.Scalars("val_accuracy")]
        assert len(values) == 3 and values[-1] == pytest.approx(row["val_accuracy"])
