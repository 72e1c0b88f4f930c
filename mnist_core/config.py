"""Typed, validated configuration for data and trials, built once at the edge.

Jobs build these from flags or TOML; everything downstream receives them, never dicts.
Validation raises ``ConfigError`` naming the field (``key``) and the bad value; the jobs turn
the field into the flag or TOML key the user typed. The ``check_*`` helpers are the one way
every config dataclass of the project validates itself.

``TrialConfig``'s fields are the one list of hyperparameters: the report columns, the
``jobs.train`` flags (with their defaults and help) and the sweep grid's keys derive from them
(``hyperparameter_fields``). A new hyperparameter goes here, plus its maths in ``training``
and ``packed_training``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from mnist_core.errors import ConfigError

NUM_CLASSES = 10
MAX_SEED = 2**32 - 1  # numpy's seeds are unsigned 32-bit integers
# What one trial may ask for, so that a typo cannot take a worker down: parameters counted on
# MNIST's 784 inputs (weights, gradients and two optimizer slots: 16 bytes each, 1.6 GB at the
# limit), and epochs.
MAX_TRIAL_PARAMS = 100_000_000
MAX_EPOCHS = 100_000
MAX_INPUT_DIM = 784
DATASETS = ("mnist", "fashion_mnist", "digits")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
ACTIVATIONS = ("sigmoid", "relu", "tanh", "elu", "softplus", "linear")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad", "nadam")
SCHEDULES = ("constant", "cosine", "exponential")


def hyperparameter(default, help: str, choices: tuple[str, ...] | None = None,
                   added_later: bool = False, column: str | None = None):
    """A ``TrialConfig`` field with what the edges derive from it: its help text, its choices,
    whether it came after the first release (trial ids leave it out while at its default, so
    old sweeps resume with the same ids), and its report column type where not the usual."""
    metadata = {"help": help, "choices": choices, "added_later": added_later, "column": column}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class DataConfig:
    """Which dataset to load, from where, and how to carve the validation split."""

    dataset: str = "digits"
    data_path: str = ""
    validation_split: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        check_type("data_path", self.data_path, str)
        check_seed("seed", self.seed)
        check_range("validation_split", self.validation_split, 0.0, 1.0, upper_open=True)
        if self.dataset == "digits" and self.data_path:
            raise ConfigError("names a file, but digits is scikit-learn's bundled set and "
                              f"reads none (got {self.data_path!r}); leave it empty",
                              key="data_path")


@dataclass(frozen=True)
class ModelConfig:
    """The dense network: hidden layer widths and their activation; softmax over 10 outputs."""

    hidden_units: tuple[int, ...] = hyperparameter(
        (10,), "hidden layer widths, e.g. 128,64")
    activation: str = hyperparameter(
        "sigmoid", "activation of the hidden layers", choices=ACTIVATIONS)

    def __post_init__(self) -> None:
        units = self.hidden_units
        if not isinstance(units, tuple) or not units:
            raise ConfigError(f"must be a non-empty list of integers, got {units!r}",
                              key="hidden_units")
        for width in units:
            if isinstance(width, bool) or not isinstance(width, int) or width <= 0:
                raise ConfigError(f"must hold positive integers, got {units!r}",
                                  key="hidden_units")
        if self.max_params > MAX_TRIAL_PARAMS:
            raise ConfigError(
                f"{list(units)} make a network of {self.max_params:,} parameters on "
                f"{MAX_INPUT_DIM} inputs; the limit is {MAX_TRIAL_PARAMS:,} per trial (about "
                f"{MAX_TRIAL_PARAMS * 16 / 1e9:.1f} GB of weights, gradients and optimizer "
                "state)", key="hidden_units")
        check_choice("activation", self.activation, ACTIVATIONS)

    @property
    def max_params(self) -> int:
        """Parameters of this network on the largest input there is (MNIST's 784 pixels)."""
        widths = [MAX_INPUT_DIM, *self.hidden_units, NUM_CLASSES]
        return sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(widths, widths[1:]))


