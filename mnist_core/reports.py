"""Report tables: typed pyarrow schemas and the rows a trial contributes to each.

Every table is long-form and keyed by ``trial_id`` so that sweeps, single trials and scoring
jobs read the same way in pandas, Polars or DuckDB. Columns are documented in docs/reports.md.
The config columns derive from ``TrialConfig``'s fields (``config.hyperparameter_fields``), so a
new hyperparameter gets its column without an edit here. ``best_trial`` is the one rule for
which trial a sweep chose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from mnist_core import charts, storage
from mnist_core.config import (
    HYPERPARAMETERS,
    NUM_CLASSES,
    DataConfig,
    hyperparameter_fields,
    hyperparameter_text,
)
from mnist_core.html import figure, markup, page, table, text, write_page
from mnist_core.trial import TrialResult

_COLUMN_TYPES = {bool: pa.bool_(), int: pa.int32(), float: pa.float64(), str: pa.string(),
                 tuple: pa.list_(pa.int32())}


def _column(item) -> pa.Field:
    """The report column of a hyperparameter field: by its default's type, unless it says."""
    named = item.metadata["column"]
    kind = pa.type_for_alias(named) if named else _COLUMN_TYPES[type(item.default)]
    return pa.field(item.name, kind)


CONFIG_FIELDS = [
    *(_column(item) for item in hyperparameter_fields()),
    pa.field("dataset", pa.string()),
    pa.field("validation_split", pa.float64()),
]
METRIC_FIELDS = [
    pa.field("params", pa.int64()),
    pa.field("best_epoch", pa.int32()),
    pa.field("val_accuracy", pa.float64()),
    pa.field("val_loss", pa.float64()),
    pa.field("val_images", pa.int32()),
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
    pa.field("pack_id", pa.string()),
    pa.field("pack_size", pa.int32()),
    pa.field("rung", pa.int32()),
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


CHANCE_MARGIN = 0.05  # an ok trial this close to 1/NUM_CLASSES trained to chance level


def at_chance(accuracy):
    """Whether a validation accuracy (a number, or a numpy array of them) is at chance level:
    the one rule for "trained to chance", per row or over every trial at once."""
    return accuracy <= 1 / NUM_CLASSES + CHANCE_MARGIN


def diverged(row: dict) -> bool:
    """Whether an ok trial's validation accuracy is at chance level (it learned nothing)."""
    accuracy = row.get("val_accuracy")
    return row["status"] == "ok" and accuracy is not None and at_chance(accuracy)


def best_trial(rows: list[dict]) -> dict | None:
    """The trial a sweep chooses, or None when no trial is ok: among ``ok`` rows the highest
    validation accuracy; ties go to the lower validation loss, then to the smaller trial id
    (ids start with the trial's position, so the earlier trial). The test set never decides."""
    ok = [row for row in rows if row["status"] == "ok"]
    return min(ok, key=_choice_key, default=None)


def _choice_key(row: dict) -> tuple:
    loss = row.get("val_loss")
    return (-(row["val_accuracy"] if row["val_accuracy"] is not None else float("-inf")),
            loss if loss is not None else float("inf"), trial_position(row["trial_id"]))


def trial_position(trial_id: str) -> tuple[int, str]:
    """Sorts trial ids in trial order: by the position they start with (``t0042-…``, and past
    9,999 ``t10000-…``, which plain string order would put before ``t1001-…``)."""
    digits = trial_id[1:].split("-", 1)[0]
    return (int(digits), trial_id) if digits.isdigit() else (-1, trial_id)


def trust_in(chosen: dict | None, others: Sequence[float]) -> dict | None:
    """How far the chosen trial's validation accuracy can be trusted against ``others``, the
    validation accuracies of every other ok trial (an array at a million trials, not a
    million rows): the validation set's size, the binomial standard error of the chosen
    accuracy, sqrt(p(1 - p) / n), and how many others lie within one standard error of it
    (any of them could be the better one). None without a chosen trial or a recorded
    validation size."""
    if chosen is None or not chosen.get("val_images"):
        return None
    accuracy, images = chosen["val_accuracy"], chosen["val_images"]
    error = math.sqrt(accuracy * (1 - accuracy) / images)
    close = int(np.count_nonzero(np.asarray(others, float) >= accuracy - error))
    return {"val_images": images, "val_accuracy": accuracy, "standard_error": error,
            "within_one_standard_error": close}


def describe_selection(statistics: dict) -> str:
    """One sentence on the chosen trial's validation figure, for the console and the page."""
    others = statistics["within_one_standard_error"]
    return text("chosen on {val_images:,} validation images: {val_accuracy:.4f} ± "
                "{standard_error:.4f} (one standard error); {0:,} other trial{1} within one "
                "standard error of it", others, "s" if others != 1 else "", **statistics)


def ranked_trials(rows: list[dict]) -> list[dict]:
    """The ``ok`` rows, best first by ``best_trial``'s rule."""
    return sorted((row for row in rows if row["status"] == "ok"), key=_choice_key)


def metric_values(result: TrialResult) -> dict:
    """The headline metrics of one finished trial (``METRIC_FIELDS``)."""
    return {
        "params": result.params, "best_epoch": result.best_epoch,
        "val_accuracy": result.val_accuracy, "val_loss": result.val_loss,
        "val_images": result.val_images or None,
        "test_accuracy": result.evaluation.accuracy, "test_loss": result.evaluation.loss,
        "train_seconds": result.train_seconds,
    }


def metrics_row(trial_id: str, result: TrialResult, dataset: str,
                validation_split: float) -> dict:
    """The config and headline metrics of one finished trial, as one row."""
    return {"trial_id": trial_id, **result.config.as_record(), "dataset": dataset,
            "validation_split": validation_split, **metric_values(result)}


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
    """Write one trial's model, its four Parquet reports and its page to ``out``."""
    row = metrics_row(trial_id, result, data_config.dataset, data_config.validation_split)
    tables = {
        "metrics": ([row], METRICS_SCHEMA),
        "epochs": (epoch_rows(trial_id, result.history), EPOCHS_SCHEMA),
        "confusion": (confusion_rows(trial_id, result.evaluation.confusion), CONFUSION_SCHEMA),
        "per_class": (per_class_rows(trial_id, result), PER_CLASS_SCHEMA),
    }
    for name, (rows, schema) in tables.items():
        storage.write_rows(storage.join(out, f"{name}.parquet"), rows, schema)
    storage.write_bytes(storage.join(out, "model.keras"), result.model_bytes)
    write_trial_page(out, trial_id, row, tables["epochs"][0], tables["confusion"][0])


def write_trial_page(out: str, trial_id: str, row: dict, epochs: list[dict],
                     cells: list[dict]) -> str:
    """``<out>/report.html`` of one trial: its metrics, the hyperparameters it trained with,
    its confusion matrix and learning curves, drawn by the same chart functions as a sweep's
    page. Returns its location."""
    summary = markup("<p>{dataset}: test accuracy {test_accuracy:.4f}, test loss "
                     "{test_loss:.4f}; the weights of epoch {best_epoch} of {epochs}; "
                     "{params:,} parameters.</p>", **{name: row.get(name) for name in (
                         "dataset", "test_accuracy", "test_loss", "best_epoch", "epochs",
                         "params")})
    settings = [{"hyperparameter": name, "value": hyperparameter_text(row.get(name))}
                for name in HYPERPARAMETERS]
    return write_page(out, page(f"Trial {trial_id}", [
        summary, "<h2>Hyperparameters</h2>",
        table("hyperparameters", ["hyperparameter", "value"], settings, [], ""),
        "<div class=grid>",
        figure(charts.confusion(cells, "Confusion matrix (test set)", row.get("dataset")),
               "confusion"),
        figure(charts.learning_curves(epochs, "Learning curves"), "curves"), "</div>"]))
