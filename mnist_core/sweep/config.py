"""Sweep configuration: a TOML file validated into frozen dataclasses.

The trials it makes are ``sweep.trials``' (grid × samples × seeds, each with a stable id).
``[search] sampler = "tpe"`` proposes the samples in rounds from
the results so far instead (``Search``; the trials are then known only as they are proposed).
``[scheduler] kind = "halving"`` turns on successive halving (``Halving``); ``[selection]``
says how the sweep's model is chosen (``Selection``). Reading the file is the only side
effect here.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mnist_core.config import (
    HYPERPARAMETERS,
    DataConfig,
    TrialConfig,
    check_choice,
    check_flag,
    check_int,
    check_range,
    check_seed,
    check_type,
)
from mnist_core.errors import ConfigError, DataNotFoundError
from mnist_core.sweep.checks import (
    check_extremes,
    check_samples,
    check_trial_count,
    check_work,
)
from mnist_core.sweep.search_space import (
    Distribution,
    parse_distribution,
)
from mnist_core.sweep.trials import SearchSpace, Trial, TrialGrid, in_section

GRID_KEYS = tuple(name for name in HYPERPARAMETERS if name != "seed")  # seeds: [sweep] seeds
# A search's refit trains its choice from this many seeds and keeps the lowest training loss
# (bench/selection.py on Fashion-MNIST: docs/results.md).
SEARCH_REFIT_SEEDS = 8
MAX_TRIALS = 10_000_000  # [sweep] max_trials' default: counted before anything is expanded
# [sweep]'s keys and their defaults (``samples`` has none: a grid of distributions needs it).
SWEEP_DEFAULTS = {"name": "sweep", "dataset": "mnist", "data_path": "",
                  "validation_split": 0.1, "seeds": [0], "samples": None, "search_seed": 0,
                  "max_trials": MAX_TRIALS, "keep_models": "best"}
# What every key of the sweep TOML means, table by table: the one list of keys (an unknown one
# is refused) and the source of docs/reference.md. [grid]'s keys are the hyperparameters,
# each with its own help (``config.hyperparameter``).
KEY_HELP = {
    "sweep": {
        "name": "letters, digits, '.', '_' or '-': the sweep folder is <name>-<start time>",
        "dataset": "mnist, fashion_mnist or digits (scikit-learn's, bundled: no download)",
        "data_path": "a local copy of the data: a Keras .npz or a folder of the four IDX files",
        "validation_split": "fraction of the training set held out to choose on (> 0; the "
                            "test set never chooses)",
        "seeds": "every trial runs once per seed (weights, shuffling, validation split)",
        "samples": "draws of the [grid] distributions (required when [grid] has any)",
        "search_seed": "seeds the draws: the same file always gives the same trials",
        "max_trials": "a sweep of more trials (refit seeds included) is refused "
                      "before any is made",
        "keep_models": 'best: only the chosen model (best/); all: every trial\'s, in '
                       "models/<trial_id>.keras",
    },
    "grid": {},
    "resources": {
        "num_cpus": "CPUs each pack's Ray task asks for",
        "num_gpus": "GPUs each pack's Ray task asks for (0.25 shares one GPU between four)",
        "max_retries": "resubmissions of a pack whose worker process or node died",
        "pack_size": 'trials trained together as one graph: "auto", or 1 for each alone',
    },
    "scheduler": {
        "kind": "none: every trial trains to its end; halving: successive halving",
        "eta": "halving: the best 1/eta of each rung train on",
        "min_epochs": "halving: the first rung's epochs (then ×eta each rung)",
    },
    "tracking": {
        "mlflow": 'an MLflow tracking URI; "default": <out>/mlflow.db',
        "experiment": "the MLflow experiment",
        "tensorboard": "a folder for TensorBoard event files (<folder>/<sweep_id>/)",
    },
    "selection": {
        "refit": "train the chosen setting again on training + validation data (default: "
                 "on for searches, i.e. a [grid] with distributions)",
        "refit_seeds": f"the refit from this many seeds, keeping the lowest training loss "
                       f"(default: {SEARCH_REFIT_SEEDS} for searches, else 1)",
        "by": "trial: the best trial; seed_mean: the best mean over [sweep] seeds",
    },
    "search": {
        "sampler": "random: every sample drawn at once; tpe: Optuna's TPE proposes them in "
                   "rounds",
        "round_size": "tpe: proposals per round, each round told the results before it",
    },
}
SECTIONS = {section: set(GRID_KEYS if section == "grid" else keys)
            for section, keys in KEY_HELP.items()}
SCHEDULERS = ("none", "halving")
KEEP_MODELS = ("best", "all")
SELECT_BY = ("trial", "seed_mean")
SAMPLERS = ("random", "tpe")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# A sweep's id: its name, the start time and, when two started in the same second, a suffix.
SWEEP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


@dataclass(frozen=True)
class Halving:
    """Successive halving: trials are compared on validation accuracy after ``min_epochs``,
    ``min_epochs·eta``, ``min_epochs·eta²``, … epochs (the rungs), and only the best
    ``1/eta`` of each rung train on; the rest are recorded ``pruned``."""

    eta: int = 3
    min_epochs: int = 1

    def __post_init__(self) -> None:
        check_int("eta", self.eta, 2)
        check_int("min_epochs", self.min_epochs, 1)

    def rungs(self, max_epochs: int) -> list[int]:
        """The epoch counts at which trials are compared, then the last (the full budget)."""
        rungs, epochs = [], self.min_epochs
        while epochs < max_epochs:
            rungs.append(epochs)
            epochs *= self.eta
        return [*rungs, max_epochs]


@dataclass(frozen=True)
class Resources:
    """What each pack's Ray task asks for, how many trials a pack may hold (``"auto"`` or a
    positive integer; 1 trains every trial alone), and how often a dead worker's pack is
    retried."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 2
    pack_size: int | str = "auto"

    def __post_init__(self) -> None:
        check_range("num_cpus", self.num_cpus, 0.0, None, lower_open=True)
        check_range("num_gpus", self.num_gpus, 0.0, None)
        check_int("max_retries", self.max_retries, 0)
        if self.pack_size != "auto":
            try:
                check_int("pack_size", self.pack_size, 1)
            except ConfigError:
                raise ConfigError(f'must be "auto" or an integer >= 1, got {self.pack_size!r}',
                                  key="pack_size") from None


