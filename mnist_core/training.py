"""Compile and fit the dense model, returning the per-epoch history.

Plain ``model.fit`` spends most of its time on per-step Python and dispatch overhead for a
7,960-parameter model. Here each epoch is one ``tf.function`` that loops over the mini-batches
inside the graph, on tensors kept resident on the device, with the same Keras model, optimizer
and loss: the same SGD as ``fit`` (reshuffled every epoch, last batch partial), several times
faster (see docs/benchmarks.md). The loop is a plain ``tf.while_loop`` traced without
autograph: converting Keras and optimizer internals with autograph made the first epoch (the
trace) about 0.5 s slower.

Beyond the tutorial: SGD momentum and Nesterov, an L2 penalty on the kernels (added to the
loss in the step, so the saved model stays the plain tutorial Sequential), cosine or exponential
learning-rate decay (Keras's schedules), and the choice of the epoch whose weights are kept
(``EpochChooser``: the best validation accuracy with ``restore_best``, early stopping with
``patience``). ``packed_training`` does the same maths for a pack.
"""

from __future__ import annotations

import math
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
    """The trained (compiled) model holding the kept epoch's weights, its history keyed like
    Keras's, the kept epoch (1-based) and the fit's wall time."""

    model: object
    history: dict[str, list[float]]
    best_epoch: int
    seconds: float


class EpochChooser:
    """Which epoch's weights a trial keeps: the last, or with ``restore_best`` (or when
    ``patience`` stopped it) the first epoch with the best validation accuracy."""

    def __init__(self, config: TrialConfig):
        self.config = config
        self.best_epoch, self.best_accuracy, self.stopped = 0, -math.inf, False

    def observe(self, epoch: int, val_accuracy: float | None) -> bool:
        """Take one finished epoch; return True when its weights are the best so far."""
        if val_accuracy is None:
            return False
        if val_accuracy > self.best_accuracy:
            self.best_epoch, self.best_accuracy = epoch, val_accuracy
            return True
        patience = self.config.patience
        self.stopped = bool(patience) and epoch - self.best_epoch >= patience
        return False

    def keeps_best(self) -> bool:
        """Whether the reported weights are the best epoch's rather than the last's."""
        return (self.config.restore_best or self.stopped) and self.best_epoch > 0


def make_optimizer(config: TrialConfig, steps_per_epoch: int = 1):
    """Return a fresh Keras optimizer for ``config``: its learning rate (or schedule over the
    trial's epochs) and, for SGD, momentum and Nesterov."""
    import keras

    rate = learning_rate_schedule(config, steps_per_epoch)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=config.momentum,
                                    nesterov=config.nesterov)
    return getattr(keras.optimizers, _OPTIMIZERS[config.optimizer])(learning_rate=rate)


def learning_rate_schedule(config: TrialConfig, steps_per_epoch: int):
    """The learning rate Keras's optimizer takes: a float, or a per-step schedule (cosine decay
    to 0 over the trial's epochs; exponential decay by ``decay_rate`` per epoch)."""
    import keras

    schedules = keras.optimizers.schedules
    if config.schedule == "cosine":
        return schedules.CosineDecay(config.learning_rate, config.epochs * steps_per_epoch)
    if config.schedule == "exponential":
        return schedules.ExponentialDecay(config.learning_rate, steps_per_epoch,
                                          config.decay_rate)
    return config.learning_rate


def train(config: TrialConfig, splits: Splits, on_epoch: EpochCallback | None = None,
          epochs: int | None = None) -> FitResult:
    """Build, compile and fit the model that ``config`` describes on ``splits``' training set,
    for ``epochs`` (default: the config's; a schedule still spans the config's epochs)."""
    import keras

    keras.utils.set_random_seed(config.seed)
    model = build_model(config.model, splits.input_dim, splits.pixel_max)
    optimizer = make_optimizer(config, math.ceil(len(splits.y_train) / config.batch_size))
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    optimizer.build(model.trainable_variables)
    start = time.perf_counter()
    history, best_epoch = _fit(model, optimizer, config, splits, on_epoch,
                               epochs or config.epochs)
    return FitResult(model, history, best_epoch, time.perf_counter() - start)


