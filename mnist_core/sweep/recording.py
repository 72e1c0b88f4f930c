"""Recording a sweep while it runs: each finished pack's rows as part files, its best model
in ``best/``.

Each finished pack adds one part file per table under ``parts/<table>/<pack_id>.parquet`` —
the detail tables first (by the pack's worker where it can reach the folder,
``write_details``), ``trials`` last (by the driver, from the bytes the worker encoded:
``PackTables``), each atomically — so writing costs O(rows written) in total however many
trials a sweep has. Three small classes share the work: ``PartStore`` (the part files of one
folder: record, read, compact), ``BestCheckpoint`` (the chosen trial's model in ``best/``) and
``PackRecorder`` (a finished pack into rows, into a store, offered to a checkpoint). With
successive halving a rung's results first land in a staging ``PartStore`` under
``rungs/r<k>/`` (see ``halving``).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from mnist_core import best, storage
from mnist_core.errors import recording
from mnist_core.reports import (
    TRIALS_SCHEMA,
    best_trial,
    confusion_rows,
    epoch_rows,
    metric_values,
    per_class_rows,
    ranked_trials,
)
from mnist_core.sweep.compaction import compact_folder
from mnist_core.sweep.reading import (
    DETAIL_SCHEMAS,
    INDEX_COLUMNS,
    part_location,
    read_index,
    read_sweep,
    read_trials,
    rows_of,
    top_ids,
    trust_among,
)
from mnist_core.sweep.trials import Trial
from mnist_core.trial import TrialFailure, TrialResult


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

    @classmethod
    def of(cls, trial: Trial, result: TrialResult | TrialFailure | None,
           attempts: int) -> MemberRecord:
        """A pack member's record from what its worker returned for it."""
        return cls(trial.trial_id, trial.config.as_record(),
                   result if isinstance(result, TrialResult) else None,
                   result.error if isinstance(result, TrialFailure) else None, attempts)


@dataclass(frozen=True, eq=False)
class PackTables:
    """A finished pack's rows as they are recorded, encoded where they were built (on its
    worker, ``worker.as_tables``): its ``trials`` part as the bytes of a Parquet file, those
    rows' ``INDEX_COLUMNS`` (Arrow IPC bytes), the whole rows of the members whose models came
    back, and its detail parts' bytes (None: its worker wrote them). Bytes cross between
    processes without being rebuilt, and the driver writes them as they are."""

    part: bytes
    index: bytes
    kept_rows: list[dict]
    details: dict[str, bytes] | None

    @classmethod
    def of(cls, table: pa.Table, kept_ids: list[str],
           details: dict[str, pa.Table] | None) -> PackTables:
        """Encode ``table`` (the ``trials`` rows), keeping the rows of ``kept_ids``."""
        kept = table.filter(pc.is_in(table.column("trial_id"),
                                     value_set=pa.array(kept_ids, pa.string())))
        return cls(storage.parquet_bytes(table), storage.arrow_bytes(table.select(INDEX_COLUMNS)),
                   kept.to_pylist(), None if details is None else {
                       name: storage.parquet_bytes(rows) for name, rows in details.items()})

    def index_table(self) -> pa.Table:
        """The rows' ``INDEX_COLUMNS``."""
        return storage.arrow_table(self.index)

    def retried(self, attempts: int) -> PackTables:
        """The same rows, recorded after ``attempts`` attempts (a pack whose worker died)."""
        table = storage.parquet_table(self.part)
        table = table.set_column(table.schema.get_field_index("attempts"), "attempts",
                                 pa.array([attempts] * table.num_rows, pa.int32()))
        return PackTables(storage.parquet_bytes(table), self.index,
                          [row | {"attempts": attempts} for row in self.kept_rows], self.details)


@dataclass(frozen=True)
class SweepRows:
    """What every ``trials`` row of a sweep says beside its trial: the sweep and its data."""

    sweep_id: str
    dataset: str
    validation_split: float

    def table(self, members: list[MemberRecord], placement: dict) -> pa.Table:
        """The ``trials`` rows of a finished pack's members (``placement``: where it ran,
        its pack's id and size), as a table."""
        finished_at = datetime.now(UTC).replace(microsecond=0)
        rows = []
        for member in members:
            row = {"sweep_id": self.sweep_id, "trial_id": member.trial_id,
                   "status": "ok" if member.result is not None else "failed",
                   "error": member.error, "attempts": member.attempts,
                   "finished_at": finished_at, "rung": member.rung, **member.config_record,
                   "dataset": self.dataset, "validation_split": self.validation_split,
                   **placement}
            if member.result is not None:
                row |= metric_values(member.result)
            rows.append(row)
        return storage.rows_table(rows, TRIALS_SCHEMA, "trials")

    def pack_tables(self, pack_id: str, members: list[MemberRecord],
                    placement: dict) -> PackTables:
        """A finished pack's report tables, encoded (``PackTables``): the one way a pack
        becomes rows, on its worker (``worker.as_tables``) or on the driver."""
        table = self.table(members, placement | {"pack_id": pack_id, "pack_size": len(members)})
        kept = [member.trial_id for member in members
                if member.result is not None and member.result.model_bytes]
        return PackTables.of(table, kept, detail_tables([(member.trial_id, member.result)
                                                         for member in members]))


