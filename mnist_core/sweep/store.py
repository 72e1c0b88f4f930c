"""The reports of one sweep: written per pack while it runs, compacted into one file per table.

Folder layout once a sweep run ends: ``trials``, ``epochs``, ``confusion`` and ``per_class``
Parquet files (one row per trial, per epoch, per confusion cell, per label), ``sweep.toml``
(the config that made it) and ``best/`` (model, ``best.json``). While it runs, each
finished pack adds one part file per table under ``parts/<table>/<pack_id>.parquet`` — the
detail tables first (by the pack's worker where it can reach the folder, ``write_details``),
``trials`` last (by the driver, from the bytes the worker encoded: ``PackTables``), each
atomically — so writing costs O(rows written) in total however many trials a sweep has.
``compact`` streams the parts into the four files at the end of every run, table by table
(``compact_table``: each can be handed to a worker; ``trials`` goes last), in
multi-threaded scans and row groups, never a whole table in memory; each
compaction marks its files with one token (``GENERATION``), so a compacted file known whole
streams without a filter. Readers take only what they need: ``read_index`` (what a resume
needs), ``read_rows`` (some columns, some trials), ``read_sweep`` (everything, for reports).

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
a truncated file — stops the reader with one line naming the file (``DataFormatError``,
exit 3), never a silent loss of rows.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mnist_core import best, storage
from mnist_core.errors import DataFormatError, RecordingError
from mnist_core.reports import (
    CONFUSION_SCHEMA,
    EPOCHS_SCHEMA,
    PER_CLASS_SCHEMA,
    TRIALS_SCHEMA,
    at_chance,
    best_trial,
    confusion_rows,
    epoch_rows,
    metric_values,
    per_class_rows,
    ranked_trials,
    trust_in,
)
from mnist_core.trial import TrialResult

DETAIL_SCHEMAS = {"epochs": EPOCHS_SCHEMA, "confusion": CONFUSION_SCHEMA,
                  "per_class": PER_CLASS_SCHEMA}
SCHEMAS = {**DETAIL_SCHEMAS, "trials": TRIALS_SCHEMA}
INDEX_COLUMNS = ["trial_id", "status", "val_accuracy", "val_loss", "seed"]
INDEX_SCHEMA = pa.schema([TRIALS_SCHEMA.field(name) for name in INDEX_COLUMNS])
GENERATION = b"mnist_core.compaction"  # one token per compaction, in each file's metadata
ROW_GROUP_ROWS = 65_536  # rows per row group of a compacted file
SCAN_FILES = 64  # part files per multi-threaded scan: its memory grows with its files


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
    of every finished pack, each trial taken from exactly one of them. Whole tables in
    memory: for reports and pages; the driver reads only what it needs (``read_index``)."""
    sources = _sources(folder)
    _check_orphans(folder, sources)
    keep = _kept_ids(sources)
    return {name: _concat(list(_source_tables(sources, keep, name, schema)), schema)
            for name, schema in SCHEMAS.items()}


def read_index(folder: str) -> pa.Table:
    """The ``INDEX_COLUMNS`` of every recorded trial (what a resume needs to know), read from
    the trials files alone, each trial from exactly one source."""
    sources = _sources(folder)
    _check_orphans(folder, sources)
    keep = _kept_ids(sources)
    return _concat(list(_source_tables(sources, keep, "trials", INDEX_SCHEMA)), INDEX_SCHEMA)


def read_trials(folder: str, trial_ids: set[str] | None = None,
                columns: list[str] | None = None) -> pa.Table:
    """Whole ``trials`` rows (only ``columns``, when given): of ``trial_ids``, or of every
    recorded trial."""
    return read_rows(folder, "trials", trial_ids, columns)


def read_rows(folder: str, name: str, trial_ids: set[str] | None = None,
              columns: list[str] | None = None) -> pa.Table:
    """The rows of table ``name`` (only ``columns``) of ``trial_ids``, or of every recorded
    trial, streamed from the files: a page needs the curves of a few hundred trials, not a
    hundred million confusion cells."""
    return SweepFiles(folder).rows(name, trial_ids, columns)


