"""Input shards for batch scoring: finding them, fingerprinting them, reading them into rows.

A shard is the unit that is scored, committed and, after a crash, redone whole:
- a Parquet file with an ``id`` column and an ``image`` column (raw uint8 bytes, or a list of
  integers), one image per row;
- a ``.npy`` or ``.npz`` file of uint8 images, (n, side, side) or (n, side*side); ids are
  ``<file>:<index>`` (``<file>:<array>:<index>`` inside an npz);
- a folder holding PNG or JPEG files, each converted to side×side grayscale; ids are paths
  relative to the input root.

``side`` comes from the model (28 for MNIST-family models, 8 for models trained on digits).
Reading never raises for bad content: a corrupt shard yields one row whose ``error`` says why,
and a bad image yields a row with its ``error`` set, so the rest is still scored.
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_core.errors import DataNotFoundError

ARRAY_SUFFIXES = (".parquet", ".npy", ".npz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Shard:
    """One input shard: where it is, what kind it is, its size and modification time."""

    path: str
    kind: str  # parquet | npy | npz | images
    root: str
    size: int
    mtime_ns: int

    @property
    def key(self) -> str:
        """A short stable name for the shard's output folder, derived from its path."""
        return hashlib.sha1(self.path.encode()).hexdigest()[:16]


def discover(input_spec: str) -> list[Shard]:
    """Every shard under a file, folder or glob; ``DataNotFoundError`` when there is none."""
    matches = sorted(glob.glob(input_spec, recursive=True)) if glob.has_magic(input_spec) else [
        input_spec]
    root = _glob_root(input_spec)
    shards = {}
    for match in matches:
        for shard in _shards_at(Path(match), root):
            shards[shard.path] = shard
    if not shards:
        raise DataNotFoundError(f"--input {input_spec}: no Parquet, npy, npz or image files found")
    return sorted(shards.values(), key=lambda shard: shard.path)


def content_hash(shard: Shard) -> str:
    """SHA-256 of the shard's bytes (for a folder: of each image's relative path and bytes)."""
    digest = hashlib.sha256()
    files = _image_files(Path(shard.path)) if shard.kind == "images" else [Path(shard.path)]
    for file in files:
        if shard.kind == "images":
            digest.update(str(file.relative_to(shard.path)).encode() + b"\0")
        with open(file, "rb") as stream:
            while chunk := stream.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class ShardRows:
    """A shard read into rows: ids (Arrow strings), pixels (n, side*side) uint8, and per row
    an error ("" when the image is fine); plus the SHA-256 of the bytes that were read."""

    ids: object
    pixels: np.ndarray
    errors: np.ndarray
    content_hash: str


def read_shard(shard: Shard, side: int) -> ShardRows:
    """Read ``shard`` once, hashing its bytes; bad content becomes error rows, never raises."""
    import pyarrow as pa

    reader = {"parquet": _read_parquet, "npy": _read_npy, "npz": _read_npz,
              "images": _read_images}[shard.kind]
    digest = ""
    try:
        if shard.kind == "images":
            digest = content_hash(shard)
            ids, pixels, errors = reader(shard, side)
        else:
            data = Path(shard.path).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            ids, pixels, errors = reader(data, Path(shard.path).name, side)
    except Exception as error:  # noqa: BLE001 - any unreadable shard is recorded, never fatal
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        ids, pixels = pa.nulls(1, pa.string()), np.zeros((1, side * side), np.uint8)
        errors = np.array([f"unreadable shard: {type(error).__name__}: {reason}"], dtype=object)
    return ShardRows(pa.array(ids, pa.string()) if not isinstance(ids, pa.Array) else ids,
                     pixels, errors, digest)


def _glob_root(input_spec: str) -> str:
    parts = Path(input_spec).parts
    plain = []
    for part in parts:
        if glob.has_magic(part):
            break
        plain.append(part)
    root = Path(*plain) if plain else Path(".")
    return str((root if root.is_dir() else root.parent).resolve())


def _shards_at(path: Path, root: str) -> list[Shard]:
    if path.is_file() and path.suffix.lower() in ARRAY_SUFFIXES:
        return [_shard(path, path.suffix.lower().lstrip("."), root)]
    if not path.is_dir():
        return []
    shards = [_shard(file, file.suffix.lower().lstrip("."), root)
              for file in sorted(path.rglob("*"))
              if file.is_file() and file.suffix.lower() in ARRAY_SUFFIXES]
    folders = {file.parent for file in path.rglob("*") if file.suffix.lower() in IMAGE_SUFFIXES}
    return shards + [_shard(folder, "images", root) for folder in sorted(folders)]


def _shard(path: Path, kind: str, root: str) -> Shard:
    path = path.resolve()
    files = _image_files(path) if kind == "images" else [path]
    stats = [file.stat() for file in files]
    return Shard(str(path), kind, root, sum(stat.st_size for stat in stats),
                 max(stat.st_mtime_ns for stat in stats))


def _image_files(folder: Path) -> list[Path]:
    return sorted(file for file in folder.iterdir()
                  if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES)