def detail_tables(results: list[tuple[str, TrialResult | None]]) -> dict[str, pa.Table]:
    """``detail_rows`` as tables."""
    return {name: storage.rows_table(rows, DETAIL_SCHEMAS[name], name)
            for name, rows in detail_rows(results).items()}


def detail_rows(results: list[tuple[str, TrialResult | None]]) -> dict[str, list[dict]]:
    """The ``epochs``, ``confusion`` and ``per_class`` rows of a finished pack's ok members
    (``results``: each member's trial id and result, None when it failed)."""
    details = {name: [] for name in DETAIL_SCHEMAS}
    for trial_id, result in results:
        if result is not None:
            details["epochs"] += epoch_rows(trial_id, result.history)
            details["confusion"] += confusion_rows(trial_id, result.evaluation.confusion)
            details["per_class"] += per_class_rows(trial_id, result)
    return details


def write_details(folder: str, pack_id: str, details: dict[str, bytes]) -> None:
    """A pack's detail parts (``PackTables.details``) in ``folder`` (each atomically; its
    trials part, written after them, is what records the pack)."""
    with recording(folder):
        for name in DETAIL_SCHEMAS:
            storage.write_bytes(part_location(folder, name, pack_id), details[name])


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

    What it holds in memory stays small at any sweep size: a count per status and the
    ``INDEX_COLUMNS`` of every recorded trial as Arrow columns (about 40 bytes a trial) —
    what the driver needs to rank trials; no Python object per trial. Whole rows are read
    from the files when asked for (``rows``, ``ranked_rows``).
    """

    def __init__(self, folder: str):
        self.folder = folder
        for name in DETAIL_SCHEMAS:  # a damaged compacted table stops a resume, not a report
            location = storage.join(folder, f"{name}.parquet")
            if storage.exists(location):
                storage.read_metadata(location)
        index = read_index(folder)
        self._chunks, self._recent = [index], []  # the index: big chunks, then each pack's
        self.counts = _status_counts(index)

    @property
    def recorded(self) -> int:
        """How many trials are recorded, in any status."""
        return self.counts.total()

    def finished_ids(self) -> set[str]:
        """The ids of the trials recorded (a set made now: the store keeps none)."""
        return set(self.index().column("trial_id").to_pylist())

    def index(self) -> pa.Table:
        """The ``INDEX_COLUMNS`` of every recorded trial, in the order they were recorded."""
        self._gather()
        return pa.concat_tables(self._chunks)  # zero-copy: the chunks stay as they are

    def rows(self, trial_ids: set[str] | None = None) -> list[dict]:
        """Whole ``trials`` rows from the files: of ``trial_ids``, or of every recorded trial."""
        return read_trials(self.folder, trial_ids).to_pylist()

    def ranked_rows(self, count: int) -> list[dict]:
        """The best ``count`` ok trials (``reports.ranked_trials``' order), whole rows."""
        return ranked_trials(self.rows(top_ids(self.index(), count)))[:count]

    def add(self, pack_id: str, tables: PackTables) -> None:
        """Record a finished pack: its detail parts (unless its worker wrote them), then
        its ``trials`` part, the commit."""
        if tables.details is not None:
            write_details(self.folder, pack_id, tables.details)
        with recording(self.folder):
            storage.write_bytes(self._part("trials", pack_id), tables.part)
        self._note(tables.index_table())

    def _note(self, index: pa.Table) -> None:
        self._recent.append(index)
        if len(self._recent) >= 256:  # a small table per pack costs more than its rows
            self._gather()
        self.counts.update(_status_counts(index))

    def _gather(self) -> None:
        """The packs' small index tables since the last call, as one chunk (the chunks
        before it are not copied again: no second copy of a million trials' columns)."""
        if self._recent:
            self._chunks.append(pa.concat_tables(self._recent).combine_chunks())
            self._recent = []

    def copy_records(self, other: PartStore, trial_ids: set[str], status: str) -> None:
        """Copy ``other``'s records of ``trial_ids`` into this store with ``status``."""
        if not trial_ids:
            return
        tables = read_sweep(other.folder)
        keep = pa.array(sorted(trial_ids), pa.string())
        trials = rows_of(tables["trials"], keep)
        trials = trials.set_column(trials.schema.get_field_index("status"), "status",
                                   pa.array([status] * trials.num_rows, pa.string()))
        pack_id = f"{status}-{storage.name(other.folder)}-{min(trial_ids)}"
        with recording(self.folder):
            for name in DETAIL_SCHEMAS:
                storage.write_table(self._part(name, pack_id), rows_of(tables[name], keep))
            storage.write_table(self._part("trials", pack_id), trials)
        self._note(trials.select(INDEX_COLUMNS))

    def compact(self, elsewhere: Callable[[str], None] | None = None) -> None:
        """Fold every part into the four report files (``compact_folder``), then remove the
        parts. ``elsewhere(folder)``: runs ``compact_folder`` elsewhere (on a worker) and
        returns once it is done; else it runs here."""
        parts = [entry.location for entry in storage.list_files(storage.join(self.folder,
                                                                             "parts"))]
        if not parts:
            return
        (elsewhere or compact_folder)(self.folder)
        with recording(self.folder):
            for part in parts:
                storage.remove(part)
            storage.remove_empty_folders(storage.join(self.folder, "parts"))

    def remove(self) -> None:
        """Delete every file of this store (a rung's staging store, once it is decided), and
        its folders."""
        for entry in storage.list_files(self.folder):
            storage.remove(entry.location)
        storage.remove_empty_folders(self.folder)

    def _part(self, name: str, pack_id: str) -> str:
        return part_location(self.folder, name, pack_id)


class BestCheckpoint:
    """The sweep's best trial (``reports.best_trial``) kept in ``best/`` as it trains, as
    Keras's ``ModelCheckpoint(save_best_only=True)`` keeps a model: its model and
    ``best.json`` (its charts are on the sweep's page)."""

    def __init__(self, folder: str, store: PartStore):
        self.folder = folder
        self.best = next(iter(store.ranked_rows(1)), None)

    def offer(self, rows: list[dict], results: dict[str, TrialResult]) -> None:
        """Keep the best of a finished pack's members whose models came back (``results``, by
        trial id; ``rows``: their ``trials`` rows) if it beats the best so far."""
        candidate = best_trial([row for row in rows if row["trial_id"] in results])
        if candidate is None or (self.best is not None
                                 and best_trial([self.best, candidate]) is self.best):
            return
        self.keep(candidate, results[candidate["trial_id"]])

    def keep(self, row: dict, result: TrialResult) -> None:
        """Make ``row``'s trial (trained as ``result``) the one in ``best/``."""
        self.best = row
        summary = {key: row[key] for key in ("trial_id", "val_accuracy", "test_accuracy")}
        with recording(self.folder):
            best.write_chosen(self.folder, result.model_bytes,
                              summary | result.config.as_record())

    def record_selection(self, store: PartStore, choice: dict | None = None) -> dict | None:
        """Add to ``best.json`` how far its validation figure can be trusted, against every
        trial ``store`` recorded (``reports.trust_in``), and how it was chosen
        (``choice``, see ``selection``); return those statistics."""
        statistics = trust_among(self.best, store.index())
        if statistics is None:
            return statistics
        parts = {"selection": statistics} | ({} if choice is None else {"choice": choice})
        with recording(self.folder):
            best.update_record(self.folder, **parts)
        return statistics


class PackRecorder:
    """Where a finished pack goes: its rows into a ``PartStore``, its best member offered to a
    ``BestCheckpoint`` (none for a rung's staging store)."""

    def __init__(self, store: PartStore, labels: SweepRows,
                 checkpoint: BestCheckpoint | None = None, keep_all_models: bool = False):
        self.store, self.checkpoint, self.keep_all_models = store, checkpoint, keep_all_models
        self.labels = labels

    def add_pack(self, pack_id: str, members: list[MemberRecord], placement: dict) -> None:
        """Record a finished pack's members (``placement``: node, GPUs, worker)."""
        results = {member.trial_id: member.result for member in members
                   if member.result is not None and member.result.model_bytes}
        self.add_tables(pack_id, self.labels.pack_tables(pack_id, members, placement), results)

    def add_tables(self, pack_id: str, tables: PackTables,
                   results: dict[str, TrialResult]) -> None:
        """Record a finished pack from its encoded rows (``PackTables``: a worker built
        them) and the results whose models came back (by trial id). The models go first (the
        best, and with ``keep_models = "all"`` every one under ``models/``) and the trials
        part, the commit, last: a run cut off in between retrains the pack on resume, and
        ``best/`` never lags the recorded trials."""
        if self.checkpoint is not None and results:
            self.checkpoint.offer(tables.kept_rows, results)
        if self.keep_all_models:
            _write_models(self.store.folder, results)
        self.store.add(pack_id, tables)


def _write_models(folder: str, results: dict[str, TrialResult]) -> None:
    """``models/<trial_id>.keras`` for every ok member (``[sweep] keep_models = "all"``)."""
    with recording(folder):
        for trial_id, result in results.items():
            storage.write_bytes(storage.join(folder, "models", f"{trial_id}.keras"),
                                result.model_bytes)


def _status_counts(index: pa.Table) -> Counter:
    counted = pc.value_counts(index.column("status")).to_pylist()
    return Counter({entry["values"]: entry["counts"] for entry in counted})
