"""Refit, as scikit-learn's ``GridSearchCV(refit=True)``: once a sweep has chosen a setting on
validation data, that setting is trained again on training + validation data together, for
the epochs its validation chose, and that model becomes ``best/model.keras``.

Why: the chosen trial learned from the training split only; the validation images, whose job
(choosing) is done, are more data for the final model. Its test metrics are reported beside
the validation-time ones in ``best.json`` (``refit`` and the top-level figures, which stay the
chosen trial's), and the validation-time model stays as ``best/model_validation.keras``. The
test set still chooses nothing. A refit is recorded by trial id, so a resumed sweep refits
again only when its choice changed.

With ``[selection] refit_seeds = N`` the setting is trained from N seeds (its own and the
next ones), a group per seed in one pack, and the model with the lowest training loss is
kept, as scikit-learn's ``KMeans`` keeps the best of its ``n_init`` runs by inertia: this
small network lands in minima of different quality from different starting weights, and the
training loss tells them apart without any held-out data (``keep_restart``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from mnist_core import best
from mnist_core.config import TrialConfig
from mnist_core.data import Splits
from mnist_core.html import text
from mnist_core.packed_training import MemberGroups


@dataclass(frozen=True)
class Fold:
    """Fold ``index`` of ``count`` of training + validation data (stratified by label, dealt
    by a generator seeded with ``seed``): its images validate, the others train."""

    index: int
    count: int
    seed: int


@dataclass(frozen=True)
class FoldGroups:
    """Folds ``indices`` of ``count`` (dealt like ``Fold``'s) in one pack: its members, in
    order, form ``len(indices)`` equal groups, group ``g`` trained on fold ``indices[g]``.
    The folds must hold as many images each (``fold_sizes``)."""

    indices: tuple[int, ...]
    count: int
    seed: int

    def member_folds(self, members: int) -> list[Fold]:
        """The fold of each of a pack's ``members``, in order."""
        per_group = members // len(self.indices)
        return [Fold(self.indices[position // per_group], self.count, self.seed)
                for position in range(members)]


ALL_DATA = "all"  # a pack's view: training + validation data as one training set (refit)


@dataclass(frozen=True)
class Restarts:
    """Training + validation data as one training set (``ALL_DATA``) for ``count`` groups of
    a pack's members, each group its own seed's: the refit's seeds in one pack."""

    count: int


def view_data(view: Fold | FoldGroups | Restarts | str | None,
              splits: Splits) -> tuple[Splits, MemberGroups | None]:
    """The data a pack trains on (``view_splits``), and for ``FoldGroups`` and ``Restarts``
    the rows of training + validation data each group trains and is validated on."""
    if isinstance(view, Restarts):
        pooled = refit_splits(splits)
        rows = np.arange(len(pooled.y_train))
        return pooled, MemberGroups((rows,) * view.count, (rows[:0],) * view.count)
    if not isinstance(view, FoldGroups):
        return view_splits(view, splits), None
    pooled = refit_splits(splits)
    folds = fold_of_each(pooled.y_train, view.count, view.seed)
    return pooled, MemberGroups(tuple(np.flatnonzero(folds != index) for index in view.indices),
                                tuple(np.flatnonzero(folds == index) for index in view.indices))


def fold_sizes(splits: Splits, count: int, seed: int) -> np.ndarray:
    """How many images each of ``count`` folds of training + validation data holds."""
    labels = np.concatenate([splits.y_train, splits.y_val])
    return np.bincount(fold_of_each(labels, count, seed), minlength=count)


def view_splits(view: Fold | str | None, splits: Splits) -> Splits:
    """The data a pack trains on: the sweep's splits (``None``), training + validation
    (``ALL_DATA``), or a cross-validation fold of them."""
    if view is None:
        return splits
    pooled = refit_splits(splits)
    if view == ALL_DATA:
        return pooled
    held_out = fold_of_each(pooled.y_train, view.count, view.seed) == view.index
    return dataclasses.replace(
        pooled, x_train=pooled.x_train[~held_out], y_train=pooled.y_train[~held_out],
        x_val=pooled.x_train[held_out], y_val=pooled.y_train[held_out])


def fold_of_each(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Each image's fold: images shuffled, ordered by label, then dealt in turn, so every
    fold holds each class in the same share."""
    shuffled = np.random.default_rng(seed).permutation(len(labels))
    by_label = shuffled[np.argsort(labels[shuffled], kind="stable")]
    folds = np.empty(len(labels), np.int64)
    folds[by_label] = np.arange(len(labels)) % count
    return folds


def refit_splits(splits: Splits) -> Splits:
    """Training and validation data as one training set; no validation split."""
    return dataclasses.replace(
        splits, x_train=np.concatenate([splits.x_train, splits.x_val]),
        y_train=np.concatenate([splits.y_train, splits.y_val]),
        x_val=splits.x_val[:0], y_val=splits.y_val[:0])


def refit_configs(config: TrialConfig, best_epoch: int, seeds: int) -> list[TrialConfig]:
    """The chosen setting for its kept epochs, with nothing left that needs validation,
    from its own seed and the ``seeds - 1`` after it."""
    refit = dataclasses.replace(config, epochs=best_epoch, restore_best=False, patience=0)
    return [dataclasses.replace(refit, seed=config.seed + offset) for offset in range(seeds)]


def refit_done(folder: str, trial_id: str, seeds: int) -> bool:
    """Whether ``best/`` already holds the refit of ``trial_id`` from ``seeds`` seeds."""
    record = best.read_record(folder)
    refit = {} if record is None else record.get("refit", {})
    tried = refit.get("seeds", [None])
    return refit.get("trial_id") == trial_id and isinstance(tried, list) and len(tried) == seeds


def keep_restart(losses: list[float | None]) -> int | None:
    """Which of the refit's seeds to keep: the one whose last epoch's training loss (as
    Keras reports it, the L2 penalty included) is lowest; None when every one failed."""
    finite = [(loss, index) for index, loss in enumerate(losses)
              if loss is not None and np.isfinite(loss)]
    return min(finite)[1] if finite else None


def describe_kept_seed(refit: dict) -> str:
    """Which of a refit's seeds was kept (its record's ``seed``), where it tried several;
    empty where it tried one."""
    tried = refit.get("seeds", [])
    if len(tried) < 2:
        return ""
    return text("seed {0} of {1}, kept for its lowest training loss {2:.4f}",
                refit.get("seed"), len(tried), refit.get("train_loss"))


def write_refit(folder: str, trial_id: str, result, train_images: int,
                seeds: list[dict]) -> dict:
    """Put the refit model (``result``: the kept one of ``seeds``, each one's seed, training
    loss and test accuracy) in ``best/model.keras`` (the validation-time one kept beside it)
    and its figures in ``best.json``; return the refit record."""
    best.write_refit_model(folder, result.model_bytes)
    refit = {"trial_id": trial_id, "epochs": result.config.epochs,
             "train_images": train_images, "test_accuracy": result.evaluation.accuracy,
             "test_loss": result.evaluation.loss, "seed": result.config.seed,
             "train_loss": result.history["loss"][-1],
             "kept_by": "the lowest training loss" if len(seeds) > 1 else "its only seed",
             "seeds": seeds,
             "model": "best/model.keras (validation-time model: best/model_validation.keras)"}
    best.update_record(folder, refit=refit)
    return refit
