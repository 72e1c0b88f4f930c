"""Grouping a sweep's trials into packs: trials trained together as one vectorized graph.

Trials share a pack only when they share ``pack_key``: architecture, activation, optimizer,
batch size and seed. Why these, measured on this project's machine (docs/benchmarks.md): a
shared data order lets the first layer be one wide matmul, about 1.7× the throughput of a data
order per member (a gathered (K, batch, 784) tensor) at K = 32, and the seed decides the data
order; different architectures, activations, optimizers or batch sizes would need separate
graphs or step counts inside one pack, which costs what packing saves. Everything numeric
(learning rate, momentum, epochs, …) varies freely inside a pack. A refit's packs
(``restart_packs``) hold one setting from several seeds: a group per seed, each with its own
weights and data order, side by side (``packed_training.MemberGroups``).

``pack_size = "auto"`` keeps every worker slot busy first, then packs as many as fit: at most
``CPU_PACK_LIMIT`` members on a CPU worker (beyond that a pack's weights and activations fall
out of cache and throughput drops: 1.8M trial-samples/s at 128, 1.5M at 512) and
``GPU_PACK_LIMIT`` on a GPU worker, where wider packs keep the device busy.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mnist_core.config import TrialConfig
from mnist_core.data import Splits
from mnist_core.packed_training import PACKABLE_OPTIMIZERS, MemberState
from mnist_core.sweep.recording import MemberRecord, SweepRows
from mnist_core.sweep.trials import Trial, TrialGrid
from mnist_core.sweep.views import AllData, Restarts
from mnist_core.trial import TrialResult

CPU_PACK_LIMIT = 128
GPU_PACK_LIMIT = 4096
# A pack holds at most this many parameters in all (about 3.2 GB of weights, gradients and
# optimizer state): wide networks are split into smaller packs instead of killing a worker.
MAX_PACK_PARAMS = 200_000_000
PACK_KEY_FIELDS = ("hidden_units", "activation", "optimizer", "batch_size", "seed")


class PackSink(Protocol):
    """Where a finished pack goes: a recorder, a rung's staging store, the refit's models."""

    def add_pack(self, pack_id: str, members: list[MemberRecord], placement: dict) -> None:
        """Take a finished pack's members (``placement``: where it ran)."""


class PackRunner(Protocol):
    """What trains packs for the steps after the first (halving's rungs, TPE's rounds,
    the refit): the driver's run, with its retries, slots and logs."""

    @property
    def splits(self) -> Splits:
        """The sweep's data."""

    def largest(self, trials: int) -> int:
        """The most members a pack of a stage of ``trials`` trials may hold."""

    def train(self, trials: Iterable[Trial], budgets: dict[str, int] | None, sink: PackSink,
              starts: dict | None = None) -> int:
        """Train ``trials`` in packs (``budgets``: epochs each trains now; ``starts``: the
        states they go on from), each finished pack to ``sink``; the packs trained."""

    def run_packs(self, packs: Iterable[Pack], sink: PackSink) -> int:
        """Train ``packs`` as they are, each finished one to ``sink``; how many."""


class PackFailed(Exception):
    """A pack's training raised; the message names the original error's type."""


@dataclass(frozen=True)
class Pack:
    """Trials trained together in one Ray task, with an id unique across runs of a sweep, and
    (successive halving) how many epochs each member trains now."""

    pack_id: str
    trials: Sequence[Trial]  # a tuple, or a grid's ``TrialColumns`` (made on the worker)
    budgets: tuple[int, ...] | None = None
    keep_all_models: bool = False  # else only the pack's best member sends its model back
    view: AllData | Restarts | None = None  # its data, when not the sweep's (``views``)
    starts: tuple[MemberState, ...] | None = None  # each member's state to go on from
    details_to: str | None = None  # the sweep folder its worker writes detail parts to
    rows: SweepRows | None = None  # set: its worker builds its report tables (``worker``)

    @property
    def epochs_done(self) -> int:
        """The epochs its members trained before this pack (0 unless they go on)."""
        return self.starts[0].epoch if self.starts else 0

    @property
    def configs(self) -> list[TrialConfig]:
        """The members' trial configs, in order."""
        return [trial.config for trial in self.trials]


def pack_key(config: TrialConfig) -> str:
    """What members of one pack must share (see the module docstring): ``PACK_KEY_FIELDS``
    (the one list ``grid_packs`` groups a grid's trials by too)."""
    return json.dumps([list(value) if isinstance(value, tuple) else value for value in (
        getattr(config.model, field, None) or getattr(config, field)
        for field in PACK_KEY_FIELDS)])


