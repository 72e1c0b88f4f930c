"""Input shards for batch scoring: finding them, fingerprinting them, reading them into rows.

A shard is the unit that is scored, committed and, after a crash, redone whole:
- a Parquet file with an ``id`` column and an ``image`` column (raw uint8 bytes, or a list of
  integers), one image per row;
- a ``.npy`` or ``.npz`` file of uint8 images, (n, side, side) or (n, side*side); ids are
  ``<file>:<index>`` (``<file>:<array>:<index>`` inside an npz), ``<file>`` being the path
  relative to the input root, so ``day1/batch.npy`` and ``day2/batch.npy`` are distinct;
- a folder holding PNG or JPEG files, each converted to side×side grayscale; ids are paths
  relative to the input root.

Shards live on local disk or behind a URI (``s3://``, ``gs://``, ``file://``). ``side`` and the
pixel range come from the model (28 and 0–255 for MNIST-family models, 8 and 0–16 for models
trained on digits): pixels outside the range are rejected rows, never silently scored.
Reading never raises for bad content: a corrupt shard yields one row whose ``error`` says why,
and a bad image yields a row with its ``error`` set, so the rest is still scored. Ids are
strings or integers and keep their type; a null id, or an id that appears earlier in the same
shard, is a rejected row, never a second prediction (``IdClaims`` does the same across shards
and runs). A Parquet shard's optional ``label`` column holds integers; a label outside the
model's classes is a rejected row, so accuracy and the confusion matrix count the same images.

``image_sizes`` tells, before any shard is read whole, how many pixels a shard's images have
(from an array's header, a Parquet schema or its first rows), so that a run whose model takes
another size is refused before it starts.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_core import storage
from mnist_core.config import NUM_CLASSES
from mnist_core.errors import DataNotFoundError

ARRAY_SUFFIXES = (".parquet", ".npy", ".npz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Shard:
    """One input shard: where it is (a path or URI), what kind it is, its size and mtime."""

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
    """Every shard at a file, under a folder or matching a glob (local or a URI);
    ``DataNotFoundError`` when there is none."""
    root = _input_root(input_spec)
    entries = storage.list_files(input_spec)
    shards = [_shard(entry.location, _suffix(entry.location).lstrip("."), root, [entry])
              for entry in entries if _suffix(entry.location) in ARRAY_SUFFIXES]
    folders: dict[str, list[storage.FileEntry]] = {}
    for entry in entries:
        if _suffix(entry.location) in IMAGE_SUFFIXES:
            folders.setdefault(storage.parent(entry.location), []).append(entry)
    shards += [_shard(folder, "images", root, files) for folder, files in folders.items()]
    if not shards:
        raise DataNotFoundError(f"{input_spec}: no Parquet, npy, npz or image files found",
                                key="input")
    return sorted(shards, key=lambda shard: shard.path)


def content_hash(shard: Shard) -> str:
    """SHA-256 of the shard's bytes (for a folder: of each image's relative path and bytes)."""
    if shard.kind != "images":
        return hashlib.sha256(storage.read_bytes(shard.path)).hexdigest()
    digest = hashlib.sha256()
    for location in _image_files(shard.path):
        digest.update(storage.name(location).encode() + b"\0")
        digest.update(storage.read_bytes(location))
    return digest.hexdigest()


def image_sizes(shard: Shard, sample: int = 16) -> set[int]:
    """The pixel counts of ``shard``'s images as far as its header, schema or first
    ``sample`` rows tell without reading it whole; empty when they cannot tell (a folder of
    image files, which are resized, or a shard that cannot be read: scoring records why)."""
    if shard.kind == "images":
        return set()
    try:
        with storage.open_input(shard.path) as source:
            if shard.kind == "parquet":
                return _parquet_image_sizes(source, sample)
            if shard.kind == "npy":
                return {_npy_image_size(source)}
            with zipfile.ZipFile(source) as archive:
                return {_npy_image_size(archive.open(name)) for name in archive.namelist()}
    except Exception:  # noqa: BLE001 - an unreadable shard is scoring's to record, not ours
        return set()


def _npy_image_size(stream) -> int:
    """Pixels per image of the ``.npy`` array whose header ``stream`` starts with."""
    from numpy.lib import format as npy

    major, _ = npy.read_magic(stream)
    read_header = npy.read_array_header_1_0 if major == 1 else npy.read_array_header_2_0
    shape, _, _ = read_header(stream)
    return int(np.prod(shape[1:]))


def _parquet_image_sizes(source, sample: int) -> set[int]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    shard = pq.ParquetFile(source)
    kind = shard.schema_arrow.field("image").type
    if pa.types.is_fixed_size_binary(kind):
        return {kind.byte_width}
    if pa.types.is_fixed_size_list(kind):
        return {kind.list_size}
    batch = next(shard.iter_batches(batch_size=sample, columns=["image"]), None)
    if batch is None:
        return set()
    column = batch.column(0).drop_null()
    lengths = pc.binary_length(column) if pa.types.is_binary(kind) or \
        pa.types.is_large_binary(kind) else pc.list_value_length(column)
    return set(lengths.to_pylist())


@dataclass(frozen=True, eq=False)
class ShardRows:
    """A shard read into rows: ids (Arrow strings), pixels (n, side*side) uint8 in the model's
    units, and per row an error ("" when the image is fine); plus the SHA-256 of the bytes."""

    ids: object  # an Arrow array of strings or int64
    pixels: np.ndarray
    errors: np.ndarray
    content_hash: str
    readable: bool = True
    labels: object = None  # an Arrow int32 array, when a Parquet shard has a label column


def read_shard(shard: Shard, side: int, pixel_max: float = 255.0,
               classes: int = NUM_CLASSES) -> ShardRows:
    """Read ``shard`` once, hashing its bytes; bad content becomes error rows, never raises.

    Arrays and Parquet images hold pixel values in the model's units and must lie in
    [0, ``pixel_max``]; image files are 8-bit, so their 0–255 is mapped onto that range.
    Labels must lie in [0, ``classes``).
    """
    import pyarrow as pa

    digest, readable, labels = "", True, None
    try:
        if shard.kind == "images":
            digest = content_hash(shard)
            ids, pixels, errors = _read_images(shard, side, pixel_max)
        else:
            data = storage.read_bytes(shard.path)
            digest = hashlib.sha256(data).hexdigest()
            ids, pixels, errors, labels = _read_array_shard(shard, data, side)
            _reject_out_of_range(pixels, errors, pixel_max)
    except Exception as error:  # noqa: BLE001 - any unreadable shard is recorded, never fatal
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        ids, pixels = pa.nulls(1, pa.string()), np.zeros((1, side * side), np.uint8)
        errors = np.array([f"unreadable shard: {type(error).__name__}: {reason}"], dtype=object)
        readable, labels = False, None
    ids = pa.array(ids, pa.string()) if not isinstance(ids, pa.Array) else ids
    _reject_bad_ids(ids, errors)
    labels = _checked_labels(labels, errors, classes) if labels is not None else None
    return ShardRows(ids, pixels, errors, digest, readable, labels)


def _read_array_shard(shard: Shard, data: bytes, side: int):
    """(ids, pixels, errors, labels or None) of a Parquet, npy or npz shard's bytes."""
    if shard.kind == "parquet":
        return _read_parquet(data, side)
    reader = _read_npy if shard.kind == "npy" else _read_npz
    return (*reader(data, _relative(shard.path, shard.root), side), None)


