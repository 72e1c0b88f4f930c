"""Class probabilities from a trained dense model, computed with numpy.

``DenseForward`` copies a Keras dense stack's weights into numpy once and runs the forward pass
as float32 matrix products: the same arithmetic as ``model.predict`` (to ~1e-6) without Keras's
per-call overhead, which dominates for a model this small. Scoring actors and evaluation use it.
Models are always loaded with Keras's ``safe_mode=True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit

from mnist_core.errors import DataFormatError, DataNotFoundError

_ACTIVATIONS = {
    "sigmoid": lambda z: expit(z, out=z),
    "relu": lambda z: np.maximum(z, 0, out=z),
    "tanh": lambda z: np.tanh(z, out=z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))).astype(np.float32),
    "softplus": lambda z: np.logaddexp(z, 0).astype(np.float32),
    "linear": lambda z: z,
}


@dataclass(frozen=True, eq=False)
class Prediction:
    """Probability rows (n, 10) that sum to 1, and the argmax class of each row."""

    probabilities: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True, eq=False)
class DenseForward:
    """A numpy copy of a dense Keras model: weights, biases and activation names per layer."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activations: tuple[str, ...]

    @classmethod
    def from_model(cls, model) -> DenseForward:
        """Copy the weights of a Sequential stack of Dense layers (as ``build_model`` makes)."""
        weights, biases, activations = [], [], []
        for layer in model.layers:
            name = getattr(getattr(layer, "activation", None), "__name__", None)
            if type(layer).__name__ != "Dense" or (name not in _ACTIVATIONS and name != "softmax"):
                raise DataFormatError(f"model layer {layer.name!r} is not a supported Dense layer")
            kernel, bias = layer.get_weights()
            weights.append(kernel.astype(np.float32))
            biases.append(bias.astype(np.float32))
            activations.append(name)
        if not activations or activations[-1] != "softmax":
            raise DataFormatError("model must end in a softmax Dense layer")
        return cls(tuple(weights), tuple(biases), tuple(activations))

    @property
    def input_dim(self) -> int:
        """Number of input features the first layer expects."""
        return int(self.weights[0].shape[0])

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Return softmax probabilities (float32, rows sum to 1) for float32 inputs ``x``."""
        activations = np.asarray(x, dtype=np.float32)
        for kernel, bias, name in zip(self.weights, self.biases, self.activations):
            activations = activations @ kernel
            activations += bias
            activations = _softmax(activations) if name == "softmax" else _ACTIVATIONS[name](
                activations)
        return activations

    def predict(self, x: np.ndarray) -> Prediction:
        """Return probabilities and argmax labels for ``x``."""
        probabilities = self.probabilities(x)
        return Prediction(probabilities, probabilities.argmax(axis=1).astype(np.int32))


def load_model(path: str | Path):
    """Load a ``.keras`` model with ``safe_mode=True``; one-line errors for missing or bad files."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such model file")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - Keras raises many types for a bad archive
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataFormatError(f"{path}: not a loadable Keras model ({reason})") from None


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits
