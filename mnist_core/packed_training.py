"""Train a pack of trials as one vectorized graph: K copies of the dense network, stacked.

The tutorial's network is 7,960 parameters: trained alone it leaves a CPU core mostly idle and a
GPU nearly so, because per-step dispatch costs more than the maths. Members of a pack share the
architecture, activation, optimizer, batch size and seed (``packs.pack_key``), so they share
the data order and the initial weights (the seed decides both, exactly as in the single-trial
path). The first layer is then one wide ``(batch, D) @ (D, K·H)`` matmul and every later layer
a batched einsum over the K members. Per member: learning rate, momentum and every other
numeric hyperparameter, optimizer state, and epochs — a member whose epochs are done (or whose
loss stopped being finite) is frozen: its updates are masked out with ``tf.where``, so NaN in
one member never reaches the others.

Members may also form equal groups (``MemberGroups``), each with its own rows of one data
set, data order and validation rows; the first layer is then one batched matmul over the
groups.

The maths is Keras's: weights from Keras's initialisers for the trial's seed, the same
softmax cross-entropy (from logits, as Keras takes it from a softmax output in a graph), the
update rules of Keras's SGD (with momentum and Nesterov), Adam, RMSprop and Adagrad and its
cosine and exponential learning-rate schedules, written out op for op, plus the single-trial
path's L2 penalty and epoch choice (``training.EpochChooser``), so a member of a pack ends where
the same trial trained alone ends (tested to 1e-5). Groups may differ in seed (one setting
restarted from several seeds: the refit's restarts): each group then starts from its seed's
weights and shuffles in its seed's order, as each member would alone. Nadam is not packed
(``PACKABLE_OPTIMIZERS``): such trials run alone.
"""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mnist_core.config import TrialConfig
from mnist_core.data import Splits
from mnist_core.model import build_model
from mnist_core.packed_state import PackState
from mnist_core.training import EpochChooser, minibatch_epoch

PACKABLE_OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad")


@dataclass(frozen=True, eq=False)
class MemberState:
    """Where a member stopped, to go on from there (successive halving): the epochs its pack
    has run, and as ``.npz`` bytes its last weights, optimizer slots, history, epoch choice
    and best weights so far. Trained on from here, with the data order of the epochs that
    follow, it ends where the member trained straight through would have."""

    epoch: int
    arrays: bytes


@dataclass(frozen=True, eq=False)
class MemberGroups:
    """Members of one pack that train on different rows of the splits' training images: the
    pack's members, in order, form ``len(train_rows)`` groups of equal size; group ``g``
    trains on rows ``train_rows[g]`` (in that order, shuffled by its members' seed as if they
    were the whole training set, so each member ends where it would trained alone on them)
    and is validated on rows ``val_rows[g]``. Every group has as many rows of each: its steps
    match. The members of a group share their seed; groups may differ."""

    train_rows: tuple[np.ndarray, ...]
    val_rows: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        if len({len(rows) for rows in self.train_rows}) != 1 or len(
                {len(rows) for rows in self.val_rows}) != 1 or len(self.train_rows) != len(
                self.val_rows):
            raise ValueError("every group of a pack needs as many training rows, and as "
                             "many validation rows, as the others")

    @property
    def count(self) -> int:
        return len(self.train_rows)


@dataclass(frozen=True, eq=False)
class PackData:
    """What a pack trains on: the scaled images its orders index, and its validation images
    (one set, or ``(groups, n, D)``: a set per group); ``groups``: per-group rows, or None."""

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    groups: MemberGroups | None

    @classmethod
    def of(cls, splits: Splits, groups: MemberGroups | None) -> PackData:
        scale = np.float32(1.0 / splits.pixel_max)
        if groups is None:
            return cls(splits.x_train * scale, splits.y_train, splits.x_val * scale,
                       splits.y_val, None)
        val_rows = np.stack(groups.val_rows)
        return cls(splits.x_train * scale, splits.y_train, splits.x_train[val_rows] * scale,
                   splits.y_train[val_rows], groups)

    @property
    def train_size(self) -> int:
        """The training images of each member."""
        return len(self.y) if self.groups is None else len(self.groups.train_rows[0])

    @property
    def validates(self) -> bool:
        return self.y_val.shape[-1] > 0

    def order(self, permutations: list[np.ndarray]) -> np.ndarray:
        """An epoch's rows of ``x``: a permutation of the training images, or each group's
        permutation of its training rows (``(groups, n)``)."""
        if self.groups is None:
            return permutations[0].astype(np.int32)
        return np.stack([rows[permutation] for rows, permutation in
                         zip(self.groups.train_rows, permutations)]).astype(np.int32)