@dataclass(frozen=True)
class Tracking:
    """Where a sweep is tracked: an MLflow tracking URI and experiment, a TensorBoard folder."""

    mlflow: str = ""
    experiment: str = "mnist-ray"
    tensorboard: str = ""

    def __post_init__(self) -> None:
        for name in ("mlflow", "experiment", "tensorboard"):
            check_type(name, getattr(self, name), str)
        if not self.experiment:
            raise ConfigError("must be a non-empty string", key="experiment")

    @property
    def enabled(self) -> bool:
        """Whether any tracking is configured."""
        return bool(self.mlflow or self.tensorboard)


@dataclass(frozen=True)
class Selection:
    """How the sweep's model is chosen, on validation data only: by the best trial, or by the
    best mean over seeds (``by = "seed_mean"``); with ``refit``, the chosen setting is trained
    again on training + validation, from ``refit_seeds`` seeds, keeping the model with the
    lowest training loss."""

    refit: bool = False
    refit_seeds: int = 1
    by: str = "trial"

    def __post_init__(self) -> None:
        check_flag("refit", self.refit)
        check_int("refit_seeds", self.refit_seeds, 1)
        check_choice("by", self.by, SELECT_BY)


@dataclass(frozen=True)
class Search:
    """How samples are drawn: all at once at random, or by TPE (Optuna's ask-and-tell) in
    rounds of ``round_size`` proposals, each round told the results of the ones before."""

    sampler: str = "random"
    round_size: int = 256

    def __post_init__(self) -> None:
        check_choice("sampler", self.sampler, SAMPLERS)
        check_int("round_size", self.round_size, 1)