def _read_parquet(data: bytes, name: str, side: int):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(data))
    missing = {"id", "image"} - set(table.column_names)
    if missing:
        raise ValueError(f"missing column(s) {', '.join(sorted(missing))}")
    ids = table.column("id").cast(pa.string()).combine_chunks()
    pixels, errors = _decode_images(table.column("image").combine_chunks(), side * side)
    return ids, pixels, errors


def _decode_images(column, size: int):
    """Decode an Arrow column of raw-byte or integer-list images into (n, size) uint8."""
    import pyarrow as pa

    if pa.types.is_large_binary(column.type):
        column = column.cast(pa.binary())
    if pa.types.is_large_list(column.type):
        column = column.cast(pa.list_(column.type.value_type))
    if pa.types.is_binary(column.type) or pa.types.is_fixed_size_binary(column.type):
        return _decode_bytes(column, size)
    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
        return _decode_lists(column, size)
    raise ValueError(f"image column has type {column.type}; expected bytes or a list")


def _decode_bytes(column, size: int):
    import pyarrow as pa
    import pyarrow.compute as pc

    count = len(column)
    lengths = pc.fill_null(pc.binary_length(column), -1).to_numpy()
    errors = np.full(count, "", dtype=object)
    bad = lengths != size
    errors[bad] = [f"image has {max(length, 0)} bytes, expected {size}" for length in lengths[bad]]
    if not bad.any():  # the common case: one contiguous slice of the data buffer, no copies
        data = np.frombuffer(column.buffers()[-1], np.uint8)
        first = size * column.offset if pa.types.is_fixed_size_binary(column.type) else \
            int(np.frombuffer(column.buffers()[1], np.int32)[column.offset])
        return data[first:first + count * size].reshape(count, size), errors
    pixels = np.zeros((count, size), np.uint8)
    for row in np.flatnonzero(~bad):
        pixels[row] = np.frombuffer(column[int(row)].as_py(), np.uint8)
    return pixels, errors


def _decode_lists(column, size: int):
    import pyarrow.compute as pc

    count = len(column)
    lengths = pc.fill_null(pc.list_value_length(column), -1).to_numpy()
    errors = np.full(count, "", dtype=object)
    pixels = np.zeros((count, size), np.uint8)
    good = lengths == size
    errors[~good] = [f"image has {max(length, 0)} values, expected {size}"
                     for length in lengths[~good]]
    rows = np.flatnonzero(good)
    flat = pc.list_flatten(column.take(rows)).to_numpy(zero_copy_only=False)
    values = flat.astype(np.float64).reshape(len(rows), size)
    finite = np.isfinite(values).all(axis=1)
    in_range = finite & (np.nan_to_num(values, nan=-1) >= 0).all(axis=1) & \
        (values <= 255).all(axis=1) & (values == np.round(values)).all(axis=1)
    errors[rows[~finite]] = "image holds NaN or infinite pixels"
    errors[rows[finite & ~in_range]] = "pixels must be integers in [0, 255]"
    pixels[rows[in_range]] = values[in_range].astype(np.uint8)
    return pixels, errors


def _read_npy(data: bytes, name: str, side: int):
    array = np.load(io.BytesIO(data), allow_pickle=False)
    return _array_rows(array, side, [f"{name}:{index}" for index in range(len(array))])


def _read_npz(data: bytes, name: str, side: int):
    parts = []
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        for key in archive.files:
            array = archive[key]
            parts.append(_array_rows(array, side,
                                     [f"{name}:{key}:{index}" for index in range(len(array))]))
    if not parts:
        raise ValueError("npz holds no arrays")
    return tuple(np.concatenate([part[i] for part in parts]) for i in range(3))


def _array_rows(array: np.ndarray, side: int, ids: list[str]):
    shape_ok = array.shape[1:] in ((side, side), (side * side,))
    if array.dtype != np.uint8 or not shape_ok:
        raise ValueError(f"array of {array.dtype} images shaped {array.shape[1:]}; expected "
                         f"uint8 images of {side}x{side}")
    pixels = np.ascontiguousarray(array.reshape(len(array), side * side))
    return np.array(ids, dtype=object), pixels, np.full(len(ids), "", dtype=object)


def _read_images(shard: Shard, side: int):
    from PIL import Image

    files = _image_files(Path(shard.path))
    pixels = np.zeros((len(files), side * side), np.uint8)
    errors = np.full(len(files), "", dtype=object)
    for row, file in enumerate(files):
        try:
            with Image.open(io.BytesIO(file.read_bytes())) as image:
                gray = image.convert("L").resize((side, side), Image.Resampling.BILINEAR)
                pixels[row] = np.asarray(gray, np.uint8).reshape(-1)
        except Exception as error:  # noqa: BLE001 - one bad image must not stop the shard
            errors[row] = f"unreadable image: {type(error).__name__}: {error}"
    ids = np.array([os.path.relpath(file, shard.root) for file in files], dtype=object)
    return ids, pixels, errors