@dataclass(frozen=True)
class TrialConfig:
    """One training trial: the model, the optimiser, the fit settings, and how the epoch whose
    weights are kept is chosen (``restore_best``: the best validation accuracy; ``patience``:
    stop after that many epochs without a better one, 0 = never)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: str = hyperparameter("sgd", "optimizer", choices=OPTIMIZERS)
    learning_rate: float = hyperparameter(0.5, "optimizer learning rate")
    batch_size: int = hyperparameter(100, "mini-batch size")
    epochs: int = hyperparameter(5, "training epochs")
    seed: int = hyperparameter(0, "seeds the weights, the shuffling and the validation split",
                               column="int64")
    momentum: float = hyperparameter(0.0, "SGD momentum", added_later=True)
    nesterov: bool = hyperparameter(False, "Nesterov momentum (SGD)", added_later=True)
    l2: float = hyperparameter(0.0, "L2 penalty on the kernels", added_later=True)
    schedule: str = hyperparameter("constant", "learning-rate schedule over the epochs",
                                   choices=SCHEDULES, added_later=True)
    decay_rate: float = hyperparameter(0.9, "per-epoch factor of the exponential schedule",
                                       added_later=True)
    restore_best: bool = hyperparameter(
        False, "keep the weights of the epoch with the best validation accuracy",
        added_later=True)
    patience: int = hyperparameter(
        0, "stop after this many epochs without a better validation accuracy (0: never)",
        added_later=True)

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_range("learning_rate", self.learning_rate, 0.0, None, lower_open=True)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("epochs", self.epochs)
        if self.epochs > MAX_EPOCHS:
            raise ConfigError(f"must be <= {MAX_EPOCHS:,} (a trial that never ends), got "
                              f"{self.epochs:,}", key="epochs")
        check_seed("seed", self.seed)
        self._check_regularisation()

    def _check_regularisation(self) -> None:
        check_range("momentum", self.momentum, 0.0, 1.0, upper_open=True)
        check_flag("nesterov", self.nesterov)
        if self.optimizer != "sgd" and (self.momentum or self.nesterov):
            raise ConfigError(f"momentum and nesterov apply to sgd only, not {self.optimizer}")
        check_range("l2", self.l2, 0.0, None)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_range("decay_rate", self.decay_rate, 0.0, 1.0, lower_open=True)
        check_flag("restore_best", self.restore_best)
        check_type("patience", self.patience, int)
        if self.patience < 0:
            raise ConfigError(f"must be >= 0 (0: no early stopping), got {self.patience}",
                              key="patience")

    @property
    def needs_validation(self) -> bool:
        """Whether choosing this trial's epoch needs a validation split."""
        return self.restore_best or self.patience > 0

    def as_record(self) -> dict:
        """A flat dict of every hyperparameter (``HYPERPARAMETERS`` order), as report rows
        carry it."""
        # Field by field, not ``dataclasses.asdict``: its deep copy was a third of a
        # million-trial sweep's driver time, and every value here is immutable.
        return {"hidden_units": list(self.model.hidden_units),
                "activation": self.model.activation,
                **{name: getattr(self, name) for name in _OWN_FIELDS}}

    @classmethod
    def from_record(cls, record: dict) -> TrialConfig:
        """The config a report row (or ``as_record``) describes; other keys are ignored."""
        values = {name: record[name] for name in HYPERPARAMETERS
                  if name not in ("hidden_units", "activation")}
        model = ModelConfig(hidden_units=tuple(record["hidden_units"]),
                            activation=record["activation"])
        return cls(model=model, **values)


def hyperparameter_fields() -> tuple[dataclasses.Field, ...]:
    """Every hyperparameter's field: the model's, then the trial's own (``model`` aside)."""
    return (*dataclasses.fields(ModelConfig),
            *(item for item in dataclasses.fields(TrialConfig) if item.name != "model"))


HYPERPARAMETERS = tuple(item.name for item in hyperparameter_fields())


def class_names(dataset: str | None) -> list[str]:
    """What each of the 10 labels means in ``dataset``: Fashion-MNIST's garments, else the
    digit itself."""
    if dataset == "fashion_mnist":
        return [f"{label} {name}" for label, name in enumerate(FASHION_CLASSES)]
    return [str(label) for label in range(NUM_CLASSES)]


def hyperparameter_text(value):
    """A hyperparameter's value as reports, pages and trackers show it: a list (the
    ``hidden_units`` widths) as ``10x10``, any other value as it is."""
    return "x".join(map(str, value)) if isinstance(value, list | tuple) else value
_OWN_FIELDS = tuple(item.name for item in dataclasses.fields(TrialConfig) if item.name != "model")


def check_type(name: str, value: object, kinds: type | tuple[type, ...]) -> None:
    """``value`` is one of ``kinds`` (a bool is never a number)."""
    allowed = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise ConfigError(f"has the wrong type: {value!r}", key=name)


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{value!r} is unknown; choose one of {', '.join(choices)}", key=name)


def check_flag(name: str, value: object) -> None:
    """``value`` is true or false."""
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {value!r}", key=name)


def check_range(name: str, value: object, lower: float, upper: float | None,
                lower_open: bool = False, upper_open: bool = False) -> None:
    """``value`` is a number within the bounds (open or closed at each end)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"must be a number, got {value!r}", key=name)
    if not math.isfinite(value):
        raise ConfigError(f"must be a finite number, got {value}", key=name)
    below = value <= lower if lower_open else value < lower
    above = upper is not None and (value >= upper if upper_open else value > upper)
    if not (below or above):
        return
    if upper is None:
        raise ConfigError(f"must be {'>' if lower_open else '>='} {lower:g}, got {value}",
                          key=name)
    bounds = f"{'(' if lower_open else '['}{lower:g}, {upper:g}{')' if upper_open else ']'}"
    raise ConfigError(f"must be in {bounds}, got {value}", key=name)


def check_int(name: str, value: object, lowest: int) -> None:
    """``value`` is an integer (not a bool) of at least ``lowest``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise ConfigError(f"must be an integer >= {lowest}, got {value!r}", key=name)


def check_seed(name: str, value: object) -> None:
    """``value`` is a seed numpy and TensorFlow take: an integer in [0, 2**32 - 1]."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise ConfigError(f"must be an integer in [0, {MAX_SEED}], got {value!r}", key=name)


def check_positive_int(name: str, value: object) -> None:
    """``value`` is an integer of at least 1."""
    check_type(name, value, int)
    if value <= 0:
        raise ConfigError(f"must be a positive integer, got {value}", key=name)