class SweepFiles:
    """A sweep folder's files as they are now, and which trials each contributes, found once:
    the reads of one page build share them (finding them scans every part's ids)."""

    def __init__(self, folder: str):
        self.sources = _sources(folder)
        _check_orphans(folder, self.sources)  # a page never hides rows a lost file held
        self.keep = _kept_ids(self.sources)

    def rows(self, name: str, trial_ids: set[str] | None = None,
             columns: list[str] | None = None) -> pa.Table:
        """As ``read_rows``, from these files."""
        schema = SCHEMAS[name]
        if columns is not None:
            schema = pa.schema([schema.field(column) for column in columns])
        keep = self.keep
        if trial_ids is not None:
            wanted = pa.array(sorted(trial_ids), pa.string())
            keep = [kept.wanting(wanted) for kept in keep]
        return _concat(list(_source_tables(self.sources, keep, name, schema)), schema)


def top_ids(index: pa.Table, count: int) -> set[str]:
    """The ids of the best ``count`` ok trials of ``index`` by validation accuracy, and of any
    tied with the last of them (``reports.ranked_trials`` breaks the ties). Numpy masks: no
    copy of a million trials' rows."""
    ok, accuracy = ok_accuracy(index)
    accuracy = np.nan_to_num(accuracy, nan=-1.0)
    if ok.sum() > count:
        lowest = np.partition(accuracy[ok], -count)[-count]
        ok &= accuracy >= lowest
    return set(values_at(index.column("trial_id"), np.flatnonzero(ok)))


def values_at(column: pa.ChunkedArray, positions: np.ndarray) -> list:
    """The values of ``column`` at a few ``positions``, as Python objects, chunk by chunk:
    ``take`` on a column of many chunks (a store's index, one a pack) copies them into one."""
    lengths = [len(chunk) for chunk in column.chunks]
    ends = np.cumsum(lengths)
    starts = ends - lengths
    chunk_of = np.searchsorted(ends, positions, side="right")
    return [column.chunks[chunk][int(position - starts[chunk])].as_py()
            for chunk, position in zip(chunk_of, positions)]


def ok_accuracy(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Which trials of ``table`` are ok (a numpy mask) and every trial's validation accuracy
    (NaN without one): what counts and statistics over every trial need, without a filtered
    copy of a million rows."""
    return (true_where(pc.equal(table.column("status"), "ok")),
            table.column("val_accuracy").to_numpy(zero_copy_only=False))


def count_at_chance(table: pa.Table) -> int:
    """How many ok trials of ``table`` trained to chance level (``reports.diverged``)."""
    ok, accuracy = ok_accuracy(table)
    return int(np.sum(ok & at_chance(accuracy)))


def trust_among(chosen: dict | None, table: pa.Table) -> dict | None:
    """``reports.trust_in`` of ``chosen`` against every other ok trial of ``table``."""
    ok, accuracy = ok_accuracy(table)
    own = true_where(pc.equal(table.column("trial_id"), (chosen or {}).get("trial_id", "")))
    return trust_in(chosen, accuracy[ok & ~own])


def true_where(condition: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean Arrow column as a numpy mask, null as False."""
    return pc.fill_null(condition, False).to_numpy(zero_copy_only=False)


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


def part_location(folder: str, name: str, pack_id: str) -> str:
    """Where the part of table ``name`` of pack ``pack_id`` lives in ``folder``."""
    return storage.join(folder, "parts", name, f"{pack_id}.parquet")


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


@dataclass(frozen=True)
class CompactionPlan:
    """One compaction of a sweep folder: its files (``_sources``), the rows each gives
    (``_Kept``; a part whose every row is wanted carries no ids, so the plan of a million
    trials is a few megabytes however many tasks it goes to), and the token its files get
    (``GENERATION``). Found once: finding it reads every trials file's ids."""

    folder: str
    sources: list[dict[str, str]]
    keep: list[_Kept]
    generation: bytes

    @classmethod
    def of(cls, folder: str) -> CompactionPlan:
        sources = _sources(folder)
        _check_orphans(folder, sources)
        return cls(folder, sources, [kept.for_compaction(source) for source, kept
                                     in zip(sources, _kept_ids(sources))],
                   uuid.uuid4().hex.encode())


def compact_folder(folder: str,
                   compact_tables: Callable[[list[str], CompactionPlan], None] | None = None
                   ) -> None:
    """Fold the parts of the sweep in ``folder`` into its four report files (trials last: it
    commits them), leaving the parts. Streamed: each source's rows go to the new file as they
    are read (the compacted files batch by batch), never a whole table in memory. Which rows
    each file gives is found once (``CompactionPlan``). ``compact_tables(names, plan)``: runs
    ``compact_table`` for each of ``names`` elsewhere (on workers, at once) and returns once
    they are written; else they are done here, one after another."""
    plan = CompactionPlan.of(folder)
    for names in (list(DETAIL_SCHEMAS), ["trials"]):
        if compact_tables is not None:
            compact_tables(names, plan)
        else:
            for name in names:
                compact_table(name, plan)


def compact_table(name: str, plan: CompactionPlan) -> None:
    """Fold the files of table ``name`` into ``<name>.parquet`` as ``plan`` says: one step of
    ``PartStore.compact``. It reads that table's files only, so a detail table can be
    compacted by a worker while others are; ``trials`` goes last."""
    with recording(plan.folder), storage.table_writer(
            storage.join(plan.folder, f"{name}.parquet"),
            SCHEMAS[name].with_metadata({GENERATION: plan.generation})) as writer:
        for table in _row_groups(_source_tables(plan.sources, plan.keep, name, SCHEMAS[name])):
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)


