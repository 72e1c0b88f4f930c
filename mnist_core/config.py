"""Typed, validated configuration for data and trials, built once at the edge.

Jobs build these from flags or TOML; everything downstream receives them, never dicts.
Validation raises ``ConfigError`` with a message that names the field and the bad value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mnist_core.errors import ConfigError

DATASETS = ("mnist", "fashion_mnist", "digits")
ACTIVATIONS = ("sigmoid", "relu", "tanh", "elu", "softplus", "linear")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad", "nadam")
SCHEDULES = ("constant", "cosine", "exponential")


@dataclass(frozen=True)
class DataConfig:
    """Which dataset to load, from where, and how to carve the validation split."""

    dataset: str = "digits"
    data_path: str = ""
    validation_split: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check_choice("dataset", self.dataset, DATASETS)
        _check_type("data_path", self.data_path, str)
        _check_type("seed", self.seed, int)
        _check_type("validation_split", self.validation_split, (int, float))
        if not 0.0 <= self.validation_split < 1.0:
            raise ConfigError(f"validation_split must be in [0, 1), got {self.validation_split}")


@dataclass(frozen=True)
class ModelConfig:
    """The dense network: hidden layer widths and their activation; softmax over 10 outputs."""

    hidden_units: tuple[int, ...] = (10,)
    activation: str = "sigmoid"

    def __post_init__(self) -> None:
        units = self.hidden_units
        if not isinstance(units, tuple) or not units:
            raise ConfigError(f"hidden_units must be a non-empty list of integers, got {units!r}")
        for width in units:
            if isinstance(width, bool) or not isinstance(width, int) or width <= 0:
                raise ConfigError(f"hidden_units must hold positive integers, got {units!r}")
        _check_choice("activation", self.activation, ACTIVATIONS)


@dataclass(frozen=True)
class TrialConfig:
    """One training trial: the model, the optimiser, the fit settings, and how the epoch whose
    weights are kept is chosen (``restore_best``: the best validation accuracy; ``patience``:
    stop after that many epochs without a better one, 0 = never)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: str = "sgd"
    learning_rate: float = 0.5
    batch_size: int = 100
    epochs: int = 5
    seed: int = 0
    momentum: float = 0.0
    nesterov: bool = False
    l2: float = 0.0
    schedule: str = "constant"
    decay_rate: float = 0.9
    restore_best: bool = False
    patience: int = 0

    def __post_init__(self) -> None:
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_type("learning_rate", self.learning_rate, (int, float))
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}")
        _check_positive_int("batch_size", self.batch_size)
        _check_positive_int("epochs", self.epochs)
        _check_type("seed", self.seed, int)
        self._check_regularisation()

    def _check_regularisation(self) -> None:
        _check_range("momentum", self.momentum, 0.0, 1.0, upper_open=True)
        _check_flag("nesterov", self.nesterov)
        if self.optimizer != "sgd" and (self.momentum or self.nesterov):
            raise ConfigError(f"momentum and nesterov apply to sgd only, not {self.optimizer}")
        _check_range("l2", self.l2, 0.0, None)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_range("decay_rate", self.decay_rate, 0.0, 1.0, lower_open=True)
        _check_flag("restore_best", self.restore_best)
        _check_type("patience", self.patience, int)
        if self.patience < 0:
            raise ConfigError(f"patience must be >= 0 (0: no early stopping), got {self.patience}")

    @property
    def needs_validation(self) -> bool:
        """Whether choosing this trial's epoch needs a validation split."""
        return self.restore_best or self.patience > 0

    def as_record(self) -> dict:
        """A flat dict of every hyperparameter, as report rows carry it."""
        record = asdict(self)
        model = record.pop("model")
        return {"hidden_units": list(model["hidden_units"]), "activation": model["activation"],
                **record}


def _check_type(name: str, value: object, kinds: type | tuple[type, ...]) -> None:
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ConfigError(f"{name} has the wrong type: {value!r}")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def _check_flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")


def _check_range(name: str, value: object, lower: float, upper: float | None,
                 lower_open: bool = False, upper_open: bool = False) -> None:
    _check_type(name, value, (int, float))
    below = value <= lower if lower_open else value < lower
    above = upper is not None and (value >= upper if upper_open else value > upper)
    if below or above:
        bounds = f"{'(' if lower_open else '['}{lower:g}, " + (
            f"{upper:g}{')' if upper_open else ']'}" if upper is not None else "inf)")
        raise ConfigError(f"{name} must be in {bounds}, got {value}")


def _check_positive_int(name: str, value: object) -> None:
    _check_type(name, value, int)
    if value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value}")
