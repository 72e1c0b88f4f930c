"""Where files live: a local path or a filesystem URI (``s3://…``, ``gs://…``, ``file://…``).

Every write is atomic. Locally the bytes go to a temporary file beside the target, are flushed
to disk, then renamed over it, so a reader (or a resumed job) never sees half a file; the file
gets the mode any other new file would (0666 less the user's umask), not ``mkstemp``'s 0600.
On an object store the bytes go to a temporary key first and are then copied into place
server-side: a pyarrow S3 output stream publishes its object even when the writer raised
(apache/arrow#40502), so writing straight to the target could publish half a file.
"""

from __future__ import annotations

import bisect
import contextlib
import fnmatch
import glob
import io
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mnist_core.errors import DataFormatError, OutputError

BATCH_ROWS = 65_536  # rows per record batch when a table is streamed


@dataclass(frozen=True, order=True)
class FileEntry:
    """A file found by ``list_files``: its location (path or URI), size and modification time."""

    location: str
    size: int
    mtime_ns: int


def is_uri(location: str) -> bool:
    """True for ``scheme://…`` locations handled by a pyarrow filesystem (not ``file://``)."""
    return "://" in str(location) and not str(location).startswith("file://")


def join(base: str, *parts: str) -> str:
    """Join path parts under ``base``, keeping URIs as URIs."""
    if is_uri(base):
        return "/".join([str(base).rstrip("/"), *parts])
    return str(Path(_local(base), *parts))


def parent(location: str) -> str:
    """The folder that holds ``location``."""
    if is_uri(location):
        return str(location).rstrip("/").rsplit("/", 1)[0]
    return str(Path(_local(location)).parent)


def name(location: str) -> str:
    """The last part of ``location``."""
    return str(location).rstrip("/").rsplit("/", 1)[-1]


def is_temporary(location: str) -> bool:
    """Whether ``location`` is the temporary file of an atomic write (``_atomic_output``'s:
    its name starts with a dot), one still being written or left by a writer killed mid-write:
    never a file of its own."""
    return name(location).startswith(".")


def finished_files(pattern: str) -> list[FileEntry]:
    """``list_files`` without the temporary files of writes in progress or cut off
    (``is_temporary``): the files a reader may read."""
    return [entry for entry in list_files(pattern) if not is_temporary(entry.location)]


def exists(location: str) -> bool:
    """True when a file exists at ``location``."""
    if not is_uri(location):
        return Path(_local(location)).is_file()
    from pyarrow import fs

    filesystem, path = _filesystem(location)
    return filesystem.get_file_info(path).type == fs.FileType.File


def is_folder(location: str) -> bool:
    """True when ``location`` is a folder (on an object store: a prefix holding objects)."""
    if not is_uri(location):
        return Path(_local(location)).is_dir()
    from pyarrow import fs

    filesystem, path = _filesystem(location)
    return filesystem.get_file_info(path).type == fs.FileType.Directory


def read_bytes(location: str) -> bytes:
    """Return the bytes stored at ``location``."""
    if not is_uri(location):
        return Path(_local(location)).read_bytes()
    filesystem, path = _filesystem(location)
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


def write_bytes(location: str, data: bytes) -> None:
    """Atomically replace the file at ``location`` with ``data``, creating folders as needed."""
    with _atomic_output(location) as stream:
        stream.write(data)


def write_table(location: str, table: pa.Table) -> None:
    """Atomically write ``table`` as a Parquet file at ``location``."""
    write_bytes(location, parquet_bytes(table))


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as the bytes of a Parquet file (made where it is cheap, written elsewhere)."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def parquet_table(data: bytes) -> pa.Table:
    """The table in the bytes of a Parquet file (``parquet_bytes``)."""
    return pq.read_table(io.BytesIO(data), use_threads=False)


