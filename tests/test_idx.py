"""The IDX reader on files the test writes, gzipped and raw, and on each corrupt form."""

import gzip

import numpy as np
import pytest
from _idx import write_idx

from mnist_core.errors import DataFormatError, DataNotFoundError
from mnist_core.idx import read_idx


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_round_trip(tmp_path, name):
    images = np.random.default_rng(1).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / name, images)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    np.testing.assert_array_equal(read_idx(path), images)


def test_labels_are_one_dimensional(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    assert read_idx(write_idx(tmp_path / "labels", labels)).shape == (10,)


def _valid_bytes() -> bytes:
    return bytes([0, 0, 8, 1]) + (4).to_bytes(4, "big") + bytes([1, 2, 3, 4])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x00\x00\x0d\x01" + (4).to_bytes(4, "big") + bytes(16), "magic"),
        (b"\x08\x03\x00\x00" + bytes(12), "magic"),
        (b"", "magic"),
        (bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big"), "truncated IDX header"),
        (_valid_bytes()[:-1], "truncated"),
        (_valid_bytes() + b"\x00", "trailing"),
        (gzip.compress(_valid_bytes())[:-6], "gzip"),
    ],
)
def test_corrupt_files_raise_one_line_errors(tmp_path, payload, message):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(payload)
    with pytest.raises(DataFormatError, match=message) as caught:
        read_idx(path)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataNotFoundError, match="no such IDX file"):
        read_idx(tmp_path / "absent")
