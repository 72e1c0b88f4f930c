"""The reports of one sweep: written per pack while it runs, compacted into one file per table.

Folder layout once a sweep run ends: ``trials``, ``epochs``, ``confusion`` and ``per_class``
Parquet files (one row per trial, per epoch, per confusion cell, per label), ``sweep.toml``
(the config that made it) and ``best/`` (model, ``best.json``). While it runs, each
finished pack adds one part file per table under ``parts/<table>/<pack_id>.parquet`` — the
detail tables first, ``trials`` last, each atomically — so writing costs O(rows written) in
total however many trials a sweep has, where rewriting whole tables after every trial was
quadratic. ``compact`` folds the parts into the four files at the end of every run.

Three small classes share the work: ``PartStore`` (the part files of one folder: record,
read, compact), ``BestKeeper`` (the chosen trial's model in ``best/``) and
``PackRecorder`` (a finished pack into rows, into a store, offered to a keeper). With
successive halving a rung's results first land in a staging ``PartStore`` under
``rungs/r<k>/`` (see ``halving``).

A pack's ``trials`` part is the record that the pack finished: detail parts without it (a
driver killed mid-write) are ignored and removed, and ``read_sweep`` takes every trial from
exactly one place, so a resumed sweep neither loses nor repeats a trial, even when it was
killed halfway through a compaction. What no crash can leave but a lost or damaged file can —
a recorded source missing a detail file, compacted details whose ``trials.parquet`` is gone,
a truncated file — stops ``read_sweep`` with one line naming the file (``DataFormatError``,
exit 3), never a silent loss of rows.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from mnist_core import storage
from mnist_core.errors import DataFormatError, RecordingError
from mnist_core.reports import (
    CONFUSION_SCHEMA,
    EPOCHS_SCHEMA,
    PER_CLASS_SCHEMA,
    TRIALS_SCHEMA,
    best_trial,
    confusion_rows,
    epoch_rows,
    metric_values,
    per_class_rows,
    selection_statistics,
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
    sources = _sources(folder)
    _check_orphans(folder, sources)
    for source in sources:
        _check_complete(source)
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


def trial_rows(sweep_id: str, dataset: str, validation_split: float,
               members: list[MemberRecord], placement: dict) -> list[dict]:
    """One ``trials`` row per member of a finished pack (``placement``: where it ran)."""
    finished_at = datetime.now(UTC).replace(microsecond=0)
    rows = []
    for member in members:
        row = {"sweep_id": sweep_id, "trial_id": member.trial_id,
               "status": "ok" if member.result is not None else "failed",
               "error": member.error, "attempts": member.attempts, "finished_at": finished_at,
               "rung": member.rung, **member.config_record, "dataset": dataset,
               "validation_split": validation_split, **placement}
        if member.result is not None:
            row |= metric_values(member.result)
        rows.append(row)
    return rows


def detail_rows(members: list[MemberRecord]) -> dict[str, list[dict]]:
    """The ``epochs``, ``confusion`` and ``per_class`` rows of a finished pack's ok members."""
    details = {name: [] for name in DETAIL_SCHEMAS}
    for member in members:
        if member.result is not None:
            details["epochs"] += epoch_rows(member.trial_id, member.result.history)
            details["confusion"] += confusion_rows(member.trial_id,
                                                   member.result.evaluation.confusion)
            details["per_class"] += per_class_rows(member.trial_id, member.result)
    return details


def claim_sweep_folder(out: str, base_id: str) -> str:
    """Create ``<out>/<sweep_id>`` exclusively and return the id: ``base_id``, or ``base_id-2``,
    ``-3``, … when sweeps started in the same second hold the others (``storage.make_folder``:
    exclusive on local disks and shared mounts, not on object stores)."""
    for attempt in itertools.count(1):
        sweep_id = base_id if attempt == 1 else f"{base_id}-{attempt}"
        if storage.make_folder(storage.join(out, sweep_id)):
            return sweep_id
    raise AssertionError("unreachable")


