"""Reader for the IDX format that MNIST and Fashion-MNIST ship in.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the data. Files may be gzipped. Only unsigned bytes
(type 0x08) occur in the MNIST family, so only those are accepted.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from mnist_core.errors import DataFormatError, DataNotFoundError

_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path) -> np.ndarray:
    """Return the array stored in the IDX file at ``path`` (gzipped or raw), as uint8."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != _UBYTE or raw[3] == 0:
        raise DataFormatError(f"{path}: bad IDX magic number {raw[:4].hex() or '(empty)'}")
    ndim = raw[3]
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise DataFormatError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header_end])
    expected = int(np.prod(shape))
    actual = len(raw) - header_end
    if actual != expected:
        problem = "truncated" if actual < expected else "has trailing bytes"
        raise DataFormatError(
            f"{path}: IDX data {problem}: expected {expected} bytes for shape {shape}, got {actual}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_end).reshape(shape)


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such IDX file")
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as error:
        raise DataFormatError(f"{path}: corrupt gzip stream ({error})") from None
