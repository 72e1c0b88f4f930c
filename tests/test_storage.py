"""Storage: atomic writes, the file mode a user expects, listing, and up-front output checks."""

import os

import pyarrow as pa
import pytest

from mnist_core import storage
from mnist_core.errors import OutputError


def test_write_table_is_atomic_and_readable(tmp_path):
    target = storage.join(str(tmp_path), "nested", "table.parquet")
    storage.write_table(target, pa.table({"a": [1, 2]}))
    storage.write_table(target, pa.table({"a": [3]}))
    assert storage.read_table(target).column("a").to_pylist() == [3]
    assert sorted(p.name for p in (tmp_path / "nested").iterdir()) == ["table.parquet"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        storage.write_bytes(str(tmp_path / "report.parquet"), b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "report.parquet").stat().st_mode & 0o777 == 0o666 & ~umask


def test_uri_detection():
    assert storage.is_uri("s3://bucket/runs")
    assert not storage.is_uri("runs/x")
    assert not storage.is_uri("file:///tmp/x")
    assert storage.join("s3://bucket/runs/", "a", "b.parquet") == "s3://bucket/runs/a/b.parquet"
    assert storage.parent("s3://bucket/runs/a.parquet") == "s3://bucket/runs"


def test_list_files_takes_a_file_a_folder_or_a_glob(tmp_path):
    for name in ("a.parquet", "b.parquet", "sub/c.parquet", "sub/d.npy"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"12345")
    names = lambda pattern: [os.path.relpath(e.location, tmp_path)  # noqa: E731
                             for e in storage.list_files(pattern)]
    assert names(str(tmp_path / "a.parquet")) == ["a.parquet"]
    assert names(str(tmp_path)) == ["a.parquet", "b.parquet", "sub/c.parquet", "sub/d.npy"]
    assert names(str(tmp_path / "**" / "*.parquet")) == ["a.parquet", "b.parquet",
                                                         "sub/c.parquet"]
    assert names(str(tmp_path / "absent")) == []
    assert {e.size for e in storage.list_files(str(tmp_path))} == {5}


def test_check_writable_creates_the_folder_and_leaves_nothing(tmp_path):
    storage.check_writable(str(tmp_path / "new" / "out"))
    assert list((tmp_path / "new" / "out").iterdir()) == []


@pytest.mark.parametrize("where", ["/proc/nope/out", "{tmp}/file/out"])
def test_check_writable_names_the_folder_it_cannot_write(tmp_path, where):
    (tmp_path / "file").write_text("a file, not a folder")
    location = where.format(tmp=tmp_path)
    with pytest.raises(OutputError, match=f"{location}: cannot write there") as caught:
        storage.check_writable(location)
    assert caught.value.key == "out"  # the jobs spell it --out


def test_reading_some_ids_skips_the_row_groups_that_cannot_hold_them(tmp_path):
    import pyarrow.parquet as pq

    location = str(tmp_path / "cells.parquet")
    ids = [f"t{index:04d}" for index in range(1000) for _ in range(10)]
    table = pa.table({"trial_id": ids, "count": list(range(len(ids)))})
    with storage.table_writer(location, table.schema) as writer:
        writer.write_table(table, row_group_size=1000)  # ten row groups, 100 ids each
    assert pq.ParquetFile(location).num_row_groups == 10
    wanted = pa.array(["t0150", "t0151", "t0720"])
    batches = list(storage.read_batches(location, ["trial_id", "count"], ("trial_id", wanted)))
    read = pa.Table.from_batches(batches)
    assert read.num_rows == 2000  # the row groups of t0100-t0199 and t0700-t0799 only
    held = read.filter(pa.compute.is_in(read.column("trial_id"), value_set=wanted))
    assert held.column("count").to_pylist() == [*range(1500, 1520), *range(7200, 7210)]
    nothing = storage.read_batches(location, None, ("trial_id", pa.array(["t9999"])))
    assert list(nothing) == []
