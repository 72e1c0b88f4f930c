"""Compaction: a sweep's part files streamed into one file per table at the end of every run.

``compact_table`` does one table (each can be handed to a worker; ``trials`` goes last: it
commits the others), in multi-threaded scans and row groups, never a whole table in memory.
Each compaction marks its files with one token (``reading.GENERATION``), so a compacted file
known whole streams without a filter.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from mnist_core import storage
from mnist_core.errors import recording
from mnist_core.sweep.reading import (
    DETAIL_SCHEMAS,
    GENERATION,
    SCHEMAS,
    Kept,
    check_orphans,
    kept_ids,
    source_tables,
    sources_of,
)

ROW_GROUP_ROWS = 65_536  # rows per row group of a compacted file


@dataclass(frozen=True)
class CompactionPlan:
    """One compaction of a sweep folder: its files (``sources_of``), the rows each gives
    (``Kept``; a part whose every row is wanted carries no ids, so the plan of a million
    trials is a few megabytes however many tasks it goes to), and the token its files get
    (``GENERATION``). Found once: finding it reads every trials file's ids."""

    folder: str
    sources: list[dict[str, str]]
    keep: list[Kept]
    generation: bytes

    @classmethod
    def of(cls, folder: str) -> CompactionPlan:
        sources = sources_of(folder)
        check_orphans(folder, sources)
        return cls(folder, sources, [kept.for_compaction(source) for source, kept
                                     in zip(sources, kept_ids(sources))],
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
        for table in _row_groups(source_tables(plan.sources, plan.keep, name, SCHEMAS[name])):
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)


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
