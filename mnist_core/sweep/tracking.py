"""Experiment tracking: a sweep's trials in MLflow and TensorBoard, logged by the driver.

Optional (``pip install -e '.[tracking]'``); nothing here is imported unless a sweep asks for
it. Logging happens on the driver, from the sweep's own reports once a run ends, so workers
need no tracking credentials, a killed sweep logs what it had when resumed, and a resumed
sweep logs only the trials not logged yet:

- MLflow (``[tracking] mlflow = "default"``: ``<out>/mlflow.db``; or any tracking URI): see
  ``mlflow_runs``.
- TensorBoard (``[tracking] tensorboard = "DIR"``): per trial, an event file in
  ``DIR/<sweep_id>/<trial_id>/`` with loss, accuracy, val_loss and val_accuracy per epoch,
  test accuracy, and an HParams session (its hyperparameters and status); the sweep's HParams
  experiment in ``DIR/<sweep_id>/_hparams_experiment/``. ``tensorboard --logdir DIR`` shows
  the curves, and the HParams tab every trial with its settings and metrics.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

from mnist_core.config import HYPERPARAMETERS, hyperparameter_fields, hyperparameter_text
from mnist_core.sweep.config import Tracking
from mnist_core.sweep.mlflow_runs import log_to_mlflow

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
_EXPERIMENT = "_hparams_experiment"  # the run holding the sweep's HParams experiment


def log_sweep(tracking: Tracking, folder: str, sweep_id: str, tables: dict[str, pa.Table],
              status: str = "FINISHED") -> tuple[str, ...]:
    """Log every trial of the sweep that is not logged yet; ``status`` is how the sweep's run
    ended (MLflow's ``FINISHED``, ``FAILED`` or ``KILLED``). Returns where each tracker has
    the sweep and how to open it, a line each."""
    trials = tables["trials"].to_pylist()
    epochs = by_trial(tables["epochs"].to_pylist())
    where = []
    if tracking.tensorboard:
        _tensorboard(Path(tracking.tensorboard) / sweep_id, trials, epochs)
        where.append(f"tensorboard: {Path(tracking.tensorboard) / sweep_id} (open with: "
                     f"tensorboard --logdir {tracking.tensorboard})")
    if tracking.mlflow:
        run_id = log_to_mlflow(tracking, folder, sweep_id, trials, epochs,
                               by_trial(tables["confusion"].to_pylist()), status)
        where.append(f"mlflow: run {run_id} ({sweep_id}) in {tracking.mlflow} (open with: "
                     f"mlflow ui --backend-store-uri {tracking.mlflow})")
    return tuple(where)


def by_trial(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows grouped by their ``trial_id``."""
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["trial_id"], []).append(row)
    return grouped


def _tensorboard(root: Path, trials: list[dict], epochs: dict[str, list[dict]]) -> None:
    """Per trial, its scalars and an HParams session; for the sweep, the HParams experiment
    (every hyperparameter and the metrics), so TensorBoard's HParams tab lists every trial."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    if not (root / _EXPERIMENT).exists():
        writer = EventFileWriter(str(root / _EXPERIMENT))
        writer.add_event(Event(wall_time=time.time(),
                               summary=_summary(_hparams_experiment())))
        writer.close()
    for trial in trials:
        folder = root / trial["trial_id"]
        if folder.exists() or not epochs.get(trial["trial_id"]):
            continue
        writer = EventFileWriter(str(folder))
        for summary in _trial_summaries(trial, epochs[trial["trial_id"]]):
            writer.add_event(summary)
        writer.close()


def _hparams_experiment():
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams import summary as hparams

    kinds = {bool: api_pb2.DATA_TYPE_BOOL, str: api_pb2.DATA_TYPE_STRING}
    infos = [api_pb2.HParamInfo(name=item.name, type=kinds.get(
        type(item.default), api_pb2.DATA_TYPE_FLOAT64)) for item in hyperparameter_fields()]
    metrics = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=name))
               for name in (*EPOCH_METRICS, "test_accuracy")]
    return hparams.experiment_pb(infos, metrics)


def _trial_summaries(trial: dict, epochs: list[dict]) -> list:
    """The events of one trial: its HParams session start, a scalar event per epoch, its
    test accuracy, and the session's end with the trial's status."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams import summary as hparams

    now = time.time()
    values = {name: hyperparameter_text(trial[name]) for name in HYPERPARAMETERS}
    events = [Event(wall_time=now, summary=_summary(hparams.session_start_pb(values)))]
    for row in epochs:
        scalars = [Summary.Value(tag=name, simple_value=row[name]) for name in EPOCH_METRICS
                   if row.get(name) is not None]
        events.append(Event(wall_time=now, step=row["epoch"], summary=Summary(value=scalars)))
    if trial.get("test_accuracy") is not None:
        events.append(Event(wall_time=now, step=len(epochs), summary=Summary(value=[
            Summary.Value(tag="test_accuracy", simple_value=trial["test_accuracy"])])))
    status = api_pb2.STATUS_SUCCESS if trial["status"] != "failed" else api_pb2.STATUS_FAILURE
    events.append(Event(wall_time=now, summary=_summary(hparams.session_end_pb(status))))
    return events


def _summary(proto):
    """The hparams plugin's summary as the event writer's ``Summary`` class (with TensorFlow
    installed the plugin builds TensorFlow's own, a different class of the same message)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    return Summary.FromString(proto.SerializeToString())