def _checked_labels(labels, errors: np.ndarray, classes: int):
    """The labels as int32; a row whose label is outside [0, ``classes``) is rejected and its
    label nulled (labels beyond int32's range included)."""
    import pyarrow as pa

    present = np.asarray(labels.is_valid().to_numpy(zero_copy_only=False), bool)
    values = labels.fill_null(0).to_numpy(zero_copy_only=False)
    outside = present & ((values < 0) | (values >= classes))
    newly = outside & (errors == "")
    errors[newly] = [f"label {value} outside the model's classes 0-{classes - 1}"
                     for value in values[newly]]
    kept = present & ~outside
    return pa.array(np.where(kept, values, 0).astype(np.int32), mask=~kept)


def _reject_bad_ids(ids, errors: np.ndarray) -> None:
    """A null id, or an id seen earlier in the shard, makes its row a rejected one."""
    seen = set()
    for index, value in enumerate(ids.to_pylist()):
        if errors[index] != "":
            continue
        if value is None:
            errors[index] = "null id"
        elif value in seen:
            errors[index] = f"duplicate id {value!r}: it appears earlier in this shard"
        else:
            seen.add(value)


def write_shards(out: str, prefix: str, images: np.ndarray, labels: np.ndarray, count: int,
                 shard_size: int) -> int:
    """Write ``count`` images, tiling ``images``, as Parquet shards of ``shard_size`` rows with
    ids ``<prefix>-<index>``, an ``image`` column of raw bytes and the true ``label``; return
    the number of shards."""
    import pyarrow as pa

    images = images.reshape(len(images), -1).astype(np.uint8)
    width = images.shape[1]
    shards = 0
    for start in range(0, count, shard_size):
        index = np.arange(start, min(start + shard_size, count))
        pixels = images[index % len(images)]
        table = pa.table({
            "id": pa.array([f"{prefix}-{i:09d}" for i in index], pa.string()),
            "image": pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(width), len(index), [None, pa.py_buffer(pixels.tobytes())]
            ).cast(pa.binary()),
            "label": pa.array(labels[index % len(labels)], pa.int32()),
        })
        storage.write_table(storage.join(out, f"part-{shards:05d}.parquet"), table)
        shards += 1
    return shards


