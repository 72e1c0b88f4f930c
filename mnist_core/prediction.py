"""Class probabilities from a trained dense model, computed with numpy, and the batch predictor.

``DenseForward`` copies a Keras dense stack's weights into numpy once and runs the forward pass
as float32 matrix products: the same arithmetic as ``model.predict`` (to ~1e-6) without Keras's
per-call overhead, which dominates for a model this small. Scoring actors and evaluation use it.

Every model says what pixels it takes: its first layer is ``Rescaling(1 / pixel_max)``
(``pixel_max`` is 255 for MNIST-family data, 16 for scikit-learn's digits), so a model is fed the
pixel values its data set stores and scoring can never disagree with training about the scale.
A model saved before that layer existed took pixels in [0, 1]; it is read as taking 0–255.
A model that ``build_model`` saved is read straight from its archive (``from_archive``: no
code in it runs and no TensorFlow starts); any other is loaded with Keras's ``safe_mode=True``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from scipy.special import expit

from mnist_core import devices, storage
from mnist_core.config import NUM_CLASSES
from mnist_core.errors import DataFormatError, DataNotFoundError
from mnist_core.keras_archive import DenseStack, check_archive, read_dense_stack

LEGACY_PIXEL_MAX = 255.0
_ACTIVATIONS = {
    "sigmoid": lambda z: expit(z, out=z),
    "relu": lambda z: np.maximum(z, 0, out=z),
    "tanh": lambda z: np.tanh(z, out=z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))).astype(np.float32),
    "softplus": lambda z: np.logaddexp(z, 0).astype(np.float32),
    "linear": lambda z: z,
}


@dataclass(frozen=True, eq=False)
class DenseForward:
    """A numpy copy of a dense Keras model: its pixel range, and per layer the weights, biases
    and activation name."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activations: tuple[str, ...]
    pixel_max: float = LEGACY_PIXEL_MAX

    @classmethod
    def from_model(cls, model) -> DenseForward:
        """Copy a Sequential of an optional ``Rescaling`` then Dense layers (``build_model``)."""
        weights, biases, activations, rescaling = [], [], [], None
        for index, layer in enumerate(model.layers):
            if index == 0 and type(layer).__name__ == "Rescaling":
                rescaling = (float(layer.scale), float(layer.offset))
                continue
            name = getattr(getattr(layer, "activation", None), "__name__", None)
            if type(layer).__name__ != "Dense":
                raise DataFormatError(f"model layer {layer.name!r} is not a supported Dense layer")
            kernel, bias = layer.get_weights()
            weights.append(kernel)
            biases.append(bias)
            activations.append(name)
        return cls._checked(DenseStack(tuple(weights), tuple(biases), tuple(activations),
                                       rescaling))

    @classmethod
    def from_archive(cls, data: bytes, source: str) -> DenseForward:
        """The model in the bytes of a ``.keras`` file (``source`` names it in errors), its
        members checked first: read straight from the archive when ``build_model`` saved it
        (``keras_archive.read_dense_stack``: no TensorFlow start), else loaded by Keras."""
        check_archive(data, source)
        stack = read_dense_stack(data)
        return cls.from_model(_keras_load(data, source)) if stack is None else cls._checked(stack)

    @classmethod
    def _checked(cls, stack: DenseStack) -> DenseForward:
        """Activations we compute, a softmax last, the ``Rescaling`` folded into the first
        kernel (none: a model from before that layer, taking 0-255)."""
        for name in stack.activations:
            if name not in _ACTIVATIONS and name != "softmax":
                raise DataFormatError(f"model has a Dense layer with activation {name!r}, "
                                      "which scoring does not compute")
        if not stack.activations or stack.activations[-1] != "softmax":
            raise DataFormatError("model must end in a softmax Dense layer")
        pixel_max = LEGACY_PIXEL_MAX if stack.rescaling is None else _pixel_max(*stack.rescaling)
        weights = [np.asarray(kernel, np.float32) for kernel in stack.kernels]
        weights[0] = weights[0] * np.float32(1 / pixel_max)  # the Rescaling, folded in
        return cls(tuple(weights), tuple(np.asarray(bias, np.float32) for bias in stack.biases),
                   stack.activations, pixel_max)

    @classmethod
    def from_weights(cls, weights: list[np.ndarray], activation: str,
                     pixel_max: float) -> DenseForward:
        """The network ``build_model`` makes, from its ``get_weights()`` (kernel, bias per
        layer), ``activation`` on the hidden layers and its pixel range."""
        kernels = [np.asarray(kernel, np.float32) for kernel in weights[0::2]]
        kernels[0] = kernels[0] * np.float32(1 / pixel_max)  # the Rescaling, folded in
        biases = tuple(np.asarray(bias, np.float32) for bias in weights[1::2])
        activations = (activation,) * (len(kernels) - 1) + ("softmax",)
        return cls(tuple(kernels), biases, activations, pixel_max)

    @property
    def input_dim(self) -> int:
        """Number of input features the first layer expects."""
        return int(self.weights[0].shape[0])

    @property
    def classes(self) -> int:
        """Number of classes the softmax layer gives probabilities for."""
        return int(self.weights[-1].shape[1])

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Softmax probabilities (float32, rows sum to 1) for raw pixels in [0, pixel_max]."""
        activations = np.asarray(pixels, dtype=np.float32)
        for kernel, bias, name in zip(self.weights, self.biases, self.activations):
            activations = activations @ kernel
            activations += bias
            activations = _softmax(activations) if name == "softmax" else _ACTIVATIONS[name](
                activations)
        return activations


class Predictor:
    """The batch function: raw pixels in, prediction columns out.

    ``__init__`` readies the model once (the pixel scale is folded into the first layer's
    weights, so preprocessing costs one dtype conversion); ``__call__`` maps typed arrays,
    ids (an Arrow array) and pixels (n, input_dim), to a table of id, predicted_label,
    probability and probabilities.
    On a GPU the same forward pass runs as a TensorFlow graph.
    """

    def __init__(self, forward: DenseForward, use_gpu: bool = False):
        self.forward = forward
        self._graph = _tensorflow_forward(forward) if use_gpu else None

    def __call__(self, ids: pa.Array, pixels: np.ndarray) -> pa.Table:
        """Predict every row: one output row per id, in order."""
        probabilities = self.probabilities(np.asarray(pixels))
        labels = probabilities.argmax(axis=1).astype(np.int32)
        return pa.table({
            "id": ids,
            "predicted_label": labels,
            "probability": np.take_along_axis(probabilities, labels[:, None], axis=1)[:, 0],
            "probabilities": pa.FixedSizeListArray.from_arrays(probabilities.reshape(-1),
                                                               NUM_CLASSES),
        })

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Softmax rows (float32) for pixels (n, input_dim)."""
        if self._graph is not None:
            return self._graph(pixels).numpy()
        return self.forward.probabilities(pixels.astype(np.float32))


