"""Compile and fit the dense model, returning the per-epoch history.

Plain ``model.fit`` spends most of its time on per-step Python and dispatch overhead for a
7,960-parameter model. Here each epoch is one ``tf.function`` that loops over the mini-batches
inside the graph, on tensors kept resident on the device, with the same Keras model, optimizer
and loss: the same SGD as ``fit`` (reshuffled every epoch, last batch partial), several times
faster (see docs/benchmarks.md). The loop is a plain ``tf.while_loop`` traced without
autograph: converting Keras and optimizer internals with autograph made the first epoch (the
trace) about 0.5 s slower.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mnist_core.config import TrialConfig
from mnist_core.data import Splits
from mnist_core.model import build_model

EpochCallback = Callable[[int, dict[str, float]], None]
_OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "rmsprop": "RMSprop", "adagrad": "Adagrad",
               "nadam": "Nadam"}


@dataclass(frozen=True, eq=False)
class FitResult:
    """The trained (compiled) model, its history keyed like Keras's, and the fit's wall time."""

    model: object
    history: dict[str, list[float]]
    seconds: float


def make_optimizer(name: str, learning_rate: float):
    """Return a fresh Keras optimizer by its config name (``sgd``, ``adam``, …)."""
    import keras

    return getattr(keras.optimizers, _OPTIMIZERS[name])(learning_rate=learning_rate)


def train(config: TrialConfig, splits: Splits, on_epoch: EpochCallback | None = None) -> FitResult:
    """Build, compile and fit the model that ``config`` describes on ``splits``' training set."""
    import keras

    keras.utils.set_random_seed(config.seed)
    model = build_model(config.model, splits.input_dim, splits.pixel_max)
    optimizer = make_optimizer(config.optimizer, config.learning_rate)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    optimizer.build(model.trainable_variables)
    start = time.perf_counter()
    history = _fit(model, optimizer, config, splits, on_epoch)
    return FitResult(model, history, time.perf_counter() - start)


def _fit(model, optimizer, config: TrialConfig, splits: Splits, on_epoch) -> dict:
    import tensorflow as tf

    run_epoch = _epoch_function(model, optimizer, splits.x_train, splits.y_train,
                                config.batch_size)
    measure = _metrics_function(model)
    validation = (tf.constant(splits.x_val), tf.constant(splits.y_val)) if len(
        splits.y_val) else None
    shuffler = np.random.default_rng(config.seed)
    history: dict[str, list[float]] = {}
    for epoch in range(config.epochs):
        order = tf.constant(shuffler.permutation(len(splits.y_train)).astype(np.int32))
        loss, accuracy = run_epoch(order)
        row = {"loss": float(loss), "accuracy": float(accuracy)}
        if validation is not None:
            val_loss, val_accuracy = measure(*validation)
            row |= {"val_loss": float(val_loss), "val_accuracy": float(val_accuracy)}
        for key, value in row.items():
            history.setdefault(key, []).append(value)
        if on_epoch is not None:
            on_epoch(epoch + 1, row)
    return history


def _epoch_function(model, optimizer, x: np.ndarray, y: np.ndarray, batch_size: int):
    """One epoch of mini-batch training as a single graph call; returns (mean loss, accuracy)."""
    import keras
    import tensorflow as tf

    x_all, y_all = tf.constant(x), tf.constant(y)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    variables = model.trainable_variables

    @tf.function(autograph=False)
    def run_epoch(order):
        total = tf.cast(tf.shape(order)[0], tf.float32)
        steps = (tf.shape(order)[0] + batch_size - 1) // batch_size

        def step(index, loss_sum, correct):
            batch = order[index * batch_size:(index + 1) * batch_size]
            x_batch, y_batch = tf.gather(x_all, batch), tf.gather(y_all, batch)
            with tf.GradientTape() as tape:
                probabilities = model(x_batch, training=True)
                loss = loss_fn(y_batch, probabilities)
            optimizer.apply(tape.gradient(loss, variables), variables)
            loss_sum += loss * tf.cast(tf.shape(batch)[0], tf.float32)
            return index + 1, loss_sum, correct + _count_correct(probabilities, y_batch)

        _, loss_sum, correct = tf.while_loop(
            lambda index, *_: index < steps, step,
            (tf.constant(0), tf.constant(0.0), tf.constant(0.0)))
        return loss_sum / total, correct / total

    return run_epoch


def _metrics_function(model):
    """Loss and accuracy of ``model`` on a whole (validation) set in one graph call."""
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function(autograph=False)
    def measure(x, y):
        probabilities = model(x, training=False)
        total = tf.cast(tf.shape(y)[0], tf.float32)
        return loss_fn(y, probabilities), _count_correct(probabilities, y) / total

    return measure


def _count_correct(probabilities, labels):
    import tensorflow as tf

    predicted = tf.argmax(probabilities, axis=1, output_type=tf.int32)
    return tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.float32))
