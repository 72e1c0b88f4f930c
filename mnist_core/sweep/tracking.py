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

from mnist_core.sweep.config import Tracking

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def log_sweep(tracking: Tracking, folder: str, sweep_id: str, tables: dict[str, pa.Table],
              status: str = "FINISHED") -> None:
    """Log every trial of the sweep that is not logged yet; ``status`` is how the sweep's run
    ended (MLflow's ``FINISHED``, ``FAILED`` or ``KILLED``)."""
    trials = tables["trials"].to_pylist()
    epochs = by_trial(tables["epochs"].to_pylist())
    if tracking.tensorboard:
        _tensorboard(Path(tracking.tensorboard) / sweep_id, trials, epochs)
    if tracking.mlflow:
        from mnist_core.sweep.mlflow_runs import log_to_mlflow

        log_to_mlflow(tracking, folder, sweep_id, trials, epochs,
                      by_trial(tables["confusion"].to_pylist()), status)


def by_trial(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows grouped by their ``trial_id``."""
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