def _fit(model, optimizer, config: TrialConfig, splits: Splits, on_epoch,
         epochs: int) -> tuple[dict, int]:
    import tensorflow as tf

    run_epoch = _epoch_function(model, optimizer, splits.x_train, splits.y_train,
                                config.batch_size, config.l2)
    measure = _metrics_function(model)
    validation = (tf.constant(splits.x_val), tf.constant(splits.y_val)) if len(
        splits.y_val) else None
    shuffler = np.random.default_rng(config.seed)
    chooser, best_weights = EpochChooser(config), None
    history: dict[str, list[float]] = {}
    for epoch in range(1, epochs + 1):
        order = tf.constant(shuffler.permutation(len(splits.y_train)).astype(np.int32))
        loss, accuracy = run_epoch(order)
        row = {"loss": float(loss), "accuracy": float(accuracy)}
        if validation is not None:
            val_loss, val_accuracy = measure(*validation)
            row |= {"val_loss": float(val_loss), "val_accuracy": float(val_accuracy)}
        for key, value in row.items():
            history.setdefault(key, []).append(value)
        if on_epoch is not None:
            on_epoch(epoch, row)
        if chooser.observe(epoch, row.get("val_accuracy")) and config.needs_validation:
            best_weights = model.get_weights()
        if chooser.stopped:
            break
    if chooser.keeps_best():
        model.set_weights(best_weights)
        return history, chooser.best_epoch
    return history, len(history["loss"])


def _epoch_function(model, optimizer, x: np.ndarray, y: np.ndarray, batch_size: int,
                    l2: float):
    """One epoch of mini-batch training as a single graph call; returns (mean loss, accuracy).
    The loss is the cross-entropy plus ``l2`` times the sum of the squared kernels."""
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    variables = model.trainable_variables
    kernels = [layer.kernel for layer in model.layers if hasattr(layer, "kernel")]

    def train_batch(x_batch, y_batch):
        with tf.GradientTape() as tape:
            probabilities = model(x_batch, training=True)
            loss = loss_fn(y_batch, probabilities)
            if l2:
                loss += l2 * tf.add_n([tf.reduce_sum(tf.square(k)) for k in kernels])
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss, _count_correct(probabilities, y_batch)

    return tf.function(minibatch_epoch(x, y, batch_size, train_batch, 0.0), autograph=False)


def minibatch_epoch(x: np.ndarray, y: np.ndarray, batch_size: int, train_batch, zero):
    """The epoch loop both trainers trace: ``train_batch(x, y) -> (loss, correct)`` on every
    mini-batch of a given order, inside one ``tf.while_loop``; ``zero`` is the shape of the
    sums (a scalar, or one per pack member). Returns ``run(order) -> (mean loss, accuracy)``."""
    import tensorflow as tf

    x_all, y_all = tf.constant(x), tf.constant(y)
    zeros = tf.constant(zero, tf.float32)

    def run(order):  # (n,) rows, or (groups, n): a row order per group, batches (groups, b)
        total = tf.cast(tf.shape(order)[-1], tf.float32)
        steps = (tf.shape(order)[-1] + batch_size - 1) // batch_size

        def step(index, loss_sum, correct):
            batch = order[..., index * batch_size:(index + 1) * batch_size]
            loss, right = train_batch(tf.gather(x_all, batch), tf.gather(y_all, batch))
            count = tf.cast(tf.shape(batch)[-1], tf.float32)
            return index + 1, loss_sum + loss * count, correct + right

        _, loss_sum, correct = tf.while_loop(lambda index, *_: index < steps, step,
                                             (tf.constant(0), zeros, zeros))
        return loss_sum / total, correct / total

    return run


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