def arrow_bytes(table: pa.Table) -> bytes:
    """``table`` in Arrow's IPC stream format: about ten times quicker to send between
    processes than a pickled table (whose columns are rebuilt one Python call at a time)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def arrow_table(data: bytes) -> pa.Table:
    """The table in ``arrow_bytes``' output."""
    return pa.ipc.open_stream(pa.BufferReader(data)).read_all()


def read_table(location: str, columns: list[str] | None = None) -> pa.Table:
    """Read the Parquet file at ``location`` (its bytes once, so a concurrent replace is safe),
    only ``columns`` when given; a truncated or corrupt file is a ``DataFormatError`` naming
    it."""
    data = read_bytes(location)
    with _readable(location):
        # One thread: pyarrow 25's threaded decoding of an in-memory file leaves its thread
        # pool to abort the interpreter at exit ("terminate called without an active
        # exception", exit 134); our files are small, or streamed by ``read_batches``.
        return pq.read_table(io.BytesIO(data), columns=columns, use_threads=False)


def read_batches(location: str, columns: list[str] | None = None,
                 matching: tuple[str, pa.Array] | None = None) -> Iterator[pa.RecordBatch]:
    """The Parquet file at ``location`` in record batches, never all of it in memory at once
    (a compacted table of a million-trial sweep holds 100 million confusion cells).
    ``matching``, a column and some values: only the row groups whose statistics say that
    column may hold one of them are read (the caller still filters their rows). One row
    group at a time: a reader over many keeps what it decoded of each until it ends (+200 MB
    over the 151 row groups of a million trials' epochs)."""
    with _readable(location), open_input(location) as source:
        parquet = pq.ParquetFile(source)
        if columns is not None:  # a file written before a column existed lacks it
            columns = _present(columns, parquet)
        groups = (range(parquet.metadata.num_row_groups) if matching is None
                  else _row_groups_holding(parquet, *matching))
        if matching is not None and columns != [matching[0]] and len(groups) > 1:
            groups = [group for group in groups if _group_holds(parquet, group, *matching)]
        for group in groups:
            yield from parquet.iter_batches(BATCH_ROWS, row_groups=[group], columns=columns)


def _present(columns: list[str], parquet: pq.ParquetFile) -> list[str]:
    """Those of ``columns`` the file holds (``schema_arrow`` is rebuilt on each access)."""
    held = set(parquet.schema_arrow.names)
    return [name for name in columns if name in held]


def _group_holds(parquet: pq.ParquetFile, group: int, column: str, values: pa.Array) -> bool:
    """Whether row group ``group`` holds one of ``values`` in ``column``, read alone (ids that
    sort unlike their order, ``t97481`` after ``t131072``, defeat the statistics)."""
    held = parquet.read_row_group(group, columns=[column]).column(0)
    return bool(pc.any(pc.is_in(held, value_set=values)).as_py())


def _row_groups_holding(parquet: pq.ParquetFile, column: str, values: pa.Array) -> list[int]:
    """The row groups of ``parquet`` whose ``column`` statistics (its minimum and maximum)
    leave room for one of ``values``; every row group, when it has none."""
    metadata = parquet.metadata
    if not metadata.num_row_groups:
        return []
    leaves = metadata.row_group(0)
    (leaf,) = [index for index in range(leaves.num_columns)
               if leaves.column(index).path_in_schema == column]
    wanted = sorted(values.to_pylist())
    groups = []
    for group in range(metadata.num_row_groups):
        statistics = metadata.row_group(group).column(leaf).statistics
        if statistics is None or not statistics.has_min_max:
            groups.append(group)
            continue
        first = bisect.bisect_left(wanted, statistics.min)
        if first < len(wanted) and wanted[first] <= statistics.max:
            groups.append(group)
    return groups


