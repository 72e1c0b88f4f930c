"""Test-set metrics: loss, accuracy, the 10×10 confusion matrix and per-class scores.

The confusion matrix has rows = true label and columns = predicted label, with labels fixed to
0–9 so its shape never depends on which classes a small test set happens to contain. Recall is
the tutorial's "sensitivity".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mnist_core.config import NUM_CLASSES
from mnist_core.prediction import DenseForward

LABELS = tuple(range(NUM_CLASSES))
_EPSILON = 1e-7  # Keras's clipping of probabilities inside cross-entropy


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Metrics of one model on one labelled set; per-class arrays are indexed by label 0–9."""

    loss: float
    accuracy: float
    confusion: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray


def evaluate(model, x: np.ndarray, y: np.ndarray) -> Evaluation:
    """Score ``model`` (a dense Keras model) on inputs ``x`` with integer labels ``y``."""
    probabilities = DenseForward.from_model(model).probabilities(x)
    return evaluate_probabilities(probabilities, y)


def evaluate_weights(weights: list[np.ndarray], activation: str, pixel_max: float,
                     x: np.ndarray, y: np.ndarray) -> Evaluation:
    """Score the dense network with these weights (``get_weights`` order: kernel, bias per
    layer; ``activation`` on the hidden layers, softmax last) without building a Keras model:
    what a pack's members need, thousands at a time."""
    return evaluate_counts(DenseForward.from_weights(weights, activation, pixel_max)
                           .probabilities(x), y)


def evaluate_counts(probabilities: np.ndarray, y: np.ndarray) -> Evaluation:
    """``evaluate_probabilities`` from the confusion counts in numpy (no scikit-learn call,
    about 1 ms saved per trial): precision, recall and F1 are 0 where they divide by 0, as
    scikit-learn's ``zero_division=0``."""
    y = np.asarray(y, dtype=np.int64)
    predicted = probabilities.argmax(axis=1)
    picked = np.clip(probabilities[np.arange(len(y)), y], _EPSILON, 1 - _EPSILON)
    confusion = np.bincount(y * NUM_CLASSES + predicted,
                            minlength=NUM_CLASSES * NUM_CLASSES).reshape(NUM_CLASSES, NUM_CLASSES)
    hits, support, claimed = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    precision = np.divide(hits, claimed, out=np.zeros(NUM_CLASSES), where=claimed > 0)
    recall = np.divide(hits, support, out=np.zeros(NUM_CLASSES), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(NUM_CLASSES), where=both > 0)
    return Evaluation(loss=float(-np.mean(np.log(picked))),
                      accuracy=float(np.mean(predicted == y)), confusion=confusion,
                      precision=precision, recall=recall, f1=f1, support=support)


def evaluate_probabilities(probabilities: np.ndarray, y: np.ndarray) -> Evaluation:
    """Metrics from already computed probability rows and the true labels."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y = np.asarray(y, dtype=np.int64)
    predicted = probabilities.argmax(axis=1)
    picked = np.clip(probabilities[np.arange(len(y)), y], _EPSILON, 1 - _EPSILON)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted, labels=list(LABELS), zero_division=0
    )
    return Evaluation(
        loss=float(-np.mean(np.log(picked))),
        accuracy=float(np.mean(predicted == y)),
        confusion=confusion_matrix(y, predicted, labels=list(LABELS)),
        precision=precision, recall=recall, f1=f1, support=support,
    )