def pack_size_for(pending: int, slots: int, pack_size: int | str, on_gpu: bool) -> int:
    """The most members per pack: the configured integer, or for ``"auto"`` enough packs for
    every slot, capped by the CPU or GPU limit."""
    if pack_size != "auto":
        return int(pack_size)
    limit = GPU_PACK_LIMIT if on_gpu else CPU_PACK_LIMIT
    return max(1, min(limit, math.ceil(pending / max(slots, 1))))


def make_packs(trials: list[Trial], largest: int, budgets: dict[str, int] | None = None,
               keep_all_models: bool = False,
               starts: dict[str, MemberState] | None = None) -> list[Pack]:
    """Split ``trials`` into packs of at most ``largest`` members sharing a ``pack_key`` (and
    the epoch they go on from), sizes balanced within each key; unpackable optimizers get
    packs of one. ``budgets``: epochs each trial trains now (by trial id), when not its
    config's; ``starts``: the state each trial goes on from (by trial id; the others start
    from scratch)."""
    starts = starts or {}
    groups: dict[tuple, list[Trial]] = {}
    for trial in trials:
        start = starts.get(trial.trial_id)
        key = (pack_key(trial.config), start.epoch if start else 0)
        groups.setdefault(key, []).append(trial)
    run = uuid.uuid4().hex[:6]
    packs = []
    for members in groups.values():
        count = math.ceil(len(members) / _member_limit(members[0].config, largest))
        for index in range(count):
            chunk = tuple(members[index::count])
            budget = tuple(budgets[t.trial_id] for t in chunk) if budgets else None
            start = tuple(starts[t.trial_id] for t in chunk) if chunk[0].trial_id in starts \
                else None
            packs.append(Pack(f"{run}-p{len(packs):05d}", chunk, budget, keep_all_models,
                              starts=start))
    return packs


def restart_packs(trials: list[Trial], largest: int) -> list[Pack]:
    """Packs for one setting from several seeds (``trials``, the refit's) on training +
    validation data: a group per seed (``Restarts``), as many seeds per pack as fit in
    ``largest`` members, balanced; a pack per seed where a pack holds one (an unpackable
    optimizer). Every member's model comes back."""
    limit = min(_member_limit(trials[0].config, largest), len(trials))
    run = uuid.uuid4().hex[:6]
    if limit < 2:
        return [Pack(f"{run}-r{index:05d}", (trial,), keep_all_models=True, view=AllData())
                for index, trial in enumerate(trials)]
    count = math.ceil(len(trials) / limit)
    chunks = [tuple(trials[index::count]) for index in range(count)]
    return [Pack(f"{run}-r{index:05d}", chunk, keep_all_models=True,
                 view=Restarts(len(chunk))) for index, chunk in enumerate(chunks)]


def grid_packs(grid: TrialGrid, positions: np.ndarray, largest: int,
               keep_all_models: bool = False, details_to: str | None = None,
               rows: SweepRows | None = None) -> list[Pack]:
    """``make_packs`` for the trials of ``grid`` at ``positions``, without making them: the
    same packs, grouped by ``grid.codes`` of ``PACK_KEY_FIELDS``, each carrying its members as
    columns (``TrialColumns``) for its worker to make; ``rows``: the worker builds the pack's
    report tables too. The driver's work is a few array operations per pack."""
    if not len(positions):
        return []
    codes = grid.codes(positions, PACK_KEY_FIELDS)
    _, first = np.unique(codes, return_index=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))  # groups in order of first appearance
    member_rank = rank[codes]
    order = np.argsort(member_rank, kind="stable")
    groups = np.split(positions[order], np.cumsum(np.bincount(member_rank))[:-1])
    run = uuid.uuid4().hex[:6]
    packs = []
    for members in groups:
        count = math.ceil(len(members) / _member_limit(grid[int(members[0])].config, largest))
        for index in range(count):
            packs.append(Pack(f"{run}-p{len(packs):05d}", grid.columns(members[index::count]),
                              keep_all_models=keep_all_models, details_to=details_to,
                              rows=rows))
    return packs


def _member_limit(config: TrialConfig, largest: int) -> int:
    """The most members a pack of trials like ``config`` may have: one for an unpackable
    optimizer; never more parameters than ``MAX_PACK_PARAMS``."""
    limit = largest if config.optimizer in PACKABLE_OPTIMIZERS else 1
    return max(1, min(limit, MAX_PACK_PARAMS // config.model.max_params))


def pack_progress(pack: Pack, results: list) -> tuple[int, float | None]:
    """The epochs a pack's ok members trained, and their best validation accuracy."""
    ok = [result for result in results if isinstance(result, TrialResult)]
    return (sum(len(result.history.get("loss", [])) - pack.epochs_done for result in ok),
            max((result.val_accuracy for result in ok if result.val_accuracy is not None),
                default=None))
