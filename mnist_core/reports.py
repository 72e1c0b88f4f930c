"""Report tables: typed pyarrow schemas and the rows a trial contributes to each.

Every table is long-form and keyed by ``trial_id`` so that sweeps, single trials and scoring
jobs read the same way in pandas, Polars or DuckDB. Columns are documented in docs/reports.md.
"""

from __future__ import annotations

import pyarrow as pa

from mnist_core import storage
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


def write_rows(location: str, rows: list[dict], schema: pa.Schema) -> None:
    """Atomically write ``rows`` as a Parquet file with ``schema``."""
    storage.write_table(location, pa.Table.from_pylist(rows, schema=schema))


def read_rows(location: str) -> list[dict]:
    """Rows of an existing report, or an empty list when there is none yet."""
    return storage.read_table(location).to_pylist() if storage.exists(location) else []