def load_model(location: str | Path):
    """Load a ``.keras`` model (a path or URI) with ``safe_mode=True``; one-line errors for
    missing or bad files."""
    location = str(location)
    if not storage.exists(location):
        raise DataNotFoundError(f"{location}: no such model file")
    return load_model_bytes(storage.read_bytes(location), location)


def load_model_bytes(data: bytes, source: str):
    """Load a model from the bytes of a ``.keras`` file, its members' sizes checked first
    (``keras_archive``); ``source`` names it in errors."""
    check_archive(data, source)
    return _keras_load(data, source)


def _keras_load(data: bytes, source: str):
    import keras

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(data)
        try:
            return keras.saving.load_model(path, safe_mode=True)
        except Exception as error:  # noqa: BLE001 - Keras raises many types for a bad archive
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DataFormatError(f"{source}: not a loadable Keras model ({reason})") from None


def _pixel_max(scale: float, offset: float) -> float:
    if scale <= 0 or offset != 0:
        raise DataFormatError(f"model's Rescaling layer: expected Rescaling(1/pixel_max) "
                              f"with no offset, got scale {scale} offset {offset}")
    return round(1 / scale, 4)


def _tensorflow_forward(forward: DenseForward):
    """The forward pass as a TensorFlow graph on this process's GPU (pixels in, softmax out)."""
    devices.configure(use_gpu=True)
    import keras
    import tensorflow as tf

    layers = [(tf.constant(w), tf.constant(b), keras.activations.get(name))
              for w, b, name in zip(forward.weights, forward.biases, forward.activations)]

    @tf.function(reduce_retracing=True)
    def run(pixels):
        activations = tf.cast(pixels, tf.float32)
        for kernel, bias, activation in layers:
            activations = activation(tf.matmul(activations, kernel) + bias)
        return activations

    return run


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits
