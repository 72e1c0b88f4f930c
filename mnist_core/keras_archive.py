"""A ``.keras`` file checked before Keras opens it: its members' sizes and its input size.

A ``.keras`` file is a zip of ``config.json``, ``metadata.json`` and ``model.weights.h5``. Keras
inflates ``config.json`` whole and parses it, so a small archive that declares (or inflates
to) gigabytes would take the process's memory before any check of ours ran. Each member is
checked here against a limit on its declared size, then inflated in chunks and checked against
its CRC, so that a member whose real content exceeds what it declares is refused too. What a
scoring run needs to know before it starts — how many pixels the model takes — is read from
``config.json`` with the standard library, so a mismatch is refused in about a second,
without importing Keras. A model that ``build_model`` saved is read whole the same way
(``read_dense_stack``: its layers from ``config.json``, its arrays from ``model.weights.h5``
with h5py), so scoring never starts TensorFlow on its driver (about 5 s).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass

import numpy as np

from mnist_core.errors import DataFormatError

CONFIG_LIMIT = 16 * 2**20  # a dense model's config is a few KB
MEMBER_LIMIT = 1 * 2**30  # the weights of the widest network a sweep builds are a few MB
_CHUNK = 2**20


@dataclass(frozen=True)
class ArchiveFacts:
    """What a checked archive says of its model: the number of input features it takes."""

    input_dim: int


def check_archive(data: bytes, source: str) -> ArchiveFacts:
    """Check every member of the ``.keras`` archive in ``data`` (``source`` names it in
    errors) and return what its ``config.json`` says; ``DataFormatError`` otherwise."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.infolist():
                _check_member(archive, member, source)
            config = archive.read("config.json") if "config.json" in archive.namelist() else None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError) as error:
        raise DataFormatError(f"{source}: not a loadable Keras model ({error})") from None
    if config is None:
        raise DataFormatError(f"{source}: not a loadable Keras model (no config.json)")
    return ArchiveFacts(_input_dim(config, source))


@dataclass(frozen=True, eq=False)
class DenseStack:
    """A dense network read from an archive: per ``Dense`` layer its kernel, bias and
    activation, and the scale of the ``Rescaling`` before them (None without one)."""

    kernels: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activations: tuple[str, ...]
    rescaling: tuple[float, float] | None  # (scale, offset)


def read_dense_stack(data: bytes) -> DenseStack | None:
    """The network in a checked archive (``check_archive``), read without Keras when it is
    what ``build_model`` saves: a ``Sequential`` of an ``InputLayer``, an optional
    ``Rescaling``, then ``Dense`` layers with biases, their arrays where Keras's saving puts
    them (``layers/<class in snake case>[_<n>]/vars/<i>``) and of the shapes the config says.
    None for any other model: Keras loads that one."""
    import h5py

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            model = json.loads(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
        first, *layers = model["config"]["layers"]
        if model["class_name"] != "Sequential" or first["class_name"] != "InputLayer":
            return None
        with h5py.File(io.BytesIO(weights), "r") as store:
            return _stack(layers, store, first["config"]["batch_shape"][-1])
    except (KeyError, ValueError, TypeError, IndexError, AttributeError, OSError,
            zipfile.BadZipFile):
        return None


def _stack(layers: list[dict], store, width: int) -> DenseStack | None:
    kernels, biases, activations, rescaling, names = [], [], [], None, {}
    for position, layer in enumerate(layers):
        kind, config = layer["class_name"], layer["config"]
        name = _saved_name(kind, names)
        if kind == "Rescaling" and position == 0:
            rescaling = (float(config["scale"]), float(config.get("offset", 0.0)))
            continue
        if kind != "Dense" or not isinstance(config["activation"], str):
            return None
        arrays = store[f"layers/{name}/vars"]
        if set(arrays) != {"0", "1"}:
            return None
        kernel, bias = np.asarray(arrays["0"], np.float32), np.asarray(arrays["1"], np.float32)
        if kernel.shape != (width, config["units"]) or bias.shape != (config["units"],):
            return None
        kernels.append(kernel)
        biases.append(bias)
        activations.append(config["activation"])
        width = config["units"]
    return DenseStack(tuple(kernels), tuple(biases), tuple(activations), rescaling)


def _saved_name(kind: str, used: dict[str, int]) -> str:
    """Keras's name for a layer's arrays: its class in snake case, ``_<n>`` from the second
    of a kind on (``dense``, ``dense_1``, ...)."""
    base = "".join(f"_{char.lower()}" if char.isupper() else char for char in kind).lstrip("_")
    count = used.get(base, 0)
    used[base] = count + 1
    return f"{base}_{count}" if count else base


def _check_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, source: str) -> None:
    limit = CONFIG_LIMIT if member.filename.endswith(".json") else MEMBER_LIMIT
    if member.file_size > limit:
        raise DataFormatError(f"{source}: member {member.filename} declares "
                              f"{member.file_size:,} bytes, over the {limit:,} allowed")
    # zipfile inflates no more than the declared size and then checks the CRC, so a member
    # whose real content differs from what it declares fails here (BadZipFile), chunk by chunk.
    with archive.open(member) as stream:
        while stream.read(_CHUNK):
            pass


def _input_dim(config: bytes, source: str) -> int:
    """The first layer's input features: the ``InputLayer``'s ``batch_shape``, else the
    first layer's ``build_config``."""
    try:
        model = json.loads(config)
        first = model["config"]["layers"][0]
        shape = (first["config"].get("batch_shape") if first["class_name"] == "InputLayer"
                 else first["build_config"]["input_shape"])
        features = shape[-1]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise DataFormatError(f"{source}: not a loadable Keras model (its config.json names "
                              "no input shape)") from None
    if isinstance(features, bool) or not isinstance(features, int) or features <= 0:
        raise DataFormatError(f"{source}: not a loadable Keras model (input of {features!r} "
                              "features)")
    return features
