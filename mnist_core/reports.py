"""Report tables: typed pyarrow schemas and the rows a trial contributes to each.

Every table is long-form and keyed by ``trial_id`` so that sweeps, single trials and scoring
jobs read the same way in pandas, Polars or DuckDB. Columns are documented in docs/reports.md.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa

from mnist_core import plots, storage
from mnist_core.config import DataConfig
from mnist_core.trial import TrialResult

CONFIG_FIELDS = [
    pa.field("hidden_units", pa.list_(pa.int32())),
    pa.field("activation", pa.string()),
    pa.field("optimizer", pa.string()),
    pa.field("learning_rate", pa.float64()),
    pa.field("batch_size", pa.int32()),
    pa.field("epochs", pa.int32()),
    pa.field("seed", pa.int64()),
    pa.field("dataset", pa.string()),
    pa.field("validation_split", pa.float64()),
]
METRIC_FIELDS = [
    pa.field("params", pa.int64()),
    pa.field("val_accuracy", pa.float64()),
    pa.field("val_loss", pa.float64()),
    pa.field("test_accuracy", pa.float64()),
    pa.field("test_loss", pa.float64()),
    pa.field("train_seconds", pa.float64()),
]
METRICS_SCHEMA = pa.schema([pa.field("trial_id", pa.string()), *CONFIG_FIELDS, *METRIC_FIELDS])
TRIALS_SCHEMA = pa.schema([
    pa.field("sweep_id", pa.string()),
    pa.field("trial_id", pa.string()),
    pa.field("status", pa.string()),
    pa.field("error", pa.string()),
    pa.field("attempts", pa.int32()),
    *CONFIG_FIELDS,
    *METRIC_FIELDS,
    pa.field("node", pa.string()),
    pa.field("gpu_ids", pa.list_(pa.string())),
    pa.field("worker_pid", pa.int64()),
    pa.field("worker_setup_seconds", pa.float64()),
    pa.field("finished_at", pa.timestamp("s", tz="UTC")),
])
EPOCHS_SCHEMA = pa.schema([
    pa.field("trial_id", pa.string()),
    pa.field("epoch", pa.int32()),
    pa.field("loss", pa.float64()),
    pa.field("accuracy", pa.float64()),
    pa.field("val_loss", pa.float64()),
    pa.field("val_accuracy", pa.float64()),
])
CONFUSION_SCHEMA = pa.schema([
    pa.field("trial_id", pa.string()),
    pa.field("true_label", pa.int32()),
    pa.field("predicted_label", pa.int32()),
    pa.field("count", pa.int64()),
])
PER_CLASS_SCHEMA = pa.schema([
    pa.field("trial_id", pa.string()),
    pa.field("label", pa.int32()),
    pa.field("precision", pa.float64()),
    pa.field("recall", pa.float64()),
    pa.field("f1", pa.float64()),
    pa.field("support", pa.int64()),
])


def metrics_row(trial_id: str, result: TrialResult, dataset: str,
                validation_split: float) -> dict:
    """The config and headline metrics of one finished trial, as one row."""
    return {
        "trial_id": trial_id, **result.config.as_record(), "dataset": dataset,
        "validation_split": validation_split, "params": result.params,
        "val_accuracy": result.val_accuracy, "val_loss": result.val_loss,
        "test_accuracy": result.evaluation.accuracy, "test_loss": result.evaluation.loss,
        "train_seconds": result.train_seconds,
    }


def epoch_rows(trial_id: str, history: dict[str, list[float]]) -> list[dict]:
    """One row per epoch; validation columns are null without a validation split."""
    epochs = len(history.get("loss", []))
    return [
        {"trial_id": trial_id, "epoch": index + 1,
         **{key: history[key][index] if key in history else None
            for key in ("loss", "accuracy", "val_loss", "val_accuracy")}}
        for index in range(epochs)
    ]


def confusion_rows(trial_id: str, confusion) -> list[dict]:
    """The confusion matrix in long form: 100 rows, zeros included."""
    return [
        {"trial_id": trial_id, "true_label": true, "predicted_label": predicted,
         "count": int(confusion[true, predicted])}
        for true in range(confusion.shape[0]) for predicted in range(confusion.shape[1])
    ]


def per_class_rows(trial_id: str, result: TrialResult) -> list[dict]:
    """Precision, recall (sensitivity), F1 and support for each label 0–9."""
    evaluation = result.evaluation
    return [
        {"trial_id": trial_id, "label": label, "precision": float(evaluation.precision[label]),
         "recall": float(evaluation.recall[label]), "f1": float(evaluation.f1[label]),
         "support": int(evaluation.support[label])}
        for label in range(len(evaluation.support))
    ]


def write_trial_reports(out: str, trial_id: str, result: TrialResult,
                        data_config: DataConfig) -> None:
    """Write one trial's model, its four Parquet reports and its two plots to ``out``."""
    row = metrics_row(trial_id, result, data_config.dataset, data_config.validation_split)
    tables = {
        "metrics": ([row], METRICS_SCHEMA),
        "epochs": (epoch_rows(trial_id, result.history), EPOCHS_SCHEMA),
        "confusion": (confusion_rows(trial_id, result.evaluation.confusion), CONFUSION_SCHEMA),
        "per_class": (per_class_rows(trial_id, result), PER_CLASS_SCHEMA),
    }
    for name, (rows, schema) in tables.items():
        storage.write_rows(storage.join(out, f"{name}.parquet"), rows, schema)
    title = f"{data_config.dataset}: test accuracy {result.evaluation.accuracy:.4f}"
    write_model_and_plots(out, result, title)


