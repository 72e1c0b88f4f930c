"""Datasets by name, preprocessed the way the tutorial does it.

``mnist`` and ``fashion_mnist`` come from ``data_path`` (a Keras-format ``.npz`` or a folder of
the four IDX files), else from Keras's cache, else (fashion only) Debian's
``dataset-fashion-mnist`` package, else Keras's own downloader. ``digits`` is scikit-learn's
bundled 8×8 digits with a fixed stratified split: the offline default.

Preprocessing: each image flattened to float32 pixels in the dataset's own units (0–255, or
0–16 for digits), integer labels; the model's first layer scales them by ``pixel_max``.
A validation split is carved, seeded and stratified, from training data only.
"""

from __future__ import annotations

import os
import socket
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_core.config import NUM_CLASSES, DataConfig
from mnist_core.errors import DataFormatError, DataNotFoundError
from mnist_core.idx import read_idx

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
_PIXEL_MAX = {"mnist": 255.0, "fashion_mnist": 255.0, "digits": 16.0}
_DOWNLOAD_TIMEOUT_S = 30


@dataclass(frozen=True, eq=False)
class RawData:
    """Images and labels as stored, before scaling; ``source`` says where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    pixel_max: float
    source: str


@dataclass(frozen=True, eq=False)
class Splits:
    """Preprocessed arrays: x is float32 (n, features) in [0, pixel_max], y is int32 labels."""

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int]
    pixel_max: float

    @property
    def input_dim(self) -> int:
        """Number of features per flattened image (784 for MNIST, 64 for digits)."""
        return int(self.x_train.shape[1])


def load_dataset(config: DataConfig) -> Splits:
    """Load, check and preprocess the dataset that ``config`` names."""
    raw = load_raw(config.dataset, config.data_path)
    return prepare(config.dataset, raw, config.validation_split, config.seed)


def load_raw(name: str, data_path: str = "") -> RawData:
    """Return the dataset's arrays as stored, checked for shape, labels and pixel range."""
    if name == "digits":
        raw = _load_digits()
    elif data_path:
        raw = _load_path(Path(data_path), _PIXEL_MAX[name])
    else:
        raw = _load_cached_or_download(name)
    _check(raw)
    return raw


def prepare(name: str, raw: RawData, validation_split: float, seed: int) -> Splits:
    """Scale, flatten and split ``raw`` into train, validation and test sets."""
    x_train, y_train = _flatten(raw.x_train), raw.y_train.astype(np.int32)
    x_val = np.empty((0, x_train.shape[1]), np.float32)
    y_val = np.empty((0,), np.int32)
    if validation_split > 0:
        x_train, x_val, y_train, y_val = _stratified_split(x_train, y_train, validation_split, seed)
    return Splits(
        name=name, source=raw.source, x_train=x_train, y_train=y_train, x_val=x_val,
        y_val=y_val, x_test=_flatten(raw.x_test),
        y_test=raw.y_test.astype(np.int32), image_shape=_image_shape(raw.x_train),
        pixel_max=raw.pixel_max,
    )


def held_out_images(name: str, data_path: str = "") -> tuple[np.ndarray, np.ndarray]:
    """A data set's test images as uint8 (n, pixels) in its own units (0–255; 0–16 for
    digits), and their labels: the raw material for scoring demos, held out from every model
    that trains on the data set, so a demo's accuracy is a test accuracy."""
    raw = load_raw(name, data_path)
    return _flatten(raw.x_test).astype(np.uint8), np.asarray(raw.y_test, np.int32)


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded datasets (``$KERAS_HOME/datasets``, else ``~/.keras``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets"


def _load_digits() -> RawData:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.images, digits.target, test_size=DIGITS_TEST_FRACTION,
        random_state=DIGITS_SPLIT_SEED, stratify=digits.target,
    )
    return RawData(x_train, y_train, x_test, y_test, _PIXEL_MAX["digits"], "sklearn:digits")


def _load_path(path: Path, pixel_max: float) -> RawData:
    if path.is_dir():
        return _load_idx_dir(path, pixel_max)
    if path.is_file():
        return _load_npz(path, pixel_max)
    raise DataNotFoundError(f"{path}: no such data file or folder")


