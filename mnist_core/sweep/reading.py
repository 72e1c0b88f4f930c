"""Reading a sweep's reports, finished or still running: its compacted files plus the parts
of every finished pack, each trial taken from exactly one of them.

Folder layout once a sweep run ends: ``trials``, ``epochs``, ``confusion`` and ``per_class``
Parquet files (one row per trial, per epoch, per confusion cell, per label), ``sweep.toml``
(the config that made it) and ``best/`` (``mnist_core.best``). While it runs, each finished
pack adds one part file per table under ``parts/<table>/<pack_id>.parquet``
(``sweep.recording``), and every run ends by compacting them (``sweep.compaction``).

Readers take only what they need: ``read_index`` (what a resume needs), ``read_rows`` (some
columns, some trials), ``read_sweep`` (everything, for reports). A pack's ``trials`` part is
the record that the pack finished: detail parts without it (a driver killed mid-write) are
ignored, and every trial comes from exactly one place, so a resumed sweep neither loses nor
repeats a trial, even when it was killed halfway through a compaction. What no crash can
leave but a lost or damaged file can — a recorded source missing a detail file, compacted
details whose ``trials.parquet`` is gone, a truncated file — stops the reader with one line
naming the file (``DataFormatError``, exit 3), never a silent loss of rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mnist_core import storage
from mnist_core.errors import DataFormatError
from mnist_core.reports import (
    CONFUSION_SCHEMA,
    EPOCHS_SCHEMA,
    PER_CLASS_SCHEMA,
    TRIALS_SCHEMA,
    at_chance,
    trust_in,
)

DETAIL_SCHEMAS = {"epochs": EPOCHS_SCHEMA, "confusion": CONFUSION_SCHEMA,
                  "per_class": PER_CLASS_SCHEMA}


SCHEMAS = {**DETAIL_SCHEMAS, "trials": TRIALS_SCHEMA}


INDEX_COLUMNS = ["trial_id", "status", "val_accuracy", "val_loss", "seed"]


INDEX_SCHEMA = pa.schema([TRIALS_SCHEMA.field(name) for name in INDEX_COLUMNS])


GENERATION = b"mnist_core.compaction"  # one token per compaction, in each file's metadata


SCAN_FILES = 64  # part files per multi-threaded scan: its memory grows with its files


def read_sweep(folder: str) -> dict[str, pa.Table]:
    """Every table of a sweep, finished or still running: the compacted files plus the parts
    of every finished pack, each trial taken from exactly one of them. Whole tables in
    memory: for reports and pages; the driver reads only what it needs (``read_index``)."""
    sources = sources_of(folder)
    check_orphans(folder, sources)
    keep = kept_ids(sources)
    return {name: _concat(list(source_tables(sources, keep, name, schema)), schema)
            for name, schema in SCHEMAS.items()}


def read_index(folder: str) -> pa.Table:
    """The ``INDEX_COLUMNS`` of every recorded trial (what a resume needs to know), read from
    the trials files alone, each trial from exactly one source."""
    sources = sources_of(folder)
    check_orphans(folder, sources)
    keep = kept_ids(sources)
    return _concat(list(source_tables(sources, keep, "trials", INDEX_SCHEMA)), INDEX_SCHEMA)


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
        self.sources = sources_of(folder)
        check_orphans(folder, self.sources)  # a page never hides rows a lost file held
        self.keep = kept_ids(self.sources)

    def rows(self, name: str, trial_ids: set[str] | None = None,
             columns: list[str] | None = None) -> pa.Table:
        """As ``read_rows``, from these files."""
        schema = SCHEMAS[name]
        if columns is not None:
            schema = pa.schema([schema.field(column) for column in columns])
        keep = self.keep
        if trial_ids is not None:
            wanted = pa.array(sorted(trial_ids), pa.string())
            keep = [kept.only(wanted) for kept in keep]
        return _concat(list(source_tables(self.sources, keep, name, schema)), schema)


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


def part_location(folder: str, name: str, pack_id: str) -> str:
    """Where the part of table ``name`` of pack ``pack_id`` lives in ``folder``."""
    return storage.join(folder, "parts", name, f"{pack_id}.parquet")


def sources_of(folder: str) -> list[dict[str, str | None]]:
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


def check_orphans(folder: str, sources: list[dict[str, str]]) -> None:
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
class Kept:
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

    def for_compaction(self, source: dict[str, str]) -> Kept:
        """This, without the ids when ``source`` is a part whose every row is wanted: its
        files are then read whole (``source_tables``) and its ids are never asked for."""
        if (self.whole and not self.subset and self.ids is not None and len(self.ids)
                and _is_part(source["trials"])):
            return Kept(None, True)
        return self

    def only(self, wanted: pa.Array) -> Kept:
        """The same source, contributing only the ids in ``wanted`` (of its own, where it
        knows them; else all of them: filtering its rows drops the others)."""
        ids = wanted if self.ids is None else pc.filter(self.ids,
                                                        pc.is_in(self.ids, value_set=wanted))
        return Kept(ids, self.whole, self.generation, subset=True)


def kept_ids(sources: list[dict[str, str]]) -> list[Kept]:
    """What each source contributes (``read_sweep``'s rule: each trial from the first source
    that records it), from its trials file's ids, as Arrow arrays (no Python strings). One
    source (a compacted sweep) has nothing to take from another: its ids are not read."""
    for source in sources:
        _check_complete(source)
    if len(sources) == 1:
        location = sources[0]["trials"]
        return [Kept(None, True, None if _is_part(location) else _generation(location))]
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
            kept.append(Kept(ids.filter(pa.array(mask)), False))
        elif _is_part(source["trials"]):
            kept.append(Kept(ids, True))
        else:
            kept.append(Kept(ids, True, _generation(source["trials"])))
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


def source_tables(sources: list[dict[str, str]], keep: list[Kept], name: str,
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


def _kept_batches(location: str, schema: pa.Schema, kept: Kept) -> Iterator[pa.Table]:
    """The rows of one file that ``kept`` contributes: streamed in batches when the file is of
    the same compaction as its source's trials file, else read whole and filtered."""
    if kept.generation is not None and _generation(location) == kept.generation:
        matching = ("trial_id", kept.ids) if kept.subset else None
        for batch in storage.read_batches(location, schema.names, matching):
            table = _conformed(pa.Table.from_batches([batch]), schema)
            yield rows_of(table, kept.ids) if kept.subset else table
    else:
        yield rows_of(_read(location, schema), kept.ids)


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


def rows_of(table: pa.Table, trial_ids: pa.Array | None) -> pa.Table:
    """The rows of ``trial_ids`` (None: every row)."""
    if trial_ids is None:
        return table
    return table.filter(pc.is_in(table.column("trial_id"), value_set=trial_ids))
