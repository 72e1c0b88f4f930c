"""Sampled search spaces: the distributions a sweep's ``[grid]`` may hold beside plain lists.

``learning_rate = {loguniform = [0.01, 3.0]}``, ``{uniform = [a, b]}``, ``{choice = [...]}`` and
``{randint = [a, b]}`` (integers from a up to but not including b, as Ray Tune's ``randint``).
``[sweep] samples = N`` draws N configurations for every grid point (grid × samples, as Ray
Tune's ``param_space`` with ``num_samples``), from one generator seeded by ``[sweep]
search_seed``: the same file always gives the same trials, so ``--resume`` knows what it owes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mnist_core.config import hyperparameter_text
from mnist_core.errors import ConfigError

DISTRIBUTIONS = ("loguniform", "uniform", "choice", "randint")


@dataclass(frozen=True)
class Distribution:
    """One sampled hyperparameter: its kind and its bounds (or choices)."""

    kind: str
    values: tuple

    def draw(self, rng: np.random.Generator):
        """One value, drawn with ``rng``."""
        low, high = (self.values + (None, None))[:2]
        if self.kind == "loguniform":
            return float(np.exp(rng.uniform(np.log(low), np.log(high))))
        if self.kind == "uniform":
            return float(rng.uniform(low, high))
        if self.kind == "randint":
            return int(rng.integers(low, high))
        choice = self.values[int(rng.integers(len(self.values)))]
        return list(choice) if isinstance(choice, tuple) else choice

    def optuna(self):
        """This distribution as Optuna's (choices as ``config.hyperparameter_text`` shows
        them, ``"128x64"`` for hidden layer widths)."""
        from optuna.distributions import FloatDistribution, IntDistribution

        if self.kind in ("loguniform", "uniform"):
            return FloatDistribution(*self.values, log=self.kind == "loguniform")
        if self.kind == "randint":
            return IntDistribution(self.values[0], self.values[1] - 1)
        return optuna_choices(self.values)


def optuna_choices(values) -> object:
    """A list of values as Optuna's ``CategoricalDistribution`` of their text."""
    from optuna.distributions import CategoricalDistribution

    return CategoricalDistribution([hyperparameter_text(value) for value in values])


def optuna_space(space, names: list[str]) -> dict:
    """Optuna's distribution of each of ``names`` in ``space`` (a ``config.SearchSpace``):
    the one translation both TPE (``proposals``) and the export (``optuna_export``) use."""
    return {name: space.distributions[name].optuna() if name in space.distributions
            else optuna_choices(space.seeds if name == "seed" else space.axes[name])
            for name in names}


def from_optuna(space, name: str, param):
    """The ``[grid]`` value that Optuna's ``param`` for ``name`` stands for: the inverse of
    ``optuna_space`` (a choice comes back from its text)."""
    spec = space.distributions.get(name)
    if spec is not None and spec.kind != "choice":
        return param
    values = spec.values if spec is not None else space.axes[name]
    value = {hyperparameter_text(value): value for value in values}[param]
    return list(value) if spec is not None and isinstance(value, tuple) else value


def parse_distribution(key: str, spec: dict) -> Distribution:
    """Validate ``{kind = [...]}`` for ``[grid] key``; ``ConfigError`` names what is wrong."""
    if len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise ConfigError(f"[grid] {key}: unknown distribution {spec!r}; use one of "
                          + ", ".join(f"{{{kind} = [...]}}" for kind in DISTRIBUTIONS))
    kind, values = next(iter(spec.items()))
    if not isinstance(values, list) or not values:
        raise ConfigError(f"[grid] {key}: {kind} needs a non-empty list, got {values!r}")
    if kind == "choice":
        return Distribution(kind, tuple(tuple(v) if isinstance(v, list) else v for v in values))
    return Distribution(kind, _bounds(key, kind, values))


def _bounds(key: str, kind: str, values: list) -> tuple:
    numeric = int if kind == "randint" else (int, float)
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, numeric)
                               for v in values):
        wanted = "two integers" if kind == "randint" else "two numbers"
        raise ConfigError(f"[grid] {key}: {kind} takes [low, high], {wanted}, got {values!r}")
    low, high = values
    if not all(math.isfinite(value) for value in values):
        raise ConfigError(f"[grid] {key}: {kind} range [{low}, {high}] must be finite")
    if low >= high:
        raise ConfigError(f"[grid] {key}: {kind} range [{low}, {high}] is empty or inverted")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"[grid] {key}: loguniform range [{low}, {high}] must be above 0")
    return (low, high)


def extremes(distribution: Distribution) -> list:
    """The values at the edges of what ``draw`` can return: a range's low end and the
    highest value below its open high end (``randint``: high - 1), every choice."""
    if distribution.kind == "choice":
        return [list(value) if isinstance(value, tuple) else value
                for value in distribution.values]
    low, high = distribution.values
    if distribution.kind == "randint":
        return [low, high - 1]
    return [float(low), float(np.nextafter(high, low))]


def draw_samples(distributions: dict[str, Distribution], count: int,
                 rng: np.random.Generator) -> dict[str, np.ndarray | list]:
    """``count`` draws of every distribution, one column per key: sample after sample, keys in
    sorted order within a sample, so the draws are stable. Numeric columns are numpy arrays (a
    million samples hold 8 MB a key, not a million dicts); ``choice`` columns are lists."""
    keys = sorted(distributions)
    columns = {key: _column(distributions[key], count) for key in keys}
    for index in range(count):
        for key in keys:
            columns[key][index] = distributions[key].draw(rng)
    return columns


def sample_values(columns: dict[str, np.ndarray | list], index: int) -> dict:
    """The drawn values of sample ``index`` (``draw_samples``' columns), as plain Python."""
    return {key: values[index].item() if isinstance(values, np.ndarray) else values[index]
            for key, values in columns.items()}


def _column(distribution: Distribution, count: int) -> np.ndarray | list:
    if distribution.kind == "choice":
        return [None] * count
    return np.empty(count, np.int64 if distribution.kind == "randint" else np.float64)