@dataclass(frozen=True, eq=False)
class MemberFit:
    """One member's outcome: per-epoch history, the kept epoch (1-based) and its weights
    (Keras order: kernel, bias per layer), why it failed (None when it did not), and, for a
    member stopped short of its config's epochs, the state to go on from."""

    history: dict[str, list[float]]
    best_epoch: int
    weights: list[np.ndarray]
    error: str | None
    state: MemberState | None = None


@dataclass(frozen=True, eq=False)
class PackFit:
    """Every member's outcome, in the order of the configs, and the pack's training time."""

    members: list[MemberFit]
    seconds: float


def initial_weights(config: TrialConfig, splits: Splits) -> list[np.ndarray]:
    """The weights the single-trial path starts from for ``config``'s seed (Keras's
    initialisers, seeded by ``keras.utils.set_random_seed``)."""
    import keras

    keras.utils.set_random_seed(config.seed)
    return build_model(config.model, splits.input_dim, splits.pixel_max).get_weights()


def train_pack(configs: Sequence[TrialConfig], splits: Splits,
               budgets: Sequence[int] | None = None,
               starts: Sequence[MemberState] | None = None,
               groups: MemberGroups | None = None) -> PackFit:
    """Train every config of one pack together on ``splits``, each for its budget of epochs
    (default: its config's; a schedule still spans the config's epochs). ``starts``: every
    member's state to go on from (all at the same epoch), instead of epoch 0. ``groups``:
    which rows of the training images each group of members trains and is validated on,
    instead of the splits' training and validation images."""
    import tensorflow as tf

    if groups is not None and len(configs) % groups.count:
        raise ValueError(f"{len(configs)} members do not form {groups.count} equal groups")
    start = time.perf_counter()
    members = [_Member(config, budget) for config, budget in
               zip(configs, budgets or [config.epochs for config in configs])]
    data = PackData.of(splits, groups)
    seeds = group_seeds(configs, groups)
    first = {seed: initial_weights(dataclasses.replace(configs[0], seed=seed), splits)
             for seed in set(seeds)}
    pack = PackState(configs, [first[config.seed] for config in configs],
                     data.groups.count if data.groups else 1, data.train_size)
    done = _resume(pack, members, starts) if starts else 0
    run_epoch = _epoch_function(pack, data)
    measure = _metrics_function(pack, data)
    shufflers = {seed: np.random.default_rng(seed) for seed in set(seeds)}
    for _ in range(done):  # the data order of the epochs already trained
        for shuffler in shufflers.values():
            shuffler.permutation(data.train_size)
    for epoch in range(done + 1, max(member.budget for member in members) + 1):
        shuffled = {seed: shuffler.permutation(data.train_size)
                    for seed, shuffler in shufflers.items()}
        order = tf.constant(data.order([shuffled[seed] for seed in seeds]))
        rows = dict(zip(("loss", "accuracy"), (value.numpy() for value in run_epoch(order))))
        if data.validates:
            rows |= dict(zip(("val_loss", "val_accuracy"),
                             (value.numpy() for value in measure())))
        _record_epoch(pack, epoch, rows, members)
    weights, slots = pack.member_weights(), pack.member_slots()
    return PackFit([member.fit(weights[index], _state(member, weights[index], slots[index]))
                    for index, member in enumerate(members)], time.perf_counter() - start)


def group_seeds(configs: Sequence[TrialConfig], groups: MemberGroups | None) -> list[int]:
    """The seed of each group of a pack's members (one for a pack without groups): it
    decides the group's starting weights and data order, so its members must share it."""
    count = groups.count if groups else 1
    per_group = len(configs) // count
    seeds = [{config.seed for config in configs[start:start + per_group]}
             for start in range(0, per_group * count, per_group)]
    if any(len(group) != 1 for group in seeds):
        raise ValueError("the members of a pack (of each group of one) must share their seed")
    return [group.pop() for group in seeds]