@dataclass(frozen=True)
class SweepConfig:
    """A whole sweep: its name, the data, the trial configs and the resources per trial."""

    name: str
    data: DataConfig
    trials: Sequence[Trial]  # a TrialGrid, or () when TPE proposes them
    resources: Resources
    source_text: str
    halving: Halving | None = None
    log_scaled: frozenset[str] = frozenset()
    tracking: Tracking = Tracking()
    keep_models: str = "best"
    selection: Selection = Selection()
    search: Search = Search()
    space: SearchSpace | None = None

    def __post_init__(self) -> None:
        check_choice("keep_models", self.keep_models, KEEP_MODELS)

    @property
    def trial_count(self) -> int:
        """How many trials the sweep runs (proposed ones included, with TPE)."""
        if self.proposes:  # every list becomes a choice: one trial per sample and seed
            return self.space.samples * len(self.space.seeds)
        return len(self.trials)

    @property
    def proposes(self) -> bool:
        """Whether trials are proposed round by round (TPE) rather than all known now."""
        return self.search.sampler == "tpe"

    @property
    def grid_names(self) -> list[str]:
        """Hyperparameters that take more than one value in this sweep (the plotted ones)."""
        if self.proposes:
            space = self.space
            varied = {*space.distributions, *(key for key, values in space.axes.items()
                                              if len(values) > 1)}
            return [name for name in HYPERPARAMETERS
                    if name in varied or (name == "seed" and len(space.seeds) > 1)]
        space = self.space
        varied = {*(key for key, values in space.axes.items()
                    if len({json.dumps(value) for value in values}) > 1),
                  *(space.distributions if space.samples > 1 else ())}
        return [name for name in HYPERPARAMETERS
                if name in varied or (name == "seed" and len(set(space.seeds)) > 1)]


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


def parse_sweep_config(text: str, expand: bool = True) -> SweepConfig:
    """Validate TOML text into a ``SweepConfig``; with ``expand`` false the trials are not
    drawn or checked until used (for readers of a sweep that ran, such as its page)."""
    document = tomllib.loads(text)
    _check_keys(document)
    sweep, grid = document.get("sweep", {}), document.get("grid", {})
    name = sweep.get("name", SWEEP_DEFAULTS["name"])
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"[sweep] name must be letters, digits, '.', '_' or '-', got {name!r}")
    data = in_section("sweep", DataConfig, dataset=sweep.get("dataset", SWEEP_DEFAULTS["dataset"]),
                    data_path=sweep.get("data_path", SWEEP_DEFAULTS["data_path"]),
                    validation_split=sweep.get("validation_split",
                                               SWEEP_DEFAULTS["validation_split"]))
    if data.validation_split <= 0:
        raise ConfigError("[sweep] validation_split must be > 0: the best trial is chosen on "
                          "validation accuracy, never on the test set")
    seeds = _list("sweep", "seeds", sweep.get("seeds", SWEEP_DEFAULTS["seeds"]))
    for seed in seeds:
        in_section("sweep", check_seed, name="seeds", value=seed)
    axes, distributions = _split_grid(grid)
    check_trial_count(sweep.get("max_trials", SWEEP_DEFAULTS["max_trials"]),
                      sweep.get("samples", 1), axes, distributions, seeds)
    check_extremes(axes, distributions, seeds)
    halving = _halving(document.get("scheduler", {}))
    search = _search(document.get("search", {}), distributions, halving)
    space = SearchSpace(axes, distributions, tuple(seeds),
                        sweep.get("samples", 1) if distributions else 1,
                        sweep.get("search_seed", SWEEP_DEFAULTS["search_seed"]))
    check_samples(sweep.get("samples"), sweep.get("search_seed", SWEEP_DEFAULTS["search_seed"]),
                  distributions)
    trials = () if search.sampler == "tpe" else TrialGrid(axes, space)  # TPE proposes later
    if trials and expand:
        trials.validate()
    log_scaled = frozenset(key for key, spec in distributions.items() if spec.kind == "loguniform")
    config = SweepConfig(name, data, trials,
                         in_section("resources", Resources, **document.get("resources", {})),
                         text, halving, log_scaled,
                         in_section("tracking", Tracking, **document.get("tracking", {})),
                         sweep.get("keep_models", SWEEP_DEFAULTS["keep_models"]),
                         _selection(document.get("selection", {}), bool(distributions), seeds),
                         search, space)
    selection = config.selection
    check_work(config.trial_count, selection.refit_seeds if selection.refit else 0,
               sweep.get("max_trials", SWEEP_DEFAULTS["max_trials"]))
    return config