class PartStore:
    """The part files of one folder (a sweep's, or a rung's staging folder under
    ``rungs/r<k>/``): records finished packs, knows which trials are recorded, compacts.

    ``trials`` holds the recorded rows (read once, then kept up to date as packs land).
    """

    def __init__(self, folder: str):
        self.folder = folder
        self.trials = read_sweep(folder)["trials"].to_pylist()

    @property
    def finished_ids(self) -> set[str]:
        """Ids of the trials already recorded, in any status."""
        return {row["trial_id"] for row in self.trials}

    def add(self, pack_id: str, rows: list[dict], details: dict[str, list[dict]]) -> None:
        """Record a finished pack: its detail parts, then its trials part (the commit)."""
        with recording(self.folder):
            for name, schema in DETAIL_SCHEMAS.items():
                storage.write_rows(self._part(name, pack_id), details[name], schema)
            storage.write_rows(self._part("trials", pack_id), rows, TRIALS_SCHEMA)
        self.trials += rows

    def adopt(self, other: PartStore, trial_ids: set[str], status: str) -> None:
        """Copy ``other``'s records of ``trial_ids`` into this store with ``status``."""
        if not trial_ids:
            return
        tables = read_sweep(other.folder)
        keep = pa.array(sorted(trial_ids), pa.string())
        trials = _rows_of(tables["trials"], keep)
        trials = trials.set_column(trials.schema.get_field_index("status"), "status",
                                   pa.array([status] * trials.num_rows, pa.string()))
        pack_id = f"{status}-{storage.name(other.folder)}-{min(trial_ids)}"
        with recording(self.folder):
            for name in DETAIL_SCHEMAS:
                storage.write_table(self._part(name, pack_id), _rows_of(tables[name], keep))
            storage.write_table(self._part("trials", pack_id), trials)
        self.trials += trials.to_pylist()

    def compact(self) -> None:
        """Fold every part into the four report files (trials last), then remove the parts."""
        parts = [entry.location for entry in storage.list_files(storage.join(self.folder,
                                                                             "parts"))]
        if not parts:
            return
        tables = read_sweep(self.folder)
        with recording(self.folder):
            for name in (*DETAIL_SCHEMAS, "trials"):
                storage.write_table(storage.join(self.folder, f"{name}.parquet"), tables[name])
            for part in parts:
                storage.remove(part)

    def remove(self) -> None:
        """Delete every file of this store (a rung's staging store, once it is decided)."""
        for entry in storage.list_files(self.folder):
            storage.remove(entry.location)

    def _part(self, name: str, pack_id: str) -> str:
        return storage.join(self.folder, "parts", name, f"{pack_id}.parquet")


class BestKeeper:
    """Keeps the sweep's chosen trial (``reports.best_trial``) in ``best/``: its model, its
    and ``best.json`` (its charts are on the sweep's page)."""

    def __init__(self, folder: str, rows: list[dict]):
        self.folder = folder
        self.best = best_trial(rows)

    def offer(self, rows: list[dict], members: list[MemberRecord]) -> None:
        """Keep the best of a finished pack's members if it beats the best so far."""
        results = {member.trial_id: member.result for member in members
                   if member.result is not None and member.result.model_bytes}
        candidate = best_trial([row for row in rows if row["trial_id"] in results])
        if candidate is None or (self.best is not None
                                 and best_trial([self.best, candidate]) is self.best):
            return
        self.keep(candidate, results[candidate["trial_id"]])

    def keep(self, row: dict, result: TrialResult) -> None:
        """Make ``row``'s trial (trained as ``result``) the one in ``best/``."""
        self.best = row
        best = storage.join(self.folder, "best")
        summary = {key: row[key] for key in ("trial_id", "val_accuracy", "test_accuracy")}
        with recording(self.folder):
            storage.write_bytes(storage.join(best, "model.keras"), result.model_bytes)
            storage.write_bytes(storage.join(best, "best.json"), json.dumps(
                summary | result.config.as_record(), indent=2).encode())

    def record_selection(self, rows: list[dict], choice: dict | None = None) -> dict | None:
        """Add to ``best.json`` how far its validation figure can be trusted, against every
        recorded trial (``reports.selection_statistics``), and how it was chosen (``choice``,
        see ``selection``); return those statistics."""
        statistics = selection_statistics(rows, self.best)
        location = storage.join(self.folder, "best", "best.json")
        if statistics is None or not storage.exists(location):
            return statistics
        record = json.loads(storage.read_bytes(location)) | {"selection": statistics}
        if choice is not None:
            record["choice"] = choice
        with recording(self.folder):
            storage.write_bytes(location, json.dumps(record, indent=2).encode())
        return statistics