def write_model_and_plots(folder: str, result: TrialResult, title: str) -> None:
    """Write a trial's ``model.keras``, ``confusion.png`` and ``learning_curves.png``."""
    storage.write_bytes(storage.join(folder, "model.keras"), result.model_bytes)
    storage.write_bytes(storage.join(folder, "confusion.png"),
                        plots.confusion_heatmap(result.evaluation.confusion, title))
    storage.write_bytes(storage.join(folder, "learning_curves.png"),
                        plots.learning_curves(result.history, title))


class SweepReport:
    """The reports of one sweep, kept in memory and rewritten atomically as trials finish.

    Folder layout: ``trials``, ``epochs``, ``confusion`` and ``per_class`` Parquet files,
    ``sweep.toml`` (the config that made it), and ``best/`` (model, plots, ``best.json``).
    ``trials.parquet`` is written last on every flush and is the record of what finished: rows
    of other tables whose trial is not in it (a flush cut short) are dropped when a sweep
    resumes, so every trial appears exactly once in every report.
    """

    DETAIL_TABLES = {"epochs": EPOCHS_SCHEMA, "confusion": CONFUSION_SCHEMA,
                     "per_class": PER_CLASS_SCHEMA}

    def __init__(self, folder: str, sweep_id: str, dataset: str, validation_split: float):
        self.folder, self.sweep_id = folder, sweep_id
        self.dataset, self.validation_split = dataset, validation_split
        self.trials = storage.read_rows(self._path("trials"))
        finished = {row["trial_id"] for row in self.trials}
        self.details = {name: [row for row in storage.read_rows(self._path(name))
                               if row["trial_id"] in finished]
                        for name in self.DETAIL_TABLES}
        ok = [row for row in self.trials if row["status"] == "ok"]
        self.best = max(ok, key=lambda row: row["val_accuracy"], default=None)

    @property
    def finished_ids(self) -> set[str]:
        """Ids of the trials already recorded, ok or failed."""
        return {row["trial_id"] for row in self.trials}

    def add_ok(self, trial_id: str, result: TrialResult, placement: dict, attempts: int) -> None:
        """Record a finished trial, keep its model if it is the best so far, and flush."""
        row = self._base_row(trial_id, "ok", None, attempts)
        row |= metrics_row(trial_id, result, self.dataset, self.validation_split) | placement
        self.details["epochs"] += epoch_rows(trial_id, result.history)
        self.details["confusion"] += confusion_rows(trial_id, result.evaluation.confusion)
        self.details["per_class"] += per_class_rows(trial_id, result)
        if self.best is None or row["val_accuracy"] > self.best["val_accuracy"]:
            self._write_best(row, result)
        self._append(row)

    def add_failed(self, trial_id: str, config_record: dict, error: str, attempts: int) -> None:
        """Record a trial that raised or whose worker kept dying, and flush."""
        row = self._base_row(trial_id, "failed", error, attempts) | config_record
        self._append(row | {"dataset": self.dataset, "validation_split": self.validation_split})

    def write_hyperparameter_plot(self, names: list[str]) -> None:
        """Plot test accuracy against each swept hyperparameter for the ok trials."""
        ok = [row for row in self.trials if row["status"] == "ok"]
        if ok and names:
            storage.write_bytes(self._path("best/accuracy_by_hyperparameter", ".png"),
                                plots.accuracy_by_hyperparameter(ok, names))

    def _base_row(self, trial_id: str, status: str, error: str | None, attempts: int) -> dict:
        finished_at = datetime.now(UTC).replace(microsecond=0)
        return {"sweep_id": self.sweep_id, "trial_id": trial_id, "status": status,
                "error": error, "attempts": attempts, "finished_at": finished_at}

    def _append(self, row: dict) -> None:
        self.trials.append(row)
        for name, schema in self.DETAIL_TABLES.items():
            storage.write_rows(self._path(name), self.details[name], schema)
        storage.write_rows(self._path("trials"), self.trials, TRIALS_SCHEMA)

    def _write_best(self, row: dict, result: TrialResult) -> None:
        self.best = row
        title = f"best trial {row['trial_id']}: test accuracy {row['test_accuracy']:.4f}"
        write_model_and_plots(storage.join(self.folder, "best"), result, title)
        summary = {key: row[key] for key in ("trial_id", "val_accuracy", "test_accuracy")}
        storage.write_bytes(self._path("best/best", ".json"),
                            json.dumps(summary | result.config.as_record(), indent=2).encode())

    def _path(self, name: str, suffix: str = ".parquet") -> str:
        return storage.join(self.folder, *f"{name}{suffix}".split("/"))
