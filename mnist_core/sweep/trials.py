"""A sweep's trials: each one point of the grid for one seed, with a stable id.

The cartesian product of every ``[grid]`` list, times ``[sweep] samples`` draws of the
``[grid]`` distributions (``search_space``), times every seed, is the set of trials
(``TrialGrid``, made on demand: a million-trial sweep holds its draws, not a million configs).
Each trial gets a stable id from its position and a hash of its config, so a resumed sweep
knows exactly which trials it still owes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mnist_core.config import ModelConfig, TrialConfig, hyperparameter_fields
from mnist_core.errors import ConfigError
from mnist_core.sweep.search_space import draw_samples, sample_values


@dataclass(frozen=True)
class SearchSpace:
    """What the trials are drawn from: the grid's plain lists, its distributions, the seeds,
    the number of samples and the search seed."""

    axes: dict
    distributions: dict
    seeds: tuple
    samples: int
    search_seed: int

    @property
    def trial_count(self) -> int:
        """Grid combinations × samples × seeds."""
        return math.prod(len(values) for values in self.axes.values()) * self.samples * len(
            self.seeds)


@dataclass(frozen=True)
class Trial:
    """One point of the grid for one seed, with its stable id."""

    trial_id: str
    config: TrialConfig


@dataclass(frozen=True, eq=False)
class TrialColumns(Sequence):
    """Some trials of a grid as columns: their positions, each hyperparameter's values and
    their seeds (``TrialGrid.columns``). What a pack carries to its worker, a few bytes a
    trial; the trials themselves (validated configs, ids) are made where they are used, on
    the worker, not by the driver (about 70 µs a trial)."""

    positions: np.ndarray
    values: dict  # hyperparameter -> a list or numpy array, one value per trial
    seeds: list

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index):
        return self.trials[index]

    @functools.cached_property
    def trials(self) -> list[Trial]:
        """The trials, made on first use."""
        return [make_trial(position, {key: _plain(column[at]) for key, column in
                                      self.values.items()}, self.seeds[at])
                for at, position in enumerate(self.positions.tolist())]

    def __reduce__(self):  # the columns cross to a worker, never the trials made from them
        return TrialColumns, (self.positions, self.values, self.seeds)


class TrialGrid(Sequence):
    """A grid sweep's trials, made when asked for: trial ``index`` is (sample, grid point,
    seed) in ``itertools.product`` order, built from the grid's lists and the samples' drawn
    columns. A million-trial sweep holds its draws (a few arrays), not a million configs."""

    def __init__(self, axes: dict[str, list], space: SearchSpace):
        self.axes, self.space, self.seeds = axes, space, list(space.seeds)
        self.sizes = [len(values) for values in axes.values()]
        self.points = math.prod(self.sizes)
        self.count = space.trial_count

    @functools.cached_property
    def samples(self) -> dict:
        """The drawn columns (``search_space.draw_samples``), drawn when first needed: a page
        reading the config draws nothing."""
        space = self.space
        if not space.distributions:
            return {}
        return draw_samples(space.distributions, space.samples,
                            np.random.default_rng(space.search_seed))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[position] for position in range(*index.indices(self.count))]
        if not -self.count <= index < self.count:
            raise IndexError(f"trial {index} of {self.count}")
        index %= self.count
        rest, seed = divmod(index, len(self.seeds))
        sample, point = divmod(rest, self.points)
        values = {}
        for key, size in reversed(list(zip(self.axes, self.sizes))):  # the last axis varies fastest
            point, position = divmod(point, size)
            values[key] = self.axes[key][position]
        return make_trial(index, values | sample_values(self.samples, sample), self.seeds[seed])

    def columns(self, positions: np.ndarray) -> TrialColumns:
        """The trials at ``positions`` as columns, without making them."""
        sample, points, seeds = self._split(positions)
        values = {key: [self.axes[key][at] for at in points[key].tolist()] for key in self.axes}
        for key, column in self.samples.items():
            values[key] = column[sample] if isinstance(column, np.ndarray) else [
                column[at] for at in sample.tolist()]
        return TrialColumns(np.asarray(positions, np.int64), values,
                            [self.seeds[at] for at in seeds.tolist()])

    def codes(self, positions: np.ndarray, keys: Sequence[str]) -> np.ndarray:
        """A code per trial at ``positions``, equal for two trials exactly when their values
        of ``keys`` (hyperparameters, ``seed`` among them) are, found without making them."""
        sample, points, seeds = self._split(positions)
        columns = []
        for key in keys:
            if key == "seed":
                columns.append(_value_codes(self.seeds)[seeds])
            elif key in self.axes:
                columns.append(_value_codes(self.axes[key])[points[key]])
            else:
                column = self.samples[key]
                drawn = column[sample].tolist() if isinstance(column, np.ndarray) else [
                    column[at] for at in sample.tolist()]
                columns.append(_value_codes(drawn))
        _, codes = np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)
        return codes.reshape(-1)

    def _split(self, positions: np.ndarray) -> tuple[np.ndarray, dict, np.ndarray]:
        """Each position's sample, position on every axis, and seed (``__getitem__``'s
        order, for arrays of positions)."""
        rest, seeds = np.divmod(np.asarray(positions, np.int64), len(self.seeds))
        sample, point = np.divmod(rest, self.points)
        points = {}
        for key, size in reversed(list(zip(self.axes, self.sizes))):
            point, points[key] = np.divmod(point, size)
        return sample, points, seeds

    def validate(self) -> None:
        """Build every grid point (for each seed) with the samples that could break it: the
        first, each numeric column's lowest and highest draw, each choice's first draw. A
        value no trial may take is a ``ConfigError`` now, not in the middle of the sweep."""
        extreme_samples = {0}
        for values in self.samples.values():
            if isinstance(values, np.ndarray):
                extreme_samples |= {int(values.argmin()), int(values.argmax())}
            else:
                extreme_samples |= {values.index(choice) for choice in
                            {json.dumps(value): value for value in values}.values()}
        seeds = len(self.seeds)
        for sample in sorted(extreme_samples):
            for offset in range(self.points * seeds):
                self[sample * self.points * seeds + offset]

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(other) == self.count and all(
            mine == theirs for mine, theirs in zip(self, other))

    __hash__ = None


def make_trial(index: int, values: dict, seed: int) -> Trial:
    """The trial at position ``index`` with these hyperparameter values (``[grid]`` keys)."""
    values = dict(values)
    model = in_section("grid", ModelConfig, hidden_units=_units(values.pop("hidden_units")),
                     activation=values.pop("activation"))
    config = in_section("grid", TrialConfig, model=model, seed=seed, **values)
    return Trial(_trial_id(index, config), config)


def trial_positions(trial_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The positions trial ids start with (``t0042-…`` is 42), as an array."""
    heads = pc.list_element(pc.split_pattern(trial_ids, "-", max_splits=1), 0)
    return pc.cast(pc.utf8_slice_codeunits(heads, 1), pa.int64()).to_numpy()