def _load_npz(path: Path, pixel_max: float) -> RawData:
    if not zipfile.is_zipfile(path):
        raise DataFormatError(f"{path}: not a readable npz (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_KEYS if key not in archive.files]
            if missing:
                raise DataFormatError(f"{path}: npz is missing key(s) {', '.join(missing)}")
            arrays = {key: archive[key] for key in NPZ_KEYS}
    except ValueError as error:
        if "pickle" in str(error):
            raise DataFormatError(f"{path}: npz holds pickled objects; refusing to load") from None
        raise DataFormatError(f"{path}: not a readable npz ({error})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise DataFormatError(f"{path}: not a readable npz ({error})") from None
    return RawData(**arrays, pixel_max=pixel_max, source=str(path))


def _load_idx_dir(folder: Path, pixel_max: float) -> RawData:
    arrays = {key: read_idx(_find_idx(folder, stem)) for key, stem in IDX_FILES.items()}
    return RawData(**arrays, pixel_max=pixel_max, source=str(folder))


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    raise DataNotFoundError(f"{folder}: no IDX file {stem} (or {stem}.gz)")


def _load_cached_or_download(name: str) -> RawData:
    pixel_max = _PIXEL_MAX[name]
    cached = keras_cache_dir() / ("mnist.npz" if name == "mnist" else "fashion-mnist")
    if cached.exists():
        return _load_path(cached, pixel_max)
    if name == "fashion_mnist" and DEBIAN_FASHION.is_dir():
        return _load_idx_dir(DEBIAN_FASHION, pixel_max)
    return _download(name, pixel_max, cached)


def _download(name: str, pixel_max: float, cached: Path) -> RawData:
    import keras

    loader = keras.datasets.mnist if name == "mnist" else keras.datasets.fashion_mnist
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as error:  # noqa: BLE001 - any network failure means the same to the user
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataNotFoundError(
            f"could not download {name} ({reason}); supply a local copy (a Keras .npz or a "
            f"folder of IDX files) or place it at {cached}", key="data_path"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return RawData(x_train, y_train, x_test, y_test, pixel_max, f"keras.datasets.{name}")


def _check(raw: RawData) -> None:
    for split in ("train", "test"):
        x, y = getattr(raw, f"x_{split}"), getattr(raw, f"y_{split}")
        _check_images(raw.source, f"x_{split}", x, raw.pixel_max)
        _check_labels(raw.source, f"y_{split}", y)
        if len(x) != len(y):
            raise DataFormatError(
                f"{raw.source}: x_{split} has {len(x)} images but y_{split} has {len(y)} labels"
            )
    if raw.x_train.shape[1:] != raw.x_test.shape[1:]:
        raise DataFormatError(f"{raw.source}: train and test images differ in shape")


def _check_images(source: str, key: str, x: np.ndarray, pixel_max: float) -> None:
    real = np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    if x.ndim not in (2, 3) or len(x) == 0 or not real:
        raise DataFormatError(f"{source}: {key} must be a non-empty array of real-valued "
                              f"images, got dtype {x.dtype} and shape {x.shape}")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise DataFormatError(f"{source}: {key} holds NaN or infinite pixels")
    low, high = x.min(), x.max()
    if low < 0 or high > pixel_max:
        raise DataFormatError(
            f"{source}: {key} pixels must lie in [0, {pixel_max:g}], found [{low:g}, {high:g}]"
        )


def _check_labels(source: str, key: str, y: np.ndarray) -> None:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.number):
        raise DataFormatError(f"{source}: {key} must be a 1-d numeric array, got shape {y.shape}")
    bad = (y < 0) | (y >= NUM_CLASSES) | (y != np.round(y))
    if bad.any():
        raise DataFormatError(
            f"{source}: {key} has {int(bad.sum())} label(s) outside 0-9, e.g. {y[bad][0]!r}"
        )


def _flatten(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float32)


def _image_shape(x: np.ndarray) -> tuple[int, int]:
    if x.ndim == 3:
        return int(x.shape[1]), int(x.shape[2])
    side = int(round(np.sqrt(x.shape[1])))
    return (side, side) if side * side == x.shape[1] else (1, int(x.shape[1]))


def _stratified_split(x, y, fraction: float, seed: int):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=fraction, random_state=seed, stratify=y)
