"""The reports of one sweep: written per pack while it runs, compacted into one file per table.

Folder layout once a sweep run ends: ``trials``, ``epochs``, ``confusion`` and ``per_class``
Parquet files (one row per trial, per epoch, per confusion cell, per label), ``sweep.toml``
(the config that made it) and ``best/`` (model, plots, ``best.json``). While it runs, each
finished pack adds one part file per table under ``parts/<table>/<pack_id>.parquet`` — the
detail tables first, ``trials`` last, each atomically — so writing costs O(rows written) in
total however many trials a sweep has, where rewriting whole tables after every trial was
quadratic. ``compact`` folds the parts into the four files at the end of every run.

A pack's ``trials`` part is the record that the pack finished: detail parts without it (a
driver killed mid-write) are ignored and removed, and ``read_sweep`` takes every trial from
exactly one place, so a resumed sweep neither loses nor repeats a trial, even when it was
killed halfway through a compaction.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from mnist_core import plots, storage
from mnist_core.errors import OutputError
from mnist_core.reports import (
    CONFUSION_SCHEMA,
    EPOCHS_SCHEMA,
    PER_CLASS_SCHEMA,
    TRIALS_SCHEMA,
    confusion_rows,
    epoch_rows,
    metrics_row,
    per_class_rows,
    write_model_and_plots,
)
from mnist_core.trial import TrialResult

DETAIL_SCHEMAS = {"epochs": EPOCHS_SCHEMA, "confusion": CONFUSION_SCHEMA,
                  "per_class": PER_CLASS_SCHEMA}
SCHEMAS = {**DETAIL_SCHEMAS, "trials": TRIALS_SCHEMA}


@dataclass(frozen=True)
class MemberRecord:
    """What one trial of a finished pack contributes: its outcome, its attempts, and (with
    successive halving) the rung it was trained to."""

    trial_id: str
    config_record: dict
    result: TrialResult | None
    error: str | None
    attempts: int
    rung: int | None = None


def read_sweep(folder: str) -> dict[str, pa.Table]:
    """Every table of a sweep, finished or still running: the compacted files plus the parts
    of every finished pack, each trial taken from exactly one of them."""
    tables: dict[str, list[pa.Table]] = {name: [] for name in SCHEMAS}
    seen: set[str] = set()
    for source in _sources(folder):
        trials = _read(source["trials"], TRIALS_SCHEMA)
        ids = [trial_id for trial_id in trials.column("trial_id").to_pylist()
               if trial_id not in seen]
        seen.update(ids)
        keep = pa.array(ids, pa.string())
        tables["trials"].append(_rows_of(trials, keep))
        for name, schema in DETAIL_SCHEMAS.items():
            tables[name].append(_rows_of(_read(source[name], schema), keep))
    return {name: pa.concat_tables(parts) if parts else SCHEMAS[name].empty_table()
            for name, parts in tables.items()}


class SweepReport:
    """Records finished packs of one sweep as part files, keeps the best model, compacts.

    With successive halving, a rung's results first land in a staging report of the same
    shape (``stage``, under ``rungs/r<k>/``, keeping no best model): when the rung is decided,
    the trials it prunes are copied from there into the sweep's reports (``adopt``) with
    status ``pruned``, and the staging reports go when the sweep is complete.
    """

    def __init__(self, folder: str, sweep_id: str, dataset: str, validation_split: float,
                 keeps_best: bool = True, sweep_folder: str | None = None):
        self.folder, self.sweep_id = folder, sweep_id
        self.sweep_folder = sweep_folder or folder  # a staging report's is its sweep's
        self.dataset, self.validation_split = dataset, validation_split
        self.keeps_best = keeps_best
        self.trials = read_sweep(folder)["trials"].to_pylist()
        ok = [row for row in self.trials if row["status"] == "ok"]
        self.best = max(ok, key=lambda row: row["val_accuracy"], default=None)

    def stage(self, rung: int) -> SweepReport:
        """The staging report of ``rung`` (successive halving)."""
        return SweepReport(storage.join(self.folder, "rungs", f"r{rung}"), self.sweep_id,
                           self.dataset, self.validation_split, keeps_best=False,
                           sweep_folder=self.folder)

    def adopt(self, stage: SweepReport, trial_ids: set[str], status: str) -> None:
        """Copy the staged records of ``trial_ids`` into this report with ``status``."""
        if not trial_ids:
            return
        tables = read_sweep(stage.folder)
        keep = pa.array(sorted(trial_ids), pa.string())
        trials = _rows_of(tables["trials"], keep)
        trials = trials.set_column(trials.schema.get_field_index("status"), "status",
                                   pa.array([status] * trials.num_rows, pa.string()))
        pack_id = f"{status}-{storage.name(stage.folder)}-{min(trial_ids)}"
        with self._writing():
            for name in DETAIL_SCHEMAS:
                storage.write_table(self._part(name, pack_id), _rows_of(tables[name], keep))
            storage.write_table(self._part("trials", pack_id), trials)
        self.trials += trials.to_pylist()

    def remove_stages(self) -> None:
        """Delete the staging reports of every rung (once every trial is recorded)."""
        for entry in storage.list_files(storage.join(self.folder, "rungs")):
            storage.remove(entry.location)

    @property
    def finished_ids(self) -> set[str]:
        """Ids of the trials already recorded, ok or failed."""
        return {row["trial_id"] for row in self.trials}

    def add_pack(self, pack_id: str, members: list[MemberRecord], placement: dict) -> None:
        """Record a finished pack: its detail parts, then its trials part; keep the best."""
        rows = [self._row(member, placement | {"pack_id": pack_id,
                                               "pack_size": len(members)})
                for member in members]
        details = {name: [] for name in DETAIL_SCHEMAS}
        for member in members:
            if member.result is not None:
                details["epochs"] += epoch_rows(member.trial_id, member.result.history)
                details["confusion"] += confusion_rows(member.trial_id,
                                                       member.result.evaluation.confusion)
                details["per_class"] += per_class_rows(member.trial_id, member.result)
        with self._writing():
            for name, schema in DETAIL_SCHEMAS.items():
                storage.write_rows(self._part(name, pack_id), details[name], schema)
            storage.write_rows(self._part("trials", pack_id), rows, TRIALS_SCHEMA)
            if self.keeps_best:
                self._keep_best(rows, members)
        self.trials += rows

    def compact(self) -> None:
        """Fold every part into the four report files (trials last), then remove the parts."""
        parts = [entry.location for entry in storage.list_files(storage.join(self.folder,
                                                                             "parts"))]
        if not parts:
            return
        tables = read_sweep(self.folder)
        with self._writing():
            for name in (*DETAIL_SCHEMAS, "trials"):
                storage.write_table(self._path(name), tables[name])
            for part in parts:
                storage.remove(part)

    def write_hyperparameter_plot(self, names: list[str],
                                  log_scaled: frozenset[str] = frozenset()) -> None:
        """Plot validation (and test) accuracy against each swept hyperparameter."""
        ok = [row for row in self.trials if row["status"] == "ok"]
        if ok and names:
            with self._writing():
                storage.write_bytes(self._path("best/accuracy_by_hyperparameter", ".png"),
                                    plots.accuracy_by_hyperparameter(ok, names, log_scaled))

    def _row(self, member: MemberRecord, placement: dict) -> dict:
        finished_at = datetime.now(UTC).replace(microsecond=0)
        row = {"sweep_id": self.sweep_id, "trial_id": member.trial_id,
               "status": "ok" if member.result is not None else "failed",
               "error": member.error, "attempts": member.attempts, "finished_at": finished_at,
               "rung": member.rung,
               **member.config_record, "dataset": self.dataset,
               "validation_split": self.validation_split, **placement}
        if member.result is not None:
            row |= metrics_row(member.trial_id, member.result, self.dataset,
                               self.validation_split)
        return row

    def _keep_best(self, rows: list[dict], members: list[MemberRecord]) -> None:
        ok = [(row, member) for row, member in zip(rows, members) if member.result is not None]
        if not ok:
            return
        row, member = max(ok, key=lambda pair: pair[0]["val_accuracy"])
        if self.best is not None and row["val_accuracy"] <= self.best["val_accuracy"]:
            return
        self.best = row
        title = f"best trial {row['trial_id']}: test accuracy {row['test_accuracy']:.4f}"
        write_model_and_plots(storage.join(self.folder, "best"), member.result, title)
        summary = {key: row[key] for key in ("trial_id", "val_accuracy", "test_accuracy")}
        storage.write_bytes(self._path("best/best", ".json"), json.dumps(
            summary | member.result.config.as_record(), indent=2).encode())

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn a failed write (a full disk, a lost mount) into one line that says how to go on."""
        try:
            yield
        except OSError as error:
            where = getattr(error, "filename", None) or self.folder
            reason = error.strerror or str(error).splitlines()[0]
            out = storage.parent(self.sweep_folder)
            raise OutputError(
                f"{where}: {reason}; every trial recorded before this is kept — free space, "
                f"then resume: python -m jobs.sweep --resume {self.sweep_id} --out {out}"
            ) from None

    def _part(self, name: str, pack_id: str) -> str:
        return storage.join(self.folder, "parts", name, f"{pack_id}.parquet")

    def _path(self, name: str, suffix: str = ".parquet") -> str:
        return storage.join(self.folder, *f"{name}{suffix}".split("/"))


def _sources(folder: str) -> list[dict[str, str | None]]:
    """The compacted files, then each finished pack's parts (those with a trials part)."""
    compacted = {name: storage.join(folder, f"{name}.parquet") for name in SCHEMAS}
    sources = [compacted] if storage.exists(compacted["trials"]) else []
    for entry in storage.list_files(storage.join(folder, "parts", "trials")):
        pack_id = storage.name(entry.location).removesuffix(".parquet")
        sources.append({name: storage.join(folder, "parts", name, f"{pack_id}.parquet")
                        for name in SCHEMAS})
    return sources


def _read(location: str, schema: pa.Schema) -> pa.Table:
    if not storage.exists(location):
        return schema.empty_table()
    table = storage.read_table(location)
    missing = [field for field in schema if field.name not in table.column_names]
    for field in missing:  # reports written before a column existed
        table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table.select(schema.names).cast(schema)


def _rows_of(table: pa.Table, trial_ids: pa.Array) -> pa.Table:
    import pyarrow.compute as pc

    return table.filter(pc.is_in(table.column("trial_id"), value_set=trial_ids))