class PackRecorder:
    """Where a finished pack goes: its rows into a ``PartStore``, its best member offered to a
    ``BestKeeper`` (none for a rung's staging store)."""

    def __init__(self, store: PartStore, sweep_id: str, dataset: str, validation_split: float,
                 keeper: BestKeeper | None = None, keep_all_models: bool = False):
        self.store, self.keeper, self.keep_all_models = store, keeper, keep_all_models
        self.sweep_id, self.dataset, self.validation_split = sweep_id, dataset, validation_split

    def add_pack(self, pack_id: str, members: list[MemberRecord], placement: dict) -> None:
        """Record a finished pack's members (``placement``: node, GPUs, worker). The models
        go first (the best, and with ``keep_models = "all"`` every one under ``models/``) and
        the trials part, the commit, last: a run cut off in between retrains the pack on
        resume, and ``best/`` never lags the recorded trials."""
        rows = trial_rows(self.sweep_id, self.dataset, self.validation_split, members,
                          placement | {"pack_id": pack_id, "pack_size": len(members)})
        if self.keeper is not None:
            self.keeper.offer(rows, members)
        if self.keep_all_models:
            _write_models(self.store.folder, members)
        self.store.add(pack_id, rows, detail_rows(members))


def _write_models(folder: str, members: list[MemberRecord]) -> None:
    """``models/<trial_id>.keras`` for every ok member (``[sweep] keep_models = "all"``)."""
    with recording(folder):
        for member in members:
            if member.result is not None and member.result.model_bytes:
                storage.write_bytes(storage.join(folder, "models", f"{member.trial_id}.keras"),
                                    member.result.model_bytes)


@contextlib.contextmanager
def recording(folder: str) -> Iterator[None]:
    """Turn a failed write (a full disk, a lost mount) into a one-line ``RecordingError``."""
    try:
        yield
    except OSError as error:
        where = getattr(error, "filename", None) or folder
        reason = error.strerror or str(error).splitlines()[0]
        raise RecordingError(f"{where}: {reason}; every trial recorded before this is kept"
                             ) from None


def _sources(folder: str) -> list[dict[str, str | None]]:
    """The compacted files, then each finished pack's parts (those with a trials part)."""
    compacted = {name: storage.join(folder, f"{name}.parquet") for name in SCHEMAS}
    sources = [compacted] if storage.exists(compacted["trials"]) else []
    for entry in storage.list_files(storage.join(folder, "parts", "trials")):
        pack_id = storage.name(entry.location).removesuffix(".parquet")
        sources.append({name: storage.join(folder, "parts", name, f"{pack_id}.parquet")
                        for name in SCHEMAS})
    return sources


def _check_complete(source: dict[str, str]) -> None:
    """A recorded source (its trials file exists) must have every detail file: the details
    are written first, so one missing was lost after the fact, and its rows with it."""
    for name in DETAIL_SCHEMAS:
        if not storage.exists(source[name]):
            raise DataFormatError(
                f"{source[name]}: missing, but {source['trials']} records the trials whose "
                f"{name} rows it held; restore it, or remove {source['trials']} (and its "
                "other tables) so that resuming the sweep trains those trials again")


def _check_orphans(folder: str, sources: list[dict[str, str]]) -> None:
    """Compacted detail files without ``trials.parquet`` are fine while every trial they hold
    is in a part (a first compaction cut short); rows of any other trial would be lost."""
    if storage.exists(storage.join(folder, "trials.parquet")):
        return
    in_parts = set()
    for source in sources:
        in_parts.update(_read(source["trials"], TRIALS_SCHEMA).column("trial_id").to_pylist())
    for name, schema in DETAIL_SCHEMAS.items():
        location = storage.join(folder, f"{name}.parquet")
        if not storage.exists(location):
            continue
        orphans = set(_read(location, schema).column("trial_id").to_pylist()) - in_parts
        if orphans:
            raise DataFormatError(
                f"{storage.join(folder, 'trials.parquet')}: missing, but {location} holds rows "
                f"of {len(orphans)} trial(s) no part records; restore it, or remove the "
                "compacted tables so that resuming the sweep trains those trials again")


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
