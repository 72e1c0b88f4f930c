"""A sweep as an Optuna study, so that optuna-dashboard and ``optuna.visualization`` (history,
importance, slice, contour, parallel coordinates) open it.

Each trial becomes a ``FrozenTrial``: its swept hyperparameters as params with the search
space's distributions (``loguniform`` a log ``FloatDistribution``, ``uniform`` a
``FloatDistribution``, ``randint`` an ``IntDistribution``, ``choice`` and grid lists a
``CategoricalDistribution``; hidden layer widths as ``"128x64"``), validation accuracy as its
value (the study maximises it), validation accuracy per epoch as intermediate values, and
``ok``/``pruned``/``failed`` as ``COMPLETE``/``PRUNED``/``FAIL``. The trial id, test accuracy
and kept epoch travel as user attributes. The test set chooses nothing here either.
"""

from __future__ import annotations

from mnist_core.config import hyperparameter_text
from mnist_core.errors import ConfigError
from mnist_core.sweep.config import parse_sweep_config
from mnist_core.sweep.search_space import optuna_space
from mnist_core.sweep.tracking import by_trial


def export_study(text: str, tables: dict, storage_url: str, study_name: str) -> int:
    """Write the sweep (its ``sweep.toml`` text and tables) to a new Optuna study; return
    the number of trials written. ``ConfigError`` when the study exists already."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    existing = optuna.study.get_all_study_names(storage_url) if _has_studies(storage_url) else []
    if study_name in existing:
        raise ConfigError(f"study {study_name!r} exists already in {storage_url}; pass "
                          "another name", key="study_name")
    study = _create_study(storage_url, study_name)
    distributions = search_space(text)
    epochs = by_trial(tables["epochs"].to_pylist())
    trials = [_frozen(row, distributions, epochs.get(row["trial_id"], []))
              for row in tables["trials"].to_pylist()]
    study.add_trials(trials)
    return len(trials)


def search_space(text: str) -> dict:
    """The Optuna distribution of each hyperparameter the sweep varies."""
    config = parse_sweep_config(text)
    return optuna_space(config.space, config.grid_names)


def _frozen(row: dict, distributions: dict, epochs: list[dict]):
    from optuna.trial import TrialState, create_trial

    state = {"ok": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(row["status"],
                                                                           TrialState.FAIL)
    intermediate = {e["epoch"]: e["val_accuracy"] for e in epochs
                    if e["val_accuracy"] is not None}
    return create_trial(
        state=state, value=row["val_accuracy"] if state == TrialState.COMPLETE else None,
        params={name: hyperparameter_text(row[name]) for name in distributions},
        distributions=distributions, intermediate_values=intermediate,
        user_attrs={"trial_id": row["trial_id"], "test_accuracy": row["test_accuracy"],
                    "best_epoch": row["best_epoch"], "error": row["error"]})


def _create_study(storage_url: str, study_name: str):
    """A new study in ``storage_url``; a URL Optuna cannot use is one ``ConfigError``."""
    import optuna

    try:
        return optuna.create_study(storage=storage_url, study_name=study_name,
                                   direction="maximize")
    except Exception as error:  # noqa: BLE001 - sqlalchemy and Optuna raise many types here
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"{storage_url}: not a storage Optuna can use ({reason})",
                          key="storage") from None


def _has_studies(storage_url: str) -> bool:
    import optuna

    try:
        optuna.study.get_all_study_names(storage_url)
    except Exception:  # noqa: BLE001 - a new, empty storage has no tables to list yet
        return False
    return True
