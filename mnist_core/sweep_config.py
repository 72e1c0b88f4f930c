"""Sweep configuration: a TOML file validated into frozen dataclasses, and its grid of trials.

The cartesian product of every ``[grid]`` list, times every seed, is the set of trials. Each
trial gets a stable id from its position and a hash of its config, so a resumed sweep knows
exactly which trials it still owes. Reading the file is the only side effect here.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from mnist_core.config import DataConfig, ModelConfig, TrialConfig
from mnist_core.errors import ConfigError, DataNotFoundError

SECTIONS = {
    "sweep": {"name", "dataset", "data_path", "validation_split", "seeds"},
    "grid": {"hidden_units", "activation", "optimizer", "learning_rate", "batch_size", "epochs"},
    "resources": {"num_cpus", "num_gpus", "max_retries", "pack_size"},
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Resources:
    """What each pack's Ray task asks for, how many trials a pack may hold (``"auto"`` or a
    positive integer; 1 trains every trial alone), and how often a dead worker's pack is
    retried."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 2
    pack_size: int | str = "auto"


@dataclass(frozen=True)
class Trial:
    """One point of the grid for one seed, with its stable id."""

    trial_id: str
    config: TrialConfig


@dataclass(frozen=True)
class SweepConfig:
    """A whole sweep: its name, the data, the trial configs and the resources per trial."""

    name: str
    data: DataConfig
    trials: tuple[Trial, ...]
    resources: Resources
    source_text: str

    @property
    def grid_names(self) -> list[str]:
        """Hyperparameters that take more than one value in this sweep (the plotted ones)."""
        names = ["hidden_units", "activation", "optimizer", "learning_rate", "batch_size",
                 "epochs", "seed"]
        records = [trial.config.as_record() for trial in self.trials]
        return [name for name in names if len({json.dumps(r[name]) for r in records}) > 1]


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read and validate the sweep TOML at ``path``; ``ConfigError`` names file and key."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such sweep config")
    text = path.read_text()
    try:
        return parse_sweep_config(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def parse_sweep_config(text: str) -> SweepConfig:
    """Validate TOML text into a ``SweepConfig``."""
    document = tomllib.loads(text)
    _check_keys(document)
    sweep, grid = document.get("sweep", {}), document.get("grid", {})
    name = sweep.get("name", "sweep")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"[sweep] name must be letters, digits, '.', '_' or '-', got {name!r}")
    data = _section("sweep", DataConfig, dataset=sweep.get("dataset", "mnist"),
                    data_path=sweep.get("data_path", ""),
                    validation_split=sweep.get("validation_split", 0.1))
    if data.validation_split <= 0:
        raise ConfigError("[sweep] validation_split must be > 0: the best trial is chosen on "
                          "validation accuracy, never on the test set")
    seeds = _list("sweep", "seeds", sweep.get("seeds", [0]))
    trials = _expand(grid, seeds)
    return SweepConfig(name, data, trials, _resources(document.get("resources", {})), text)


def _check_keys(document: dict) -> None:
    for section, values in document.items():
        if section not in SECTIONS:
            raise ConfigError(f"unknown section [{section}]; expected "
                              + ", ".join(f"[{name}]" for name in SECTIONS))
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table")
        unknown = sorted(set(values) - SECTIONS[section])
        if unknown:
            raise ConfigError(f"[{section}] unknown key(s) {', '.join(unknown)}; expected "
                              + ", ".join(sorted(SECTIONS[section])))


def _list(section: str, key: str, value) -> list:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"[{section}] {key} must be a non-empty list, got {value!r}")
    return value


def _expand(grid: dict, seeds: list) -> tuple[Trial, ...]:
    defaults = TrialConfig()
    axes = {
        "hidden_units": _list("grid", "hidden_units",
                              grid.get("hidden_units", [list(defaults.model.hidden_units)])),
        "activation": _list("grid", "activation",
                            grid.get("activation", [defaults.model.activation])),
        **{key: _list("grid", key, grid.get(key, [getattr(defaults, key)]))
           for key in ("optimizer", "learning_rate", "batch_size", "epochs")},
        "seed": seeds,
    }
    for units in axes["hidden_units"]:
        if not isinstance(units, list):
            raise ConfigError(f"[grid] hidden_units must be a list of lists, e.g. [[10], [32]], "
                              f"got {units!r}")
    trials = []
    for index, values in enumerate(itertools.product(*axes.values())):
        point = dict(zip(axes, values))
        model = _section("grid", ModelConfig, hidden_units=tuple(point.pop("hidden_units")),
                         activation=point.pop("activation"))
        config = _section("grid", TrialConfig, model=model, **point)
        trials.append(Trial(_trial_id(index, config), config))
    return tuple(trials)


def _resources(section: dict) -> Resources:
    resources = Resources(**section)
    for key in ("num_cpus", "num_gpus"):
        value = getattr(resources, key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"[resources] {key} must be a number, got {value!r}")
    if resources.num_cpus <= 0:
        raise ConfigError(f"[resources] num_cpus must be > 0, got {resources.num_cpus}")
    if resources.num_gpus < 0:
        raise ConfigError(f"[resources] num_gpus must be >= 0, got {resources.num_gpus}")
    retries = resources.max_retries
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"[resources] max_retries must be an integer >= 0, got {retries!r}")
    size = resources.pack_size
    if size != "auto" and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ConfigError(f'[resources] pack_size must be "auto" or an integer >= 1, got {size!r}')
    return resources


def _section(section: str, factory, **fields):
    try:
        return factory(**fields)
    except ConfigError as error:
        raise ConfigError(f"[{section}] {error}") from None


def _trial_id(index: int, config: TrialConfig) -> str:
    digest = hashlib.sha1(json.dumps(config.as_record(), sort_keys=True).encode()).hexdigest()
    return f"t{index:04d}-{digest[:8]}"
