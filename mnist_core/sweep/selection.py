"""Choosing a sweep's setting on validation data only, and comparing the finalists again.

A *setting* is a trial's hyperparameters without its seed: a sweep with several ``seeds``
trains each setting once per seed. ``[selection] by = "trial"`` ranks settings by their best
trial (``reports.ranked_trials``); ``by = "seed_mean"`` by their mean validation accuracy over
the seeds (``seed_means``), so one lucky seed does not decide. With ``finalists = N`` the N
best settings are then trained again on ``folds`` folds of training + validation data (each
fold's images validate the model trained on the others) and the highest mean fold accuracy
wins (``rank_finalists``). The test set never decides: its figures are only reported.
"""

from __future__ import annotations

import json
import statistics

import pyarrow as pa

from mnist_core.config import HYPERPARAMETERS
from mnist_core.html import text
from mnist_core.reports import ranked_trials

SETTING_NAMES = tuple(name for name in HYPERPARAMETERS if name != "seed")
FOLDS_SCHEMA = pa.schema([
    pa.field("trial_id", pa.string()), pa.field("fold", pa.int32()),
    pa.field("folds", pa.int32()), pa.field("status", pa.string()),
    pa.field("error", pa.string()), pa.field("best_epoch", pa.int32()),
    pa.field("val_accuracy", pa.float64()), pa.field("val_loss", pa.float64()),
    pa.field("val_images", pa.int32()),
])


def setting_key(row: dict) -> str:
    """What identifies a trial's setting: every hyperparameter but the seed."""
    return json.dumps([row[name] for name in SETTING_NAMES])


def seed_means(rows: list[dict]) -> list[dict]:
    """One record per setting of the ok rows, best mean validation accuracy first (ties: the
    lower mean validation loss, then the better best trial): its best trial's id, its
    hyperparameters, the number of seeds, and the mean and standard deviation of validation
    and test accuracy."""
    groups: dict[str, list[dict]] = {}
    for row in ranked_trials(rows):
        groups.setdefault(setting_key(row), []).append(row)
    records = [_seed_record(members, position)
               for position, members in enumerate(groups.values())]
    records.sort(key=lambda record: (-record["val_accuracy_mean"], record["val_loss_mean"],
                                     record["position"]))
    return [{key: value for key, value in record.items() if key != "position"}
            for record in records]


def _seed_record(members: list[dict], position: int) -> dict:
    def spread(name: str) -> tuple[float, float]:
        values = [row[name] for row in members if row[name] is not None]
        if not values:
            return float("nan"), float("nan")
        return statistics.fmean(values), statistics.pstdev(values)

    val_mean, val_std = spread("val_accuracy")
    test_mean, test_std = spread("test_accuracy")
    loss_mean, _ = spread("val_loss")
    return {"trial_id": members[0]["trial_id"],
            **{name: members[0][name] for name in SETTING_NAMES}, "seeds": len(members),
            "val_accuracy_mean": val_mean, "val_accuracy_std": val_std,
            "val_loss_mean": loss_mean if loss_mean == loss_mean else float("inf"),
            "test_accuracy_mean": test_mean, "test_accuracy_std": test_std,
            "position": position}


def ranked_settings(rows: list[dict], by: str) -> list[dict]:
    """One row per setting (its best trial), best setting first by the ``by`` rule."""
    if by == "seed_mean":
        best_of = {row["trial_id"]: row for row in ranked_trials(rows)}
        return [best_of[record["trial_id"]] for record in seed_means(rows)]
    seen: set[str] = set()
    ranked = []
    for row in ranked_trials(rows):
        key = setting_key(row)
        if key not in seen:
            seen.add(key)
            ranked.append(row)
    return ranked


def rank_finalists(fold_rows: list[dict], finalists: list[dict]) -> list[dict]:
    """Each finalist's fold scores, mean and spread, best mean fold accuracy first (ties: the
    lower mean fold loss, then its rank before the folds). A finalist with a failed fold
    ranks after every finalist without one."""
    by_trial: dict[str, list[dict]] = {}
    for row in sorted(fold_rows, key=lambda row: row["fold"]):
        by_trial.setdefault(row["trial_id"], []).append(row)
    records = []
    for rank, row in enumerate(finalists, 1):
        folds = by_trial.get(row["trial_id"], [])
        scores = [fold["val_accuracy"] for fold in folds if fold["status"] == "ok"]
        losses = [fold["val_loss"] for fold in folds if fold["status"] == "ok"]
        records.append({
            "trial_id": row["trial_id"], "rank_by_validation": rank,
            "val_accuracy": row["val_accuracy"], "fold_accuracies": scores,
            "mean": statistics.fmean(scores) if scores else None,
            "std": statistics.pstdev(scores) if scores else None,
            "mean_loss": statistics.fmean(losses) if losses else None,
            "fold_epochs": [fold["best_epoch"] for fold in folds if fold["status"] == "ok"],
            "failed_folds": len(folds) - len(scores)})
    return sorted(records, key=lambda record: (
        not record["fold_accuracies"] or record["failed_folds"] > 0,
        -(record["mean"] or 0.0), record["mean_loss"] or float("inf"),
        record["rank_by_validation"]))


def refit_epochs(chosen: dict, finalist: dict | None) -> int:
    """The epochs a refit trains for: the mean of the folds' kept epochs for a cross-validated
    choice (each fold trained on nearly as much data as the refit), else the chosen trial's."""
    if finalist is not None and finalist["fold_epochs"]:
        return max(1, round(statistics.fmean(finalist["fold_epochs"])))
    return int(chosen["best_epoch"])


def describe_choice(choice: dict) -> str:
    """One line on how the setting was chosen, for the console."""
    how = choice.get("chosen_by")
    if "error" in choice:
        return text("{error}; chosen by validation accuracy: {trial_id}", **choice)
    if how == "cross_validation" and choice.get("finalists"):
        return text("chosen by {0}-fold cross-validation of {1} finalists: {2[trial_id]}, mean "
                    "fold accuracy {2[mean]:.4f} ± {2[std]:.4f} (rank {2[rank_by_validation]} "
                    "on the one validation split)", choice.get("folds"),
                    len(choice["finalists"]), choice["finalists"][0])
    if how == "seed_mean":
        return text("chosen by mean over seeds: {0[trial_id]}'s setting, validation "
                    "{0[val_accuracy_mean]:.4f} ± {0[val_accuracy_std]:.4f} over {0[seeds]} "
                    "seeds", choice["seed_mean"])
    return text("chosen by validation accuracy: {0}", choice.get("trial_id"))