def _plain(value):
    """A drawn value as plain Python (a numpy scalar's ``item``)."""
    return value.item() if isinstance(value, np.generic) else value


def _value_codes(values: list) -> np.ndarray:
    """An integer per value, equal for equal values (lists included)."""
    seen: dict[str, int] = {}
    return np.array([seen.setdefault(json.dumps(value), len(seen)) for value in values],
                    np.int64)


def _units(value) -> tuple:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"[grid] hidden_units must be lists of widths, got {value!r}")
    return tuple(value)


def in_section(section: str, factory, **fields):
    try:
        return factory(**fields)
    except ConfigError as error:
        raise ConfigError(f"[{section}] {error}") from None


def _trial_id(index: int, config: TrialConfig) -> str:
    record, defaults = config.as_record(), _DEFAULTS
    hashed = {key: value for key, value in record.items()
              if key not in _LATER_FIELDS or value != defaults[key]}
    digest = hashlib.sha1(json.dumps(hashed, sort_keys=True).encode()).hexdigest()
    return f"t{index:04d}-{digest[:8]}"


# Fields added after the first release: left out of a trial's id hash while at their default,
# so sweeps started before they existed resume with the same trial ids.
_LATER_FIELDS = tuple(item.name for item in hyperparameter_fields()
                      if item.metadata["added_later"])


_DEFAULTS = TrialConfig().as_record()
