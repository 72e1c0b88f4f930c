"""Refit, as scikit-learn's ``GridSearchCV(refit=True)``: once a sweep has chosen a setting on
validation data, that setting is trained again on training + validation data together, for
the epochs its validation chose, and that model becomes ``best/model.keras``.

Why: the chosen trial learned from the training split only; the validation images, whose job
(choosing) is done, are more data for the final model. Its test metrics are reported beside
the validation-time ones in ``best.json`` (``refit`` and the top-level figures, which stay the
chosen trial's), and the validation-time model stays as ``best/model_validation.keras``. The
test set still chooses nothing. A refit is recorded by trial id, so a resumed sweep refits
again only when its choice changed.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np

from mnist_core import storage
from mnist_core.config import TrialConfig
from mnist_core.data import Splits
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


def view_data(view: Fold | FoldGroups | str | None,
              splits: Splits) -> tuple[Splits, MemberGroups | None]:
    """The data a pack trains on (``view_splits``), and for ``FoldGroups`` the rows of
    training + validation data each group trains and is validated on."""
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


def refit_config(config: TrialConfig, best_epoch: int) -> TrialConfig:
    """The chosen setting for its kept epochs, with nothing left that needs validation."""
    return dataclasses.replace(config, epochs=best_epoch, restore_best=False, patience=0)


def refit_done(folder: str, trial_id: str) -> bool:
    """Whether ``best/`` already holds the refit of ``trial_id``."""
    location = storage.join(folder, "best", "best.json")
    if not storage.exists(location):
        return False
    record = json.loads(storage.read_bytes(location))
    return record.get("refit", {}).get("trial_id") == trial_id


def write_refit(folder: str, trial_id: str, result, train_images: int) -> dict:
    """Put the refit model in ``best/model.keras`` (the validation-time one kept beside it)
    and its figures in ``best.json``; return the refit record."""
    best = storage.join(folder, "best")
    chosen = storage.join(best, "model.keras")
    storage.write_bytes(storage.join(best, "model_validation.keras"),
                        storage.read_bytes(chosen))
    storage.write_bytes(chosen, result.model_bytes)
    refit = {"trial_id": trial_id, "epochs": result.config.epochs,
             "train_images": train_images, "test_accuracy": result.evaluation.accuracy,
             "test_loss": result.evaluation.loss,
             "model": "best/model.keras (validation-time model: best/model_validation.keras)"}
    location = storage.join(best, "best.json")
    record = json.loads(storage.read_bytes(location)) | {"refit": refit}
    storage.write_bytes(location, json.dumps(record, indent=2).encode())
    return refit
