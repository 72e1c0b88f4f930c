"""Where reports land: a local path or a pyarrow filesystem URI (``s3://…``, ``gs://…``).

Every write is atomic. Locally the bytes go to a temporary file beside the target, are flushed
to disk, then renamed over it, so a reader (or a resumed job) never sees half a file. Object
stores publish an object only when its upload completes, which gives the same guarantee.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def is_uri(location: str) -> bool:
    """True for ``scheme://…`` locations handled by a pyarrow filesystem."""
    return "://" in str(location) and not str(location).startswith("file://")


def join(base: str, *parts: str) -> str:
    """Join path parts under ``base``, keeping URIs as URIs."""
    if is_uri(base):
        return "/".join([str(base).rstrip("/"), *parts])
    return str(Path(_local(base), *parts))


def exists(location: str) -> bool:
    """True when a file exists at ``location``."""
    if not is_uri(location):
        return Path(_local(location)).is_file()
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(location)
    return filesystem.get_file_info(path).type == fs.FileType.File


def read_bytes(location: str) -> bytes:
    """Return the bytes stored at ``location``."""
    if not is_uri(location):
        return Path(_local(location)).read_bytes()
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(location)
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


def write_bytes(location: str, data: bytes) -> None:
    """Atomically replace the file at ``location`` with ``data``, creating folders as needed."""
    if is_uri(location):
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(location)
        filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with filesystem.open_output_stream(path) as stream:
            stream.write(data)
        return
    target = Path(_local(location))
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_table(location: str, table: pa.Table) -> None:
    """Atomically write ``table`` as a Parquet file at ``location``."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    write_bytes(location, buffer.getvalue())


def read_table(location: str) -> pa.Table:
    """Read the Parquet file at ``location``."""
    return pq.read_table(io.BytesIO(read_bytes(location)))


def _local(location: str) -> str:
    return str(location).removeprefix("file://")

