"""A sweep in MLflow: one parent run per sweep, one child run per trial, the best model as an
MLflow model.

The parent run carries the sweep's config as params (``sweep.*``, ``grid.*``, …, one per TOML
key) and ``sweep.toml`` as an artifact, and ends ``FINISHED``, ``FAILED`` (some trial failed)
or ``KILLED`` (the sweep was interrupted; a resume reopens and ends it). Each child run carries
its trial's hyperparameters as params, loss and accuracy per epoch (step = epoch, timestamps
spread over the trial's training time, which is also the run's duration), test metrics and
``confusion.csv``. The best model is logged with MLflow's Keras flavour and a signature
(``best_model``), so ``mlflow.register_model(f"runs:/{run_id}/best_model", name)`` works.
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

from mnist_core import storage
from mnist_core.best import model_path as chosen_model_path
from mnist_core.config import HYPERPARAMETERS
from mnist_core.errors import ConfigError
from mnist_core.prediction import load_model
from mnist_core.reports import best_trial
from mnist_core.sweep.config import Tracking

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
TRIAL_METRICS = ("val_accuracy", "val_loss", "test_accuracy", "test_loss", "best_epoch",
                 "train_seconds")
BEST_MODEL = "best_model"
_PARAM_LIMIT = 500  # MLflow's longest param value


def log_to_mlflow(tracking: Tracking, folder: str, sweep_id: str, trials: list[dict],
                  epochs: dict, confusion: dict, status: str) -> str:
    """Log what is not logged yet, the best model if it changed, and end the parent run;
    return the parent run's id."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("[tracking] mlflow needs the tracking extra: "
                          "pip install -e '.[tracking]'") from None
    client = MlflowClient(tracking_uri=tracking.mlflow)
    experiment = _experiment(client, tracking)
    parent = _parent_run(client, experiment, sweep_id, folder)
    done = {run.data.tags.get("trial_id") for run in client.search_runs(
        [experiment], f"tags.sweep_id = '{sweep_id}' and tags.kind = 'trial'",
        max_results=50_000)}
    for trial in trials:
        if trial["trial_id"] not in done:
            _log_trial(client, experiment, parent, trial, epochs.get(trial["trial_id"], []),
                       confusion.get(trial["trial_id"], []))
    _log_best(client, tracking, parent, folder, trials)
    client.set_terminated(parent, status)
    return parent


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
    """The sweep's run: found again on resume (and set running), else created with the
    config as params and ``sweep.toml`` as an artifact."""
    from mlflow.entities import Param

    runs = client.search_runs([experiment], f"tags.sweep_id = '{sweep_id}' and "
                                            "tags.kind = 'sweep'")
    if runs:
        client.update_run(runs[0].info.run_id, status="RUNNING")
        return runs[0].info.run_id
    run = client.create_run(experiment, run_name=sweep_id,
                            tags={"sweep_id": sweep_id, "kind": "sweep", "reports": folder})
    text = storage.read_bytes(storage.join(folder, "sweep.toml")).decode()
    params = [Param(name, value) for name, value in config_params(text).items()]
    client.log_batch(run.info.run_id, params=params)
    client.log_text(run.info.run_id, text, "sweep.toml")
    return run.info.run_id


def config_params(text: str) -> dict[str, str]:
    """A sweep TOML as flat MLflow params: ``section.key`` -> the value as JSON."""
    document = tomllib.loads(text)
    return {f"{section}.{key}": json.dumps(value)[:_PARAM_LIMIT]
            for section, values in document.items() for key, value in values.items()}


def _log_trial(client, experiment: str, parent: str, trial: dict, epochs: list[dict],
               confusion: list[dict]) -> None:
    from mlflow.entities import Metric, Param

    end = _milliseconds(trial.get("finished_at")) or int(time.time() * 1000)
    start = end - int(1000 * (trial.get("train_seconds") or 0))
    run = client.create_run(experiment, run_name=trial["trial_id"], start_time=start, tags={
        "mlflow.parentRunId": parent, "sweep_id": trial["sweep_id"], "kind": "trial",
        "trial_id": trial["trial_id"], "status": trial["status"],
        "pack_id": trial["pack_id"] or ""})
    count = max(len(epochs), 1)
    params = [Param(name, str(trial[name])) for name in HYPERPARAMETERS]
    metrics = [Metric(name, row[name], start + (end - start) * row["epoch"] // count,
                      row["epoch"]) for row in epochs
               for name in EPOCH_METRICS if row.get(name) is not None]
    metrics += [Metric(f"final_{name}", float(trial[name]), end, 0) for name in TRIAL_METRICS
                if trial.get(name) is not None]
    client.log_batch(run.info.run_id, metrics=metrics, params=params)
    if confusion:
        lines = ["true_label,predicted_label,count"] + [
            f"{c['true_label']},{c['predicted_label']},{c['count']}" for c in confusion]
        client.log_text(run.info.run_id, "\n".join(lines) + "\n", "confusion.csv")
    client.set_terminated(run.info.run_id, "FAILED" if trial["status"] == "failed"
                          else "FINISHED", end_time=end)


def _log_best(client, tracking: Tracking, parent: str, folder: str, trials: list[dict]) -> None:
    """Tag and measure the best trial; log its model as an MLflow model when it changed."""
    best = best_trial(trials)
    if best is None:
        return
    previous = client.get_run(parent).data.tags.get("best_trial_id")
    client.set_tag(parent, "best_trial_id", best["trial_id"])
    for name in ("val_accuracy", "test_accuracy"):
        client.log_metric(parent, f"best_{name}", float(best[name]))
    model = chosen_model_path(folder)
    if previous != best["trial_id"] and storage.exists(model):
        _log_model(tracking, parent, model)


def _log_model(tracking: Tracking, parent: str, location: str) -> None:
    """The ``.keras`` file at ``location`` as an MLflow Keras model with a signature:
    raw pixels (float32, n × input_dim) in, class probabilities (n × 10) out."""
    import mlflow
    import numpy as np
    from mlflow.models import infer_signature


    model = load_model(location)
    pixels = np.zeros((2, int(model.inputs[0].shape[-1])), np.float32)
    signature = infer_signature(pixels, model.predict(pixels, verbose=0))
    mlflow.set_tracking_uri(tracking.mlflow)
    with mlflow.start_run(run_id=parent, nested=False):
        mlflow.keras.log_model(model, name=BEST_MODEL, signature=signature,
                               pip_requirements=["keras", "tensorflow", "numpy"])


def _milliseconds(moment) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)
