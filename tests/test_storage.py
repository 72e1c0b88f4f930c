"""Atomic report writes: the target is replaced whole and no temporary file is left."""

import pyarrow as pa

from mnist_core import storage


def test_write_table_is_atomic_and_readable(tmp_path):
    target = storage.join(str(tmp_path), "nested", "table.parquet")
    storage.write_table(target, pa.table({"a": [1, 2]}))
    storage.write_table(target, pa.table({"a": [3]}))
    assert storage.read_table(target).column("a").to_pylist() == [3]
    assert sorted(p.name for p in (tmp_path / "nested").iterdir()) == ["table.parquet"]


def test_uri_detection():
    assert storage.is_uri("s3://bucket/runs")
    assert not storage.is_uri("runs/x")
    assert storage.join("s3://bucket/runs/", "a", "b.parquet") == "s3://bucket/runs/a/b.parquet"
