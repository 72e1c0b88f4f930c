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
    """One training trial: the model, the optimiser and the fit settings."""

    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: str = "sgd"
    learning_rate: float = 0.5
    batch_size: int = 100
    epochs: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_type("learning_rate", self.learning_rate, (int, float))
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}")
        _check_positive_int("batch_size", self.batch_size)
        _check_positive_int("epochs", self.epochs)
        _check_type("seed", self.seed, int)

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


def _check_positive_int(name: str, value: object) -> None:
    _check_type(name, value, int)
    if value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value}")
