"""One trial, or a pack of them: train from configs on the given data and measure each.

A trial is a pure function of (config, data) returning a ``TrialResult``: it prints nothing and
writes nothing the caller can see. The trained model travels back as the bytes of a ``.keras``
file so that a Ray task can return it and the driver decides whether to keep it. ``run_pack``
does the same for many trials at once (``packed_training``); a member that failed (its loss
stopped being finite) comes back as a ``TrialFailure``, and the others are unaffected.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mnist_core.config import TrialConfig
from mnist_core.data import Splits
from mnist_core.evaluation import Evaluation, evaluate, evaluate_weights
from mnist_core.model import build_model
from mnist_core.packed_training import PACKABLE_OPTIMIZERS, MemberGroups, MemberState, train_pack
from mnist_core.training import EpochCallback, train


@dataclass(frozen=True, eq=False)
class TrialResult:
    """Everything a trial produced: config, size, history, the epoch whose weights it kept
    (1-based), test metrics of those weights, the model file, and how many validation images
    its validation figures stand on."""

    config: TrialConfig
    params: int
    history: dict[str, list[float]]
    best_epoch: int
    evaluation: Evaluation
    train_seconds: float
    model_bytes: bytes
    val_images: int = 0
    state: MemberState | None = None  # to go on from (``packed_training.MemberState``)
    weights: list | None = None  # a pack member's weights, until its model file is made

    @property
    def val_accuracy(self) -> float | None:
        """Validation accuracy of the kept epoch, or None without a validation split."""
        return self.history.get("val_accuracy", [None] * self.best_epoch)[self.best_epoch - 1]

    @property
    def val_loss(self) -> float | None:
        """Validation loss of the kept epoch, or None without a validation split."""
        return self.history.get("val_loss", [None] * self.best_epoch)[self.best_epoch - 1]


@dataclass(frozen=True)
class TrialFailure:
    """A trial that trained but cannot be reported as ok, and why."""

    config: TrialConfig
    error: str


def run_trial(config: TrialConfig, splits: Splits, on_epoch: EpochCallback | None = None,
              epochs: int | None = None) -> TrialResult | TrialFailure:
    """Train per ``config`` on ``splits`` (for ``epochs``, default the config's), evaluate the
    kept epoch's weights on the test set, return the result."""
    fit = train(config, splits, on_epoch, epochs)
    error = non_finite_loss(fit.history)
    if error is not None:
        return TrialFailure(config, error)
    return _result(config, fit.model, fit.history, fit.best_epoch, fit.seconds, splits)


def run_pack(configs: Sequence[TrialConfig], splits: Splits,
             budgets: Sequence[int] | None = None,
             starts: Sequence[MemberState] | None = None,
             groups: MemberGroups | None = None) -> list[TrialResult | TrialFailure]:
    """Train ``configs`` (one pack: they share ``packs.pack_key``) together, each for its
    budget of epochs (default its config's), going on from ``starts`` when given; a result or
    a failure per config, in order, with the state to go on from for a member stopped short
    of its epochs (``groups``: which rows each group of members trains and is validated on,
    ``packed_training.MemberGroups``). A pack's members come back with their weights, not a
    model file: the caller makes the files it keeps (``with_model``). An unpackable
    optimizer, or a pack of one trained to its epochs from the start, trains alone (no
    state)."""
    budgets = list(budgets or [config.epochs for config in configs])
    short = any(budget < config.epochs for config, budget in zip(configs, budgets))
    if groups is None and (configs[0].optimizer not in PACKABLE_OPTIMIZERS or (
            len(configs) == 1 and not starts and not short)):
        return [run_trial(config, splits, epochs=budget)
                for config, budget in zip(configs, budgets)]
    fit = train_pack(configs, splits, budgets, starts, groups)
    val_images = len(groups.val_rows[0]) if groups else len(splits.y_val)
    results = []
    for config, member in zip(configs, fit.members):
        if member.error is not None:
            results.append(TrialFailure(config, member.error))
            continue
        evaluation = evaluate_weights(member.weights, config.model.activation,
                                      splits.pixel_max, splits.x_test, splits.y_test)
        results.append(TrialResult(
            config, sum(int(array.size) for array in member.weights), member.history,
            member.best_epoch, evaluation, fit.seconds / len(configs), b"",
            val_images, member.state, member.weights))
    return results


def with_model(result: TrialResult, splits: Splits) -> TrialResult:
    """``result`` with its model file made from its weights (a pack's member: the model of
    only the members a sweep keeps is written, about 20 ms each saved for the others)."""
    if result.weights is None:
        return result
    model = build_model(result.config.model, splits.input_dim, splits.pixel_max)
    model.set_weights(result.weights)
    return dataclasses.replace(result, model_bytes=model_to_bytes(model), weights=None)


def non_finite_loss(history: dict[str, list[float]]) -> str | None:
    """Why a history cannot be reported (its training loss stopped being finite), or None."""
    for epoch, loss in enumerate(history.get("loss", []), start=1):
        if not math.isfinite(loss):
            return f"loss became {loss} in epoch {epoch}"
    return None


def _result(config: TrialConfig, model, history: dict, best_epoch: int, seconds: float,
            splits: Splits) -> TrialResult:
    return TrialResult(
        config=config,
        params=int(model.count_params()),
        history=history,
        best_epoch=best_epoch,
        evaluation=evaluate(model, splits.x_test, splits.y_test),
        train_seconds=seconds,
        model_bytes=model_to_bytes(model),
        val_images=len(splits.y_val),
    )


def model_to_bytes(model) -> bytes:
    """Serialise a Keras model to the bytes of a ``.keras`` file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.read_bytes()