def _check_keys(document: dict) -> None:
    for section, values in document.items():
        if section not in SECTIONS:
            raise ConfigError(f"unknown section [{section}]; expected "
                              + ", ".join(f"[{name}]" for name in SECTIONS))
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table")
        unknown = sorted(set(values) - SECTIONS[section])
        if section == "selection" and {"finalists", "folds"} & set(unknown):
            raise ConfigError("[selection] finalists and folds were removed: cross-validated "
                              "finalists chose no better than one split with a refit from "
                              "several seeds (docs/results.md); delete them")
        if unknown:
            raise ConfigError(f"[{section}] unknown key(s) {', '.join(unknown)}; expected "
                              + ", ".join(sorted(SECTIONS[section])))


def _list(section: str, key: str, value) -> list:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"[{section}] {key} must be a non-empty list, got {value!r}")
    return value


def _split_grid(grid: dict) -> tuple[dict[str, list], dict[str, Distribution]]:
    """The grid's plain lists (axes, defaults filled in) and its distributions."""
    defaults = TrialConfig().as_record()
    axes, distributions = {}, {}
    for key in GRID_KEYS:
        value = grid.get(key, [defaults[key]])
        if isinstance(value, dict):
            distributions[key] = parse_distribution(key, value)
        else:
            axes[key] = _list("grid", key, value)
    for units in axes.get("hidden_units", []):
        if not isinstance(units, list):
            raise ConfigError(f"[grid] hidden_units must be a list of lists, e.g. [[10], [32]], "
                              f"got {units!r}")
    return axes, distributions


def _selection(section: dict, is_search: bool, seeds: list) -> Selection:
    """``[selection]``: refit on by default for searches (a grid with distributions), from
    ``SEARCH_REFIT_SEEDS`` seeds unless the section says otherwise."""
    refits = section.get("refit", is_search)
    seeds_tried = SEARCH_REFIT_SEEDS if is_search and refits is True else Selection.refit_seeds
    selection = in_section("selection", Selection,
                         **{"refit": is_search, "refit_seeds": seeds_tried, **section})
    if "refit_seeds" in section and not selection.refit:
        raise ConfigError("[selection] refit_seeds applies only with refit = true (the seeds "
                          "the chosen setting is trained again from)")
    if selection.by == "seed_mean" and len(seeds) < 2:
        raise ConfigError('[selection] by = "seed_mean" needs at least two [sweep] seeds, '
                          f"got {seeds!r}")
    return selection


def _search(section: dict, distributions: dict, halving: Halving | None) -> Search:
    """``[search]``: TPE needs distributions to propose from and rounds of its own."""
    search = in_section("search", Search, **section)
    if search.sampler == "random" and "round_size" in section:
        raise ConfigError('[search] round_size applies only with sampler = "tpe"')
    if search.sampler == "tpe" and not distributions:
        raise ConfigError('[search] sampler = "tpe" needs at least one distribution in [grid], '
                          "e.g. learning_rate = {loguniform = [0.01, 3.0]}")
    if search.sampler == "tpe" and halving is not None:
        raise ConfigError('[search] sampler = "tpe" does not apply with [scheduler] kind = '
                          '"halving": TPE proposes from finished trials; use one or the other')
    return search


def _halving(section: dict) -> Halving | None:
    kind = section.get("kind", "none")
    if kind not in SCHEDULERS:
        raise ConfigError(f"[scheduler] unknown kind {kind!r}; choose one of "
                          + ", ".join(SCHEDULERS))
    if kind == "none":
        return None
    return in_section("scheduler", Halving,
                    **{key: value for key, value in section.items() if key != "kind"})


