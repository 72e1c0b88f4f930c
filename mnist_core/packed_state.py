"""A pack's stacked variables and Keras's update rules, op for op (``packed_training``'s state).

``PackState`` holds the K members' weights side by side (the first layer as one wide kernel,
every later layer as a (K, in, out) tensor), their optimizer slots, their per-member
hyperparameters as vectors and the mask of members still training; ``apply`` is one step of
Keras's SGD (with momentum and Nesterov), Adam, RMSprop or Adagrad for every member at once,
with Keras's cosine and exponential learning-rate schedules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mnist_core.config import TrialConfig, hyperparameter_fields

# Every real-valued hyperparameter varies per member, as a float32 vector over the pack.
MEMBER_RATES = tuple(item.name for item in hyperparameter_fields()
                     if isinstance(item.default, float))
_EPSILON = 1e-7  # Keras's optimizer epsilon
_BETA_1, _BETA_2, _RHO, _ADAGRAD_START = 0.9, 0.999, 0.9, 0.1  # Keras's defaults


class PackState:
    """The stacked variables of a pack: weights, optimizer slots, per-member hyperparameters
    (vectors over the K members) and the mask of members still training."""

    def __init__(self, configs: Sequence[TrialConfig], start: list[list[np.ndarray]],
                 groups: int, train_size: int):
        import tensorflow as tf

        self.configs, self.size = list(configs), len(configs)
        self.groups = groups  # members in equal groups, each on rows of its own
        self.optimizer = configs[0].optimizer
        self.activation = configs[0].model.activation
        self.widths = [int(kernel.shape[1]) for kernel in start[0][0::2]]
        self.variables = [tf.Variable(value) for value in _stack_members(start)]
        self.steps = tf.Variable(0, dtype=tf.int64)
        self.active = tf.Variable(np.ones(self.size, bool))
        steps_per_epoch = math.ceil(train_size / configs[0].batch_size)
        self.member = {name: tf.constant(_values(configs, name)) for name in MEMBER_RATES}
        self.member["nesterov"] = tf.constant(_values(configs, "nesterov", bool))
        self.member["schedule"] = tf.constant(_values(configs, "schedule", None))
        self.member["cosine_steps"] = tf.constant(
            _values(configs, "epochs") * np.float32(steps_per_epoch))
        self.steps_per_epoch = np.float32(steps_per_epoch)
        # What the pack's members use, fixed when the graph is traced: the ops a pack does not
        # need are left out of it (a momentum slot, Nesterov, the penalty, the schedules).
        self.uses = {name: any(getattr(config, name) for config in configs)
                     for name in ("momentum", "nesterov", "l2")}
        self.uses["schedule"] = any(config.schedule != "constant" for config in configs)
        self.uses["only_nesterov"] = all(config.nesterov for config in configs)
        self.slots = _slots(self.optimizer, self.variables, self.uses["momentum"])

    def forward(self, x):
        """Logits (K, n, 10) for scaled inputs ``x``: (n, D), or (groups, n, D) where each
        group of members sees its own."""
        import keras
        import tensorflow as tf

        activation = keras.activations.get(self.activation)
        _, _, *rest = self.variables
        hidden = self._first_layer(x, activation)
        for layer in range(0, len(rest), 2):
            logits = tf.einsum("kbi,kio->kbo", hidden, rest[layer]) + rest[layer + 1]
            hidden = activation(logits) if layer + 2 < len(rest) else logits
        return hidden

    def _first_layer(self, x, activation):
        """The first layer's outputs (K, n, H): one wide matmul for inputs all members share,
        a batched one over the groups for inputs per group (members group-major)."""
        import tensorflow as tf

        kernel, bias = self.variables[:2]
        width = self.widths[0]
        if len(x.shape) == 2:
            hidden = activation(tf.matmul(x, kernel) + bias)
            return tf.transpose(tf.reshape(hidden, (-1, self.size, width)), (1, 0, 2))
        groups, per_group = self.groups, self.size // self.groups
        kernel = tf.transpose(tf.reshape(kernel, (-1, groups, per_group * width)), (1, 0, 2))
        hidden = activation(tf.matmul(x, kernel) + tf.reshape(bias, (groups, 1, -1)))
        hidden = tf.transpose(tf.reshape(hidden, (groups, -1, per_group, width)), (0, 2, 1, 3))
        return tf.reshape(hidden, (self.size, -1, width))

    def member_labels(self, labels):
        """Labels each member is scored against: ``labels`` (n,) for all, or each group's
        (groups, n) repeated for its members (K, n)."""
        import tensorflow as tf

        if len(labels.shape) == 1:
            return labels
        return tf.repeat(labels, self.size // self.groups, axis=0)

    def penalty(self):
        """Each member's L2 penalty (K,): ``l2`` times the sum of its squared kernels."""
        import tensorflow as tf

        first, *rest = self.variables[0::2]
        squares = tf.reduce_sum(tf.reshape(tf.reduce_sum(tf.square(first), axis=0),
                                           (self.size, -1)), axis=1)
        for kernel in rest:
            squares += tf.reduce_sum(tf.square(kernel), axis=(1, 2))
        return self.member["l2"] * squares

    def with_penalty(self, gradients) -> list:
        """``gradients`` plus the penalty's, ``2·l2·W`` on each kernel: written out rather
        than taken through the tape, one fused step instead of the tape's broadcasts."""
        twice = 2.0 * self.member["l2"]
        return [gradient + self.spread(twice, index) * variable if index % 2 == 0 else gradient
                for index, (variable, gradient) in enumerate(zip(self.variables, gradients))]

    def learning_rates(self):
        """Each member's learning rate (K,) at this step, as Keras's schedules give it."""
        import tensorflow as tf

        base = self.member["learning_rate"]
        if not self.uses["schedule"]:
            return base
        step = tf.cast(self.steps - 1, tf.float32)  # Keras passes the iterations done so far
        cosine_steps = self.member["cosine_steps"]
        fraction = tf.minimum(step, cosine_steps) / cosine_steps
        cosine = base * (0.5 * (1.0 + tf.cos(np.float32(math.pi) * fraction)))
        exponential = base * tf.pow(self.member["decay_rate"], step / self.steps_per_epoch)
        kind = self.member["schedule"]
        return tf.where(tf.equal(kind, "cosine"), cosine,
                        tf.where(tf.equal(kind, "exponential"), exponential, base))

    def member_weights(self) -> list[list[np.ndarray]]:
        """Each member's weights, unstacked into Keras's order (kernel, bias per layer)."""
        return self._unstack(self.variables)

    def member_slots(self) -> list[dict[str, list[np.ndarray]]]:
        """Each member's optimizer slots, unstacked like its weights."""
        unstacked = {name: self._unstack(values) for name, values in self.slots.items()}
        return [{name: values[index] for name, values in unstacked.items()}
                for index in range(self.size)]

    def load(self, weights: list[list[np.ndarray]],
             slots: dict[str, list[list[np.ndarray | None]]], epoch: int) -> None:
        """Set every member's weights and slots (None: the slot's starting value) and the
        step count to where ``epoch`` epochs end."""
        for variable, value in zip(self.variables, _stack_members(weights)):
            variable.assign(value)
        fill = _ADAGRAD_START if self.optimizer == "adagrad" else 0.0
        for name, members in slots.items():
            for index, variable in enumerate(self.slots[name]):
                variable.assign(_stack_layer(
                    [member[index] if member[index] is not None
                     else np.full_like(weights[position][index], fill)
                     for position, member in enumerate(members)], index))
        self.steps.assign(int(epoch * self.steps_per_epoch))

    def _unstack(self, variables) -> list[list[np.ndarray]]:
        kernel, bias, *rest = [variable.numpy() for variable in variables]
        width = self.widths[0]
        return [[kernel[:, index * width:(index + 1) * width],
                 bias[index * width:(index + 1) * width],
                 *(value[index].reshape(-1) if position % 2 else value[index]
                   for position, value in enumerate(rest))]
                for index in range(self.size)]

    def spread(self, values, index: int):
        """Per-member ``values`` (K,) shaped to broadcast against variable ``index``."""
        import tensorflow as tf

        variable = self.variables[index]
        if len(variable.shape) == 3:
            return tf.reshape(values, (self.size, 1, 1))
        return tf.repeat(values, variable.shape[-1] // self.size)

    def apply(self, gradients) -> None:
        """One optimizer step for every member still training. A frozen member gets a
        learning rate (and momentum) of 0, so its weights stay as they are; a member whose
        weights are NaN can only spoil its own columns."""
        import tensorflow as tf

        self.steps.assign_add(1)
        rates = tf.where(self.active, self.learning_rates(), 0.0)
        for index, (variable, gradient) in enumerate(zip(self.variables, gradients)):
            variable.assign_add(_UPDATES[self.optimizer](self, index, gradient,
                                                         self.spread(rates, index)))


def _values(configs: Sequence[TrialConfig], name: str, dtype=np.float32) -> np.ndarray:
    return np.array([getattr(config, name) for config in configs], dtype=dtype)


def _stack_members(members: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Each member's own Keras weights, stacked into the pack's layout."""
    return [_stack_layer([weights[index] for weights in members], index)
            for index in range(len(members[0]))]


def _stack_layer(values: list[np.ndarray], index: int) -> np.ndarray:
    """Layer ``index`` of every member, in the pack's layout: the first kernel and bias side
    by side, later kernels and biases stacked on a leading member axis."""
    if index < 2:
        return np.concatenate(values, axis=-1)
    if index % 2:  # a later bias: (K, 1, out)
        return np.stack([value.reshape(1, -1) for value in values])
    return np.stack(values)


def _slots(optimizer: str, variables, uses_momentum: bool) -> dict[str, list]:
    import tensorflow as tf

    names = {"sgd": ("momentum",) if uses_momentum else (), "adam": ("m", "v"),
             "rmsprop": ("velocity",), "adagrad": ("accumulator",)}[optimizer]
    start = _ADAGRAD_START if optimizer == "adagrad" else 0.0
    return {name: [tf.Variable(tf.fill(variable.shape, start)) for variable in variables]
            for name in names}


def _sgd(pack: PackState, index: int, gradient, learning_rate):
    """Keras SGD: ``w −= lr·g``; with momentum ``m = momentum·m − lr·g`` and ``w += m`` (or,
    Nesterov, ``w += momentum·m − lr·g``)."""
    import tensorflow as tf

    scaled = gradient * learning_rate
    if not pack.uses["momentum"]:
        return -scaled
    momentum = pack.spread(tf.where(pack.active, pack.member["momentum"], 0.0), index)
    slot = pack.slots["momentum"][index]
    velocity = slot * momentum - scaled
    slot.assign(velocity)
    if not pack.uses["nesterov"]:
        return velocity
    step = velocity * momentum - scaled
    if pack.uses["only_nesterov"]:
        return step
    return tf.where(pack.spread(pack.member["nesterov"], index), step, velocity)


def _adam(pack: PackState, index: int, gradient, learning_rate):
    """Keras Adam, op for op (beta_1 0.9, beta_2 0.999, epsilon 1e-7)."""
    import tensorflow as tf

    step = tf.cast(pack.steps, tf.float32)
    alpha = learning_rate * tf.sqrt(1 - tf.pow(_BETA_2, step)) / (1 - tf.pow(_BETA_1, step))
    m, v = pack.slots["m"][index], pack.slots["v"][index]
    m.assign_add((gradient - m) * (1 - _BETA_1))
    v.assign_add((tf.square(gradient) - v) * (1 - _BETA_2))
    return -((m * alpha) / (tf.sqrt(v) + _EPSILON))


def _rmsprop(pack: PackState, index: int, gradient, learning_rate):
    """Keras RMSprop without momentum or centring (rho 0.9, epsilon 1e-7)."""
    import tensorflow as tf

    velocity = pack.slots["velocity"][index]
    velocity.assign(_RHO * velocity + (1 - _RHO) * tf.square(gradient))
    return -((learning_rate * gradient) / tf.sqrt(velocity + _EPSILON))


def _adagrad(pack: PackState, index: int, gradient, learning_rate):
    """Keras Adagrad (initial accumulator 0.1, epsilon 1e-7)."""
    import tensorflow as tf

    accumulator = pack.slots["accumulator"][index]
    accumulator.assign_add(tf.square(gradient))
    return -((learning_rate * gradient) / tf.sqrt(accumulator + _EPSILON))


_UPDATES = {"sgd": _sgd, "adam": _adam, "rmsprop": _rmsprop, "adagrad": _adagrad}
