"""A scoring run's ``report.html``: what the folder holds and from which model (sweep, trial,
path — not only a hash), accuracy and the confusion matrix when the inputs carry labels, the
predicted-label distribution, how confident the model was, per-shard counts and the failures
by reason. Rebuilt from the output folder's files alone.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

from mnist_core import best, charts, storage
from mnist_core.config import NUM_CLASSES
from mnist_core.errors import DataFormatError
from mnist_core.html import figure, markup, page, table, write_page
from mnist_core.scoring.manifest import FAILURES_SCHEMA, MANIFEST_SCHEMA

_SHARD_COLUMNS = ["path", "status", "rows", "failed_rows", "model_id", "scored_at"]


def scoring_page(manifest: pa.Table, failures: pa.Table, predictions: pa.Table,
                 out: str) -> str:
    """The HTML of a scoring run's report (``predictions``: predicted_label, probability,
    label columns of every committed shard)."""
    shards = manifest.to_pylist()
    sections = [_summary(shards), _provenance(shards)]
    labels = predictions.column("predicted_label").to_numpy(zero_copy_only=False)
    truth = predictions.column("label")
    if truth.null_count < len(truth) and len(truth):
        sections.append(_accuracy(labels, truth))
    counts = Counter(labels.tolist())
    sections.append("<h2>Predictions</h2><div class=grid>"
                    + figure(charts.label_counts(counts), "labels")
                    + figure(charts.confidence(predictions.column("probability")
                                               .to_numpy(zero_copy_only=False)), "confidence")
                    + "</div>")
    rows = [{name: str(row[name]) if name == "scored_at" else row[name]
             for name in _SHARD_COLUMNS} for row in shards]
    sections.append("<h2>Shards</h2>" + table("shards", _SHARD_COLUMNS, rows, ["ok", "failed"],
                                              "path"))
    reasons = Counter(failures.column("reason").to_pylist()) if failures.num_rows else Counter()
    reason_rows = [{"reason": reason, "count": count} for reason, count in reasons.items()]
    sections.append("<h2>Failures by reason</h2>" + (
        table("failures", ["reason", "count"], reason_rows, [], "count") if reason_rows
        else "<p>none</p>"))
    return page(f"Scoring {out}", sections)


def _summary(shards: list[dict]) -> str:
    return markup("<p>{0:,} shards, {1:,} images scored, {2:,} rejected.</p>", len(shards),
                  sum(r["rows"] for r in shards), sum(r["failed_rows"] for r in shards))


def _provenance(shards: list[dict]) -> str:
    """Each model the folder's predictions come from: its id, path, and the sweep and trial
    that made it when it is a sweep's best model."""
    models = Counter((row["model_id"], row["model"]) for row in shards)
    items = "".join(markup("<li><b>{0}</b> ({1:,} shards): {2}</li>", model_id, count,
                           _origin(path)) for (model_id, path), count in models.most_common())
    return f"<h2>Model</h2><ul>{items}</ul>" if items else ""


def _origin(path: str | None) -> str:
    """Where a model came from, as text: its path, and its sweep and trial when it is a
    sweep's chosen model (a damaged ``best.json`` there names no trial)."""
    if not path:
        return "unknown"
    if storage.name(storage.parent(path)) != best.FOLDER:
        return path
    sweep = storage.parent(storage.parent(path))
    try:
        trial = best.chosen_trial(sweep)
    except DataFormatError:
        trial = None
    return f"sweep {storage.name(sweep)}, trial {trial or '?'}: {path}"


def _accuracy(predicted: np.ndarray, truth: pa.ChunkedArray) -> str:
    values = truth.fill_null(-1).to_numpy(zero_copy_only=False)
    known = (values >= 0) & (values < NUM_CLASSES)  # what the confusion matrix can count
    actual = values[known]
    guessed = predicted[known]
    accuracy = float(np.mean(actual == guessed)) if len(actual) else float("nan")
    cells = [{"true_label": t, "predicted_label": p, "count": int(np.sum((actual == t)
                                                                        & (guessed == p)))}
             for t in range(NUM_CLASSES) for p in range(NUM_CLASSES)]
    return (markup("<h2>Accuracy</h2><p>{0:.4f} on the {1:,} images whose input carries a "
                   "label.</p>", accuracy, len(actual))
            + figure(charts.confusion(cells, "Confusion matrix (labelled inputs)"),
                     "confusion"))


def write_scoring_report(out: str) -> str:
    """Build ``<out>/report.html`` from a scoring run's files; return its location."""
    manifest = _table_or_empty(storage.join(out, "manifest.parquet"), MANIFEST_SCHEMA)
    failures = _table_or_empty(storage.join(out, "failures.parquet"), FAILURES_SCHEMA)
    parts = [_predictions(row["output"]) for row in manifest.to_pylist()
             if row["output"] and storage.exists(row["output"])]
    predictions = pa.concat_tables(parts) if parts else _PREDICTION_COLUMNS.empty_table()
    return write_page(out, scoring_page(manifest, failures, predictions, out))


_PREDICTION_COLUMNS = pa.schema([pa.field("predicted_label", pa.int32()),
                                 pa.field("probability", pa.float32()),
                                 pa.field("label", pa.int32())])


def _predictions(location: str) -> pa.Table:
    """The columns the page needs of one predictions file (``label`` null when absent)."""
    table = storage.read_table(location)
    if "label" not in table.column_names:
        table = table.append_column("label", pa.nulls(table.num_rows, pa.int32()))
    return table.select(_PREDICTION_COLUMNS.names).cast(_PREDICTION_COLUMNS)


def _table_or_empty(location: str, schema: pa.Schema) -> pa.Table:
    return storage.read_table(location) if storage.exists(location) else schema.empty_table()
