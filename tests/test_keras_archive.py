"""A ``.keras`` archive is checked member by member before Keras opens it."""

import io
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mnist_core.config import ModelConfig
from mnist_core.errors import DataFormatError
from mnist_core.keras_archive import check_archive
from mnist_core.model import build_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_model(ModelConfig((12,), "tanh"), 784).save(path)
    return path.read_bytes()


def _with_declared_size(data: bytes, member: str, size: int) -> bytes:
    """The archive with ``member``'s uncompressed size rewritten in its central directory
    entry (where ``zipfile`` reads it), as a hostile archive would declare it."""
    patched = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
    start = 0
    for _ in range(len(names)):
        start = patched.index(b"PK\x01\x02", start)
        name_length = struct.unpack_from("<H", patched, start + 28)[0]
        if patched[start + 46:start + 46 + name_length].decode() == member:
            struct.pack_into("<I", patched, start + 24, size)
            return bytes(patched)
        start += 46
    raise AssertionError(f"{member} not in the archive")


def test_a_model_archive_gives_its_input_size(model_bytes):
    assert check_archive(model_bytes, "m.keras").input_dim == 784


@pytest.mark.parametrize(("member", "size", "message"), [
    ("config.json", 3 * 2**30, "member config.json declares 3,221,225,472 bytes"),
    ("model.weights.h5", 2 * 2**30, "member model.weights.h5 declares 2,147,483,648 bytes"),
    ("config.json", 100, "not a loadable Keras model"),  # inflates past what it declares
])
def test_a_member_over_its_limit_or_its_declared_size_is_refused(model_bytes, member, size,
                                                                 message):
    with pytest.raises(DataFormatError, match=message):
        check_archive(_with_declared_size(model_bytes, member, size), "m.keras")


def test_not_a_zip_is_refused():
    with pytest.raises(DataFormatError, match="m.keras: not a loadable Keras model"):
        check_archive(b"not a zip", "m.keras")


def test_scoring_refuses_a_model_declaring_gigabytes_in_one_line_exit_3(tmp_path, model_bytes):
    model = tmp_path / "huge.keras"
    model.write_bytes(_with_declared_size(model_bytes, "config.json", 3 * 2**30))
    shards = tmp_path / "in"
    shards.mkdir()
    (shards / "a.npy").write_bytes(b"")
    result = subprocess.run([sys.executable, "-m", "jobs.score", "--model", str(model),
                             "--input", str(shards), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120, cwd=ROOT,
                            env={**os.environ, "RAY_ADDRESS": ""})
    assert result.returncode == 3
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {model}: member config.json declares")
    assert not (tmp_path / "out").exists()