def _input_root(input_spec: str) -> str:
    """The folder image ids are relative to: the input folder, or the glob's fixed prefix."""
    if storage.is_uri(input_spec):
        scheme, rest = input_spec.split("://", 1)
        plain = f"{scheme}://" + "/".join(storage.glob_root(rest))
        return plain if storage.is_folder(plain) else storage.parent(plain)
    parts = storage.glob_root(input_spec)
    root = Path("/".join(parts) or ".") if parts != [""] else Path("/")
    return str((root if root.is_dir() else root.parent).resolve())


def _suffix(location: str) -> str:
    return Path(storage.name(location)).suffix.lower()


def _shard(location: str, kind: str, root: str, files: list[storage.FileEntry]) -> Shard:
    return Shard(location, kind, root, sum(file.size for file in files),
                 max(file.mtime_ns for file in files))


def _image_files(folder: str) -> list[str]:
    return [entry.location for entry in storage.list_files(folder)
            if _suffix(entry.location) in IMAGE_SUFFIXES
            and storage.parent(entry.location) == folder]


def _reject_out_of_range(pixels: np.ndarray, errors: np.ndarray, pixel_max: float) -> None:
    if pixel_max >= 255:
        return
    too_bright = (errors == "") & (pixels.max(axis=1, initial=0) > pixel_max)
    errors[too_bright] = [f"pixel value {value} outside the model's range [0, {pixel_max:g}]"
                          for value in pixels[too_bright].max(axis=1)]


def _read_parquet(data: bytes, side: int):
    import pyarrow as pa
    import pyarrow.parquet as pq

    shard = pq.ParquetFile(pa.BufferReader(data))
    names = shard.schema_arrow.names
    missing = {"id", "image"} - set(names)
    if missing:
        raise ValueError(f"missing column(s) {', '.join(sorted(missing))}")
    table = shard.read(columns=["id", "image", *(["label"] if "label" in names else [])])
    ids = _typed_ids(table.column("id").combine_chunks())
    pixels, errors = _decode_images(table.column("image").combine_chunks(), side * side)
    labels = _typed_labels(table.column("label").combine_chunks()) if "label" in names else None
    return ids, pixels, errors, labels


def _typed_labels(column):
    """Labels as int64 (checked against the model's classes later); another type is refused."""
    import pyarrow as pa

    if not (pa.types.is_integer(column.type) or pa.types.is_null(column.type)):
        raise ValueError(f"label column has type {column.type}; labels must be integers")
    return column.cast(pa.int64())


def _typed_ids(column):
    """Ids as they are: strings, or integers (as int64); any other type is refused, as a
    float's ``1.0`` and a string's ``"1"`` would otherwise name one image twice."""
    import pyarrow as pa

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.cast(pa.string())
    if pa.types.is_integer(column.type):
        return column.cast(pa.int64())
    raise ValueError(f"id column has type {column.type}; ids must be strings or integers")


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


def _read_images(shard: Shard, side: int, pixel_max: float):
    from PIL import Image

    files = _image_files(shard.path)
    pixels = np.zeros((len(files), side * side), np.uint8)
    errors = np.full(len(files), "", dtype=object)
    for row, file in enumerate(files):
        try:
            with Image.open(io.BytesIO(storage.read_bytes(file))) as image:
                gray = image.convert("L").resize((side, side), Image.Resampling.BILINEAR)
                eight_bit = np.asarray(gray, np.float64).reshape(-1)
                pixels[row] = np.rint(eight_bit * (pixel_max / 255.0)).astype(np.uint8)
        except Exception as error:  # noqa: BLE001 - one bad image must not stop the shard
            errors[row] = f"unreadable image: {type(error).__name__}: {error}"
    ids = np.array([_relative(file, shard.root) for file in files], dtype=object)
    return ids, pixels, errors


def _relative(location: str, root: str) -> str:
    if storage.is_uri(location):
        return location.removeprefix(root.rstrip("/") + "/")
    return os.path.relpath(location, root)
