"""Experiment tracking: a sweep's trials in MLflow and TensorBoard, logged by the driver.

Optional (``pip install -e '.[tracking]'``); nothing here is imported unless a sweep asks for
it. Logging happens on the driver, from the sweep's own reports once a run ends, so workers
need no tracking credentials, a killed sweep logs what it had when resumed, and a resumed
sweep logs only the trials not logged yet:

- MLflow (``[tracking] mlflow = "sqlite:///mlruns.db"``, or any tracking URI): one parent run
  per sweep (its config as an artifact, the best model, the best trial's metrics), one child
  run per trial with its hyperparameters as params, loss and accuracy per epoch as metrics
  (step = epoch), test metrics, status and the confusion matrix as ``confusion.csv``.
- TensorBoard (``[tracking] tensorboard = "DIR"``): per trial, an event file in
  ``DIR/<sweep_id>/<trial_id>/`` with loss, accuracy, val_loss and val_accuracy per epoch, for
  ``tensorboard --logdir DIR``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

from mnist_core.config import HYPERPARAMETERS
from mnist_core.errors import ConfigError
from mnist_core.reports import best_trial
from mnist_core.sweep.config import Tracking

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
TRIAL_METRICS = ("val_accuracy", "val_loss", "test_accuracy", "test_loss", "best_epoch",
                 "train_seconds")


def log_sweep(tracking: Tracking, folder: str, sweep_id: str,
              tables: dict[str, pa.Table]) -> None:
    """Log every trial of the sweep that is not logged yet."""
    trials = tables["trials"].to_pylist()
    epochs = _by_trial(tables["epochs"].to_pylist())
    if tracking.tensorboard:
        _tensorboard(Path(tracking.tensorboard) / sweep_id, trials, epochs)
    if tracking.mlflow:
        _mlflow(tracking, folder, sweep_id, trials, epochs,
                _by_trial(tables["confusion"].to_pylist()))


def _by_trial(rows: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["trial_id"], []).append(row)
    return grouped


def _tensorboard(root: Path, trials: list[dict], epochs: dict[str, list[dict]]) -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    for trial in trials:
        folder = root / trial["trial_id"]
        if folder.exists() or not epochs.get(trial["trial_id"]):
            continue
        writer = EventFileWriter(str(folder))
        for row in epochs[trial["trial_id"]]:
            values = [Summary.Value(tag=name, simple_value=row[name]) for name in EPOCH_METRICS
                      if row.get(name) is not None]
            writer.add_event(Event(wall_time=time.time(), step=row["epoch"],
                                   summary=Summary(value=values)))
        writer.close()


def _mlflow(tracking: Tracking, folder: str, sweep_id: str, trials: list[dict], epochs: dict,
            confusion: dict) -> None:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("[tracking] mlflow needs the tracking extra: "
                          "pip install -e '.[tracking]'") from None
    client = MlflowClient(tracking_uri=tracking.mlflow)
    experiment = _experiment(client, tracking)
    parent = _parent_run(client, experiment, sweep_id, folder)
    done = {run.data.tags.get("trial_id") for run in client.search_runs(
        [experiment], f"tags.sweep_id = '{sweep_id}' and tags.kind = 'trial'", max_results=50_000)}
    for trial in trials:
        if trial["trial_id"] not in done:
            _log_trial(client, experiment, parent, trial, epochs.get(trial["trial_id"], []),
                       confusion.get(trial["trial_id"], []))
    _log_best(client, parent, folder, trials)


def _experiment(client, tracking: Tracking) -> str:
    found = client.get_experiment_by_name(tracking.experiment)
    if found is not None:
        return found.experiment_id
    location = None
    if tracking.mlflow.startswith("sqlite:///"):
        database = Path(tracking.mlflow.removeprefix("sqlite:///")).resolve()
        location = (database.parent / "mlartifacts").as_uri()
    return client.create_experiment(tracking.experiment, artifact_location=location)


def _parent_run(client, experiment: str, sweep_id: str, folder: str) -> str:
    runs = client.search_runs([experiment], f"tags.sweep_id = '{sweep_id}' and "
                                            "tags.kind = 'sweep'")
    if runs:
        return runs[0].info.run_id
    run = client.create_run(experiment, run_name=sweep_id,
                            tags={"sweep_id": sweep_id, "kind": "sweep", "reports": folder})
    from mnist_core import storage

    config = storage.read_bytes(storage.join(folder, "sweep.toml")).decode()
    client.log_text(run.info.run_id, config, "sweep.toml")
    return run.info.run_id


def _log_trial(client, experiment: str, parent: str, trial: dict, epochs: list[dict],
               confusion: list[dict]) -> None:
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment, run_name=trial["trial_id"], tags={
        "mlflow.parentRunId": parent, "sweep_id": trial["sweep_id"], "kind": "trial",
        "trial_id": trial["trial_id"], "status": trial["status"], "pack_id": trial["pack_id"]
        or ""})
    now = int(time.time() * 1000)
    params = [Param(name, str(trial[name])) for name in HYPERPARAMETERS]
    metrics = [Metric(name, row[name], now, row["epoch"]) for row in epochs
               for name in EPOCH_METRICS if row.get(name) is not None]
    metrics += [Metric(f"final_{name}", float(trial[name]), now, 0) for name in TRIAL_METRICS
                if trial.get(name) is not None]
    client.log_batch(run.info.run_id, metrics=metrics, params=params)
    if confusion:
        lines = ["true_label,predicted_label,count"] + [
            f"{c['true_label']},{c['predicted_label']},{c['count']}" for c in confusion]
        client.log_text(run.info.run_id, "\n".join(lines) + "\n", "confusion.csv")
    client.set_terminated(run.info.run_id, "FAILED" if trial["status"] == "failed"
                          else "FINISHED")


def _log_best(client, parent: str, folder: str, trials: list[dict]) -> None:
    from mnist_core import storage

    best = best_trial(trials)
    if best is None:
        return
    client.set_tag(parent, "best_trial_id", best["trial_id"])
    for name in ("val_accuracy", "test_accuracy"):
        client.log_metric(parent, f"best_{name}", float(best[name]))
    model = storage.join(folder, "best", "model.keras")
    if storage.exists(model) and not storage.is_uri(model):
        client.log_artifact(parent, model, "best")
