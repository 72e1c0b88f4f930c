"""Ranking a sweep's settings on validation data only (pure: nothing here trains).

A *setting* is a trial's hyperparameters without its seed: a sweep with several ``seeds``
trains each setting once per seed. ``[selection] by = "trial"`` ranks settings by their best
trial (``reports.ranked_trials``); ``by = "seed_mean"`` by their mean validation accuracy over
the seeds (``seed_means``), so one lucky seed does not decide. The test set never decides: its
figures are only reported. What trains the chosen setting again is ``refit``.
"""

from __future__ import annotations

import json
import statistics

from mnist_core.config import HYPERPARAMETERS
from mnist_core.html import text
from mnist_core.reports import ranked_trials

SETTING_NAMES = tuple(name for name in HYPERPARAMETERS if name != "seed")


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


def describe_choice(choice: dict) -> str:
    """One line on how the setting was chosen, for the console."""
    how = choice.get("chosen_by")
    if "error" in choice:
        return text("{error}; chosen by validation accuracy: {trial_id}", **choice)
    if how == "cross_validation":  # a sweep made before cross-validated finalists went
        return text("chosen by cross-validation of finalists: {trial_id}", **choice)
    if how == "seed_mean":
        return text("chosen by mean over seeds: {0[trial_id]}'s setting, validation "
                    "{0[val_accuracy_mean]:.4f} ± {0[val_accuracy_std]:.4f} over {0[seeds]} "
                    "seeds", choice["seed_mean"])
    return text("chosen by validation accuracy: {0}", choice.get("trial_id"))