class BestKeeper:
    """Keeps the sweep's chosen trial (``reports.best_trial``) in ``best/``: its model, its
    and ``best.json`` (its charts are on the sweep's page)."""

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
    ``BestKeeper`` (none for a rung's staging store)."""

    def __init__(self, store: PartStore, labels: SweepRows, keeper: BestKeeper | None = None,
                 keep_all_models: bool = False):
        self.store, self.keeper, self.keep_all_models = store, keeper, keep_all_models
        self.labels = labels

    def add_pack(self, pack_id: str, members: list[MemberRecord], placement: dict) -> None:
        """Record a finished pack's members (``placement``: node, GPUs, worker)."""
        table = self.labels.table(members, placement | {"pack_id": pack_id,
                                                        "pack_size": len(members)})
        results = {member.trial_id: member.result for member in members
                   if member.result is not None and member.result.model_bytes}
        details = detail_tables([(member.trial_id, member.result) for member in members])
        self.add_tables(pack_id, PackTables.of(table, list(results), details), results)

    def add_tables(self, pack_id: str, tables: PackTables,
                   results: dict[str, TrialResult]) -> None:
        """Record a finished pack from its encoded rows (``PackTables``: a worker built
        them) and the results whose models came back (by trial id). The models go first (the
        best, and with ``keep_models = "all"`` every one under ``models/``) and the trials
        part, the commit, last: a run cut off in between retrains the pack on resume, and
        ``best/`` never lags the recorded trials."""
        if self.keeper is not None and results:
            self.keeper.offer(tables.kept_rows, results)
        if self.keep_all_models:
            _write_models(self.store.folder, results)
        self.store.add(pack_id, tables)


def _write_models(folder: str, results: dict[str, TrialResult]) -> None:
    """``models/<trial_id>.keras`` for every ok member (``[sweep] keep_models = "all"``)."""
    with recording(folder):
        for trial_id, result in results.items():
            storage.write_bytes(storage.join(folder, "models", f"{trial_id}.keras"),
                                result.model_bytes)


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


def _status_counts(index: pa.Table) -> Counter:
    counted = pc.value_counts(index.column("status")).to_pylist()
    return Counter({entry["values"]: entry["counts"] for entry in counted})


def _sources(folder: str) -> list[dict[str, str | None]]:
    """The compacted files, then each finished pack's parts (those with a trials part)."""
    compacted = {name: storage.join(folder, f"{name}.parquet") for name in SCHEMAS}
    sources = [compacted] if storage.exists(compacted["trials"]) else []
    for entry in storage.finished_files(storage.join(folder, "parts", "trials")):
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
    compacted = [storage.join(folder, f"{name}.parquet") for name in DETAIL_SCHEMAS]
    compacted = [location for location in compacted if storage.exists(location)]
    if not compacted or storage.exists(storage.join(folder, "trials.parquet")):
        return
    in_parts = pa.chunked_array(_trial_ids([source["trials"] for source in sources]),
                                pa.string())
    for location in compacted:
        orphans = set()  # streamed: a compacted confusion table holds 100 rows a trial
        for batch in storage.read_batches(location, ["trial_id"]):
            held = pc.unique(batch.column(0))
            orphans.update(held.filter(pc.invert(pc.is_in(held, value_set=in_parts)))
                           .to_pylist())
        if orphans:
            raise DataFormatError(
                f"{storage.join(folder, 'trials.parquet')}: missing, but {location} holds rows "
                f"of {len(orphans)} trial(s) no part records; restore it, or remove the "
                "compacted tables so that resuming the sweep trains those trials again")


@dataclass(frozen=True)
class _Kept:
    """The ids a source contributes (each trial from the first source that records it), and
    how its other files may be read: ``whole``, every row of them belongs (a part whose trials
    are all new, or a compacted file of the same compaction, ``GENERATION``, as its trials
    file); ``subset``, only some of its trials are wanted. ``ids`` is None where every row of
    the source's files is wanted and the ids were not needed to know it (the one source of a
    compacted sweep; a part, for a compaction: ``for_compaction``)."""

    ids: pa.Array | None
    whole: bool
    generation: bytes | None = None  # a compacted trials file's token
    subset: bool = False

    def for_compaction(self, source: dict[str, str]) -> _Kept:
        """This, without the ids when ``source`` is a part whose every row is wanted: its
        files are then read whole (``_source_tables``) and its ids are never asked for."""
        if (self.whole and not self.subset and self.ids is not None and len(self.ids)
                and _is_part(source["trials"])):
            return _Kept(None, True)
        return self

    def wanting(self, wanted: pa.Array) -> _Kept:
        """The same source, contributing only the ids in ``wanted`` (of its own, where it
        knows them; else all of them: filtering its rows drops the others)."""
        ids = wanted if self.ids is None else pc.filter(self.ids,
                                                        pc.is_in(self.ids, value_set=wanted))
        return _Kept(ids, self.whole, self.generation, subset=True)


def _kept_ids(sources: list[dict[str, str]]) -> list[_Kept]:
    """What each source contributes (``read_sweep``'s rule: each trial from the first source
    that records it), from its trials file's ids, as Arrow arrays (no Python strings). One
    source (a compacted sweep) has nothing to take from another: its ids are not read."""
    for source in sources:
        _check_complete(source)
    if len(sources) == 1:
        location = sources[0]["trials"]
        return [_Kept(None, True, None if _is_part(location) else _generation(location))]
    id_arrays = _trial_ids([source["trials"] for source in sources])
    if not id_arrays:
        return []
    codes = pc.dictionary_encode(pa.chunked_array(id_arrays, pa.string()).combine_chunks())
    first = np.zeros(len(codes), bool)
    first[np.unique(codes.indices.to_numpy(zero_copy_only=False), return_index=True)[1]] = True
    kept, offset = [], 0
    for source, ids in zip(sources, id_arrays):
        mask = first[offset:offset + len(ids)]
        offset += len(ids)
        if not mask.all():
            kept.append(_Kept(ids.filter(pa.array(mask)), False))
        elif _is_part(source["trials"]):
            kept.append(_Kept(ids, True))
        else:
            kept.append(_Kept(ids, True, _generation(source["trials"])))
    return kept


def _trial_ids(locations: list[str]) -> list[pa.Array]:
    """The trial ids of each trials file, its parts read in one multi-threaded scan."""
    parts = [location for location in locations if _is_part(location)]
    ids = [_column(location, "trial_id") for location in locations if not _is_part(location)]
    schema = pa.schema([TRIALS_SCHEMA.field("trial_id")])
    for start in range(0, len(parts), SCAN_FILES):
        group = parts[start:start + SCAN_FILES]
        table = pa.Table.from_batches(list(_scanned_batches(group, schema,
                                                            ["trial_id", "__fragment_index"])),
                                      pa.schema([*schema, pa.field("__fragment_index",
                                                                   pa.int32())]))
        fragment = table.column("__fragment_index").to_numpy()
        ends = np.searchsorted(fragment, np.arange(len(group)), side="right")
        column = table.column("trial_id").combine_chunks()
        ids += [column.slice(begin, end - begin) for begin, end in zip([0, *ends[:-1]], ends)]
    return ids


def _column(location: str, name: str) -> pa.Array:
    """One column of a (compacted, large) file, read batch by batch: not the whole file's
    bytes, as ``storage.read_table`` would."""
    batches = list(storage.read_batches(location, [name]))
    schema = pa.schema([TRIALS_SCHEMA.field(name)])
    table = pa.Table.from_batches(batches) if batches else schema.empty_table()
    return table.column(name).combine_chunks().cast(pa.string())


def _is_part(location: str) -> bool:
    """Whether ``location`` is ``…/parts/<table>/<pack_id>.parquet`` (string work: it is
    asked of every part, a million-trial sweep has 31,000), not a compacted file (whose
    sweep's ``--out`` may be named ``parts``)."""
    folders = str(location).rsplit("/", 3)[-3:-1]
    return folders[0] == "parts" and folders[1] in SCHEMAS


def _generation(location: str) -> bytes | None:
    return storage.read_metadata(location).get(GENERATION)


def _source_tables(sources: list[dict[str, str]], keep: list[_Kept], name: str,
                   schema: pa.Schema) -> Iterator[pa.Table]:
    """The rows of table ``name`` that each source contributes, in order, conformed to
    ``schema``: whole parts in multi-threaded scans of many files at a time, a compacted
    file of its trials' compaction streamed in batches, anything else read and filtered."""
    group: list[str] = []
    for source, kept in zip(sources, keep):
        location = source[name]
        if (kept.ids is not None and not len(kept.ids)) or not storage.exists(location):
            continue
        if kept.whole and not kept.subset and _is_part(location):
            group.append(location)
            continue
        yield from _scanned(group, schema)
        group = []
        yield from _kept_batches(location, schema, kept)
    yield from _scanned(group, schema)


def _scanned(locations: list[str], schema: pa.Schema) -> Iterator[pa.Table]:
    """Many small files' rows, batch by batch as multi-threaded scans of ``SCAN_FILES`` at a
    time read them (a scan holds what it learnt of each of its files until it ends)."""
    for start in range(0, len(locations), SCAN_FILES):
        for batch in _scanned_batches(locations[start:start + SCAN_FILES], schema,
                                      schema.names):
            yield pa.Table.from_batches([batch])


def _scanned_batches(locations: list[str], schema: pa.Schema,
                     columns: list[str]) -> Iterator[pa.RecordBatch]:
    """``columns`` of a few small files in one scan; a damaged file is named."""
    try:
        yield from storage.scan(locations, schema, columns)
    except DataFormatError:
        for location in locations:  # which file: reading each alone names it
            storage.read_table(location)
        raise


def _kept_batches(location: str, schema: pa.Schema, kept: _Kept) -> Iterator[pa.Table]:
    """The rows of one file that ``kept`` contributes: streamed in batches when the file is of
    the same compaction as its source's trials file, else read whole and filtered."""
    if kept.generation is not None and _generation(location) == kept.generation:
        matching = ("trial_id", kept.ids) if kept.subset else None
        for batch in storage.read_batches(location, schema.names, matching):
            table = _conformed(pa.Table.from_batches([batch]), schema)
            yield _rows_of(table, kept.ids) if kept.subset else table
    else:
        yield _rows_of(_read(location, schema), kept.ids)


def _row_groups(tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """``tables`` gathered into tables of about ``ROW_GROUP_ROWS`` rows: a row group per small
    part would make the compacted file slow to write and to read."""
    gathered, rows = [], 0
    for table in tables:
        gathered.append(table)
        rows += table.num_rows
        if rows >= ROW_GROUP_ROWS:
            yield pa.concat_tables(gathered)
            gathered, rows = [], 0
    if gathered:
        yield pa.concat_tables(gathered)


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _read(location: str, schema: pa.Schema) -> pa.Table:
    if not storage.exists(location):
        return schema.empty_table()
    return _conformed(storage.read_table(location), schema)


def _conformed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns in its order and types (a column written before
    it existed is null; Parquet gives ``timestamp[s]`` back as milliseconds)."""
    held = set(table.column_names)
    for field in schema:
        if field.name not in held:  # reports written before a column existed
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    table = table.select(schema.names)
    if table.schema.equals(schema):
        return table
    return pa.Table.from_arrays([column if column.type == field.type else column.cast(field.type)
                                 for column, field in zip(table.columns, schema)], schema=schema)


def _rows_of(table: pa.Table, trial_ids: pa.Array | None) -> pa.Table:
    """The rows of ``trial_ids`` (None: every row)."""
    if trial_ids is None:
        return table
    return table.filter(pc.is_in(table.column("trial_id"), value_set=trial_ids))