def _state(member: _Member, weights: list[np.ndarray],
           slots: dict[str, list[np.ndarray]]) -> MemberState | None:
    """The state of a member stopped at its budget, short of its config's epochs (None
    otherwise). A member frozen early (``patience``) stays frozen when it goes on."""
    if member.error is not None or member.budget >= member.config.epochs:
        return None
    arrays = {f"weight_{index}": value for index, value in enumerate(weights)}
    arrays |= {f"slot_{name}_{index}": value for name, values in slots.items()
               for index, value in enumerate(values)}
    arrays |= {f"best_{index}": value for index, value in enumerate(member.best_weights or [])}
    arrays |= {f"history_{key}": np.asarray(values) for key, values in member.history.items()}
    chooser = member.chooser
    arrays["chooser"] = np.array([chooser.best_epoch, chooser.best_accuracy, chooser.stopped],
                                 np.float64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return MemberState(member.budget, buffer.getvalue())


def _resume(pack: PackState, members: list[_Member], starts: Sequence[MemberState]) -> int:
    """Load every member's state into ``pack`` and ``members``; the epochs already run."""
    (epoch,) = {state.epoch for state in starts}
    loaded = [np.load(io.BytesIO(state.arrays), allow_pickle=False) for state in starts]
    layers = len(pack.variables)
    weights = [[arrays[f"weight_{index}"] for index in range(layers)] for arrays in loaded]
    slots = {name: [[arrays.get(f"slot_{name}_{index}") for index in range(layers)]
                    for arrays in loaded] for name in pack.slots}
    pack.load(weights, slots, epoch)
    for member, arrays in zip(members, loaded):
        member.history = {key.removeprefix("history_"): [float(v) for v in arrays[key]]
                          for key in arrays.files if key.startswith("history_")}
        best_epoch, best_accuracy, stopped = arrays["chooser"]
        member.chooser.best_epoch, member.chooser.best_accuracy = int(best_epoch), best_accuracy
        member.chooser.stopped = bool(stopped)
        if "best_0" in arrays.files:
            member.best_weights = [arrays[f"best_{index}"] for index in range(layers)]
    pack.active.assign([not member.finished(epoch) for member in members])
    return epoch


class _Member:
    """The bookkeeping of one member: history, epoch choice, best weights, failure."""

    def __init__(self, config: TrialConfig, budget: int):
        self.config, self.budget = config, budget
        self.history: dict[str, list[float]] = {}
        self.chooser = EpochChooser(config)
        self.best_weights: list[np.ndarray] | None = None
        self.error: str | None = None

    def finished(self, epoch: int) -> bool:
        return self.error is not None or self.chooser.stopped or epoch >= self.budget

    def fit(self, last_weights: list[np.ndarray], state: MemberState | None) -> MemberFit:
        if self.chooser.keeps_best():
            return MemberFit(self.history, self.chooser.best_epoch, self.best_weights,
                             self.error, state)
        return MemberFit(self.history, len(self.history.get("loss", [])), last_weights,
                         self.error, state)


def _record_epoch(pack: PackState, epoch: int, rows: dict, members: list[_Member]) -> None:
    """Append this epoch's metrics of every member still training, keep best weights, and
    freeze the members that are done, stopped early, or whose loss is no longer finite."""
    active = pack.active.numpy()
    improved = []
    for index, member in enumerate(members):
        if not active[index]:
            continue
        for key, values in rows.items():
            member.history.setdefault(key, []).append(float(values[index]))
        if not np.isfinite(rows["loss"][index]):
            member.error = f"loss became {rows['loss'][index]} in epoch {epoch}"
        elif member.chooser.observe(epoch, member.history.get("val_accuracy", [None])[-1]):
            improved.append(index)
        active[index] = not member.finished(epoch)
    if any(members[index].config.needs_validation for index in improved):
        weights = pack.member_weights()
        for index in improved:
            members[index].best_weights = weights[index]
    pack.active.assign(active)


def _epoch_function(pack: PackState, data: PackData):
    """One epoch for the whole pack as one graph call; returns per-member (loss, accuracy)."""
    import tensorflow as tf

    def train_batch(x_batch, y_batch):
        y_batch = pack.member_labels(y_batch)
        with tf.GradientTape() as tape:
            logits = pack.forward(x_batch)
            losses = _mean_cross_entropy(logits, y_batch)
            total_loss = tf.reduce_sum(losses)  # members' gradients stay independent
        gradients = tape.gradient(total_loss, pack.variables)
        if pack.uses["l2"]:  # the reported loss includes the penalty, as Keras's does
            losses += pack.penalty()
            gradients = pack.with_penalty(gradients)
        pack.apply(gradients)
        return losses, _correct(logits, y_batch)

    epoch = minibatch_epoch(data.x, data.y, pack.configs[0].batch_size, train_batch,
                            np.zeros(pack.size))
    return tf.function(epoch, autograph=False)


def _metrics_function(pack: PackState, data: PackData):
    """Per-member loss and accuracy on the validation set (each group's), in one graph call."""
    import tensorflow as tf

    x_val = tf.constant(data.x_val)
    y_val = tf.constant(data.y_val)

    @tf.function(autograph=False)
    def measure():
        logits = pack.forward(x_val)
        labels = pack.member_labels(y_val)
        return _mean_cross_entropy(logits, labels), _correct(logits, labels) / tf.cast(
            tf.shape(y_val)[-1], tf.float32)

    return measure


def _mean_cross_entropy(logits, labels):
    """Per-member mean softmax cross-entropy (K,) of logits (K, n, 10) against labels (n,),
    or each member's (K, n)."""
    import tensorflow as tf

    labels = tf.broadcast_to(labels, tf.shape(logits)[:2])
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits), axis=1)


def _correct(logits, labels):
    import tensorflow as tf

    predicted = tf.argmax(logits, axis=2, output_type=tf.int32)
    return tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.float32), axis=1)