def scan(locations: list[str], schema: pa.Schema,
         columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The Parquet files at ``locations`` (all local, or all on one filesystem) as one dataset
    with ``schema`` (a column a file lacks is null), read by several threads at once, in
    order; ``columns`` may name ``__fragment_index`` (which file a row came from)."""
    import pyarrow.dataset as ds

    if is_uri(locations[0]):
        filesystem, paths = _filesystem(locations[0])[0], [_filesystem(location)[1]
                                                           for location in locations]
    else:
        filesystem, paths = None, [_local(location) for location in locations]
    named = locations[0] if len(locations) == 1 else (
        f"{locations[0]} (or one of {len(locations) - 1} files after it)")
    with _readable(named):
        dataset = ds.dataset(paths, schema=schema, format="parquet", filesystem=filesystem)
        yield from dataset.to_batches(columns=columns, batch_size=BATCH_ROWS,
                                      batch_readahead=4, fragment_readahead=8)


def read_metadata(location: str) -> dict[bytes, bytes]:
    """The key-value metadata of the Parquet file at ``location`` (its footer alone)."""
    with _readable(location), open_input(location) as source:
        return pq.ParquetFile(source).schema_arrow.metadata or {}


@contextlib.contextmanager
def table_writer(location: str, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """A Parquet writer whose file appears at ``location`` only once it is closed whole (as
    ``write_bytes``: a temporary file renamed, or a temporary key copied into place)."""
    with _atomic_output(location) as stream, pq.ParquetWriter(stream, schema) as writer:
        yield writer


@contextlib.contextmanager
def open_input(location: str):
    """A seekable binary file open for reading at ``location`` (a path or URI)."""
    if not is_uri(location):
        with open(_local(location), "rb") as source:
            yield source
        return
    filesystem, path = _filesystem(location)
    with filesystem.open_input_file(path) as source:
        yield source


@contextlib.contextmanager
def _readable(location: str) -> Iterator[None]:
    """A Parquet file that cannot be read is a ``DataFormatError`` naming it."""
    try:
        yield
    except pa.ArrowException as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        reason = reason.replace("Could not open Parquet input source '<Buffer>': ", "")
        raise DataFormatError(f"{location}: not a readable Parquet file ({reason})") from None


def write_rows(location: str, rows: list[dict], schema: pa.Schema) -> None:
    """Atomically write ``rows`` as a Parquet file with ``schema`` (``rows_table``)."""
    write_table(location, rows_table(rows, schema, location))


def rows_table(rows: list[dict], schema: pa.Schema, location: str) -> pa.Table:
    """``rows`` as a table with ``schema``, for ``location``; a row holding a key the schema
    lacks is a bug of ours (pyarrow would drop that column silently)."""
    extra = {key for row in rows for key in row} - set(schema.names)
    assert not extra, f"{location}: columns {sorted(extra)} are not in the schema"
    return pa.Table.from_pylist(rows, schema=schema)


def read_rows(location: str) -> list[dict]:
    """Rows of an existing Parquet file, or an empty list when there is none yet."""
    return read_table(location).to_pylist() if exists(location) else []


def remove(location: str) -> None:
    """Delete the file at ``location`` if it exists."""
    if not is_uri(location):
        Path(_local(location)).unlink(missing_ok=True)
        return
    filesystem, path = _filesystem(location)
    with contextlib.suppress(FileNotFoundError):
        filesystem.delete_file(path)


def move(source: str, target: str) -> None:
    """Put the file at ``source`` at ``target`` (replacing it) and remove ``source``: a rename
    locally (atomic on one filesystem), a server-side copy then a delete on an object store
    (each object appears whole)."""
    if not is_uri(target):
        Path(_local(target)).parent.mkdir(parents=True, exist_ok=True)
        os.replace(_local(source), _local(target))
        return
    filesystem, path = _filesystem(target)
    _, source_path = _filesystem(source)
    filesystem.copy_file(source_path, path)
    filesystem.delete_file(source_path)


def remove_empty_folders(location: str) -> None:
    """Delete ``location`` and the folders under it that hold no file (on a local disk; an
    object store has no folders to leave behind)."""
    if is_uri(location) or not Path(_local(location)).is_dir():
        return
    for folder, _, _ in sorted(os.walk(_local(location)), reverse=True):  # deepest first
        with contextlib.suppress(OSError):  # not empty: a file arrived, or was never removed
            os.rmdir(folder)


def list_files(pattern: str) -> list[FileEntry]:
    """Files at a path, under a folder (recursively) or matching a glob, sorted by location."""
    if not is_uri(pattern):
        return _list_local(_local(pattern))
    from pyarrow import fs

    filesystem, path = _filesystem(pattern)
    scheme = str(pattern).split("://", 1)[0]
    root = "/".join(glob_root(path)) if glob.has_magic(path) else path
    info = filesystem.get_file_info(root)
    if info.type == fs.FileType.File:
        infos = [info]
    elif info.type == fs.FileType.Directory:
        infos = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    else:
        return []
    return sorted(FileEntry(f"{scheme}://{item.path}", item.size, item.mtime_ns or 0)
                  for item in infos if item.type == fs.FileType.File
                  and (not glob.has_magic(path) or fnmatch.fnmatchcase(item.path, path)))


def make_folder(location: str) -> bool:
    """Create the folder ``location`` exclusively: True when this call created it, False when
    it was there already. On an object store (no folders, no exclusive create) True means no
    object had that prefix yet: two machines racing can both get True."""
    if is_uri(location):
        return not list_files(location)
    path = Path(_local(location))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        return False
    return True


def check_writable(location: str, key: str = "out") -> None:
    """Create ``location`` as a folder and write (then delete) a probe file there, so that a
    job learns of a bad output folder before any work; ``OutputError`` names it otherwise."""
    probe = join(location, f".write-probe-{uuid.uuid4().hex}")
    try:
        write_bytes(probe, b"")
        remove(probe)
    except (OSError, pa.ArrowException) as error:
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        raise OutputError(f"{location}: cannot write there ({reason})", key=key) from None


@contextlib.contextmanager
def _atomic_output(location: str) -> Iterator:
    """A stream whose bytes replace the file at ``location`` only once it closes whole (see
    the module docstring), creating folders as needed."""
    if is_uri(location):
        with _object_output(location) as stream:
            yield stream
        return
    target = Path(_local(location))
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fchmod(stream.fileno(), 0o666 & ~_umask())
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _object_output(location: str) -> Iterator:
    filesystem, path = _filesystem(location)
    folder, leaf = path.rsplit("/", 1)
    filesystem.create_dir(folder, recursive=True)
    temporary = f"{folder}/.{leaf}.{uuid.uuid4().hex}.tmp"
    try:
        with filesystem.open_output_stream(temporary) as stream:
            yield stream
        filesystem.copy_file(temporary, path)
    finally:
        with contextlib.suppress(Exception):
            filesystem.delete_file(temporary)


def _list_local(pattern: str) -> list[FileEntry]:
    if glob.has_magic(pattern):
        matches = [Path(match) for match in glob.glob(pattern, recursive=True)]
    else:
        matches = [Path(pattern)]
    files = set()
    for match in matches:
        if match.is_file():
            files.add(match.resolve())
        elif match.is_dir():
            files.update(file.resolve() for file in match.rglob("*") if file.is_file())
    entries = []
    for file in files:
        stat = file.stat()
        entries.append(FileEntry(str(file), stat.st_size, stat.st_mtime_ns))
    return sorted(entries)


def glob_root(pattern: str) -> list[str]:
    """The parts of ``pattern`` (split at "/") before its first wildcard."""
    plain = []
    for part in pattern.split("/"):
        if glob.has_magic(part):
            break
        plain.append(part)
    return plain


def _filesystem(location: str):
    from pyarrow import fs

    return fs.FileSystem.from_uri(str(location))


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _local(location: str) -> str:
    return str(location).removeprefix("file://")
