"""A sweep config's values checked before any work: counts, ranges no trial may take, the
work a refit adds, and what only the data can tell (``check_fits_data``)."""

from __future__ import annotations

import math

from mnist_core.config import check_int, check_seed
from mnist_core.errors import ConfigError
from mnist_core.sweep.search_space import Distribution, extremes
from mnist_core.sweep.trials import SearchSpace, in_section, make_trial


def check_trial_count(limit, samples, axes: dict[str, list],
                      distributions: dict[str, Distribution], seeds: list) -> None:
    """Refuse a sweep of more than ``[sweep] max_trials`` trials before drawing or expanding
    any of them (grid combinations × samples × seeds)."""
    in_section("sweep", check_int, name="max_trials", value=limit, lowest=1)
    samples = samples if distributions else 1
    in_section("sweep", check_int, name="samples", value=samples, lowest=1)
    combinations = math.prod(len(values) for values in axes.values())
    count = combinations * samples * len(seeds)
    if count > limit:
        raise ConfigError(
            f"[sweep] {count:,} trials ({combinations:,} grid combinations × {samples:,} "
            f"samples × {len(seeds)} seeds) exceed max_trials = {limit:,}; raise [sweep] "
            "max_trials to run them")


def check_samples(count, seed, distributions: dict[str, Distribution]) -> None:
    """``[sweep] samples`` and ``search_seed`` fit the grid's distributions."""
    if count is None:
        if distributions:
            raise ConfigError(f"[sweep] samples is required: [grid] {', '.join(distributions)} "
                              "are distributions to draw from")
        return
    in_section("sweep", check_int, name="samples", value=count, lowest=1)
    if not distributions:
        raise ConfigError("[sweep] samples needs at least one distribution in [grid], "
                          "e.g. learning_rate = {loguniform = [0.01, 3.0]}")
    in_section("sweep", check_seed, name="search_seed", value=seed)


def check_extremes(axes: dict[str, list], distributions: dict[str, Distribution],
                   seeds: list) -> None:
    """Build a trial at every edge of every distribution (each with the other keys' first
    values): a range a sampler may draw from but no trial may take (a negative learning rate)
    is refused now, whichever sampler draws it — TPE's draws come mid-sweep."""
    first = {key: values[0] for key, values in axes.items()}
    first |= {key: extremes(spec)[0] for key, spec in distributions.items()}
    for key, spec in distributions.items():
        for value in extremes(spec):
            make_trial(0, first | {key: value}, seeds[0])


def check_work(trial_count: int, extra: int, max_trials: int) -> None:
    """The trials a sweep trains beyond its own (``extra``: a refit's seeds) count against
    ``[sweep] max_trials`` too."""
    if trial_count + extra > max_trials:
        raise ConfigError(f"[selection] {trial_count:,} trials and {extra:,} more for "
                          f"the refit's seeds exceed [sweep] max_trials = {max_trials:,}; "
                          "lower refit_seeds, or raise max_trials")


def check_fits_data(space: SearchSpace, train_images: int) -> None:
    """What only the data can tell, checked before any work: no batch larger than the
    training set."""
    sizes = list(space.axes.get("batch_size", []))
    spec = space.distributions.get("batch_size")
    sizes += extremes(spec) if spec is not None else []
    too_big = [size for size in sizes if size > train_images]
    if too_big:
        raise ConfigError(f"[grid] batch_size {max(too_big):,} is larger than the "
                          f"{train_images:,} training images")
