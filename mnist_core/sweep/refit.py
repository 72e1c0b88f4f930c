"""After training: the sweep's setting chosen (``ranking``), its model put in ``best/``, and
refit, as scikit-learn's ``GridSearchCV(refit=True)``.

Refit: once a sweep has chosen a setting on validation data, that setting is trained again on
training + validation data together, for the epochs its validation chose, and that model
becomes ``best/model.keras``. The chosen trial learned from the training split only; the
validation images, whose job (choosing) is done, are more data for the final model. Its test
metrics are reported beside the validation-time ones in ``best.json`` (``refit``; the
top-level figures stay the chosen trial's), and the validation-time model stays as
``best/model_validation.keras``. The test set still chooses nothing.

With ``[selection] refit_seeds = N`` the setting is trained from N seeds (its own and the
next ones), a group per seed in one pack, and the model with the lowest training loss is
kept, as scikit-learn's ``KMeans`` keeps the best of its ``n_init`` runs by inertia: this
small network lands in minima of different quality from different starting weights, and the
training loss tells them apart without any held-out data (``kept_seed``).

These steps train through the driver's pack runner (``packs.PackRunner``), so they retry dead
workers and log like the sweep. Each is resumable: ``best.json`` says whose model ``best/``
holds and whose refit, so a resumed sweep trains again only what is missing.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mnist_core import best
from mnist_core.config import TrialConfig
from mnist_core.errors import recording
from mnist_core.html import text
from mnist_core.sweep.config import Selection, SweepConfig
from mnist_core.sweep.packs import Pack, PackRunner, restart_packs
from mnist_core.sweep.ranking import ranked_settings, seed_means
from mnist_core.sweep.recording import BestCheckpoint, MemberRecord, PartStore
from mnist_core.sweep.trials import Trial


def choose(config: SweepConfig, store: PartStore, checkpoint: BestCheckpoint, run: PackRunner,
           say=lambda line: None) -> tuple[dict, dict | None]:
    """Choose the setting (``[selection] by``) among the trials ``store`` recorded, make its
    trial the one in ``best/`` and, with ``[selection] refit``, refit it (the two trainings at
    once where both are needed: a slot each); return how it was chosen (what ``best.json``
    records) and the refit's record. ``say``: where a line announcing each step that trains
    goes."""
    selection = config.selection
    rows = _candidates(config, store)
    ranked = ranked_settings(rows, selection.by)
    choice = {"chosen_by": "validation", "trial_id": ranked[0]["trial_id"]}
    if selection.by == "seed_mean":
        choice |= {"chosen_by": "seed_mean", "seed_mean": seed_means(rows)[0]}
    return _fit_chosen(checkpoint, choice, ranked[0], selection, run, say)


def _fit_chosen(checkpoint: BestCheckpoint, choice: dict, chosen: dict, selection: Selection,
                run: PackRunner, say) -> tuple[dict, dict | None]:
    """Put ``chosen`` in ``best/`` and, with ``selection.refit``, refit it: both trained at
    once where both train. ``choice`` as it then stands (the best trial by validation, and
    why, if training the chosen one again failed) and the refit's record."""
    retrain = _retrain_pack(checkpoint, chosen, say)
    refits = _refit_packs(checkpoint, chosen, selection.refit_seeds, run, say) \
        if retrain and selection.refit else []
    members = run_all(run, [retrain, *refits] if retrain else refits)
    error = None if retrain is None else _keep(checkpoint, chosen, members[retrain.pack_id][0])
    if error is not None:  # best/ keeps the best trial by validation, and says why
        choice |= {"chosen_by": "validation", "trial_id": checkpoint.best["trial_id"],
                   "error": f"training {chosen['trial_id']} again for best/ failed: {error}"}
    if not selection.refit:
        return choice, None
    if refits and error is None:
        return choice, _record_refit(checkpoint, refits, members, run)
    return choice, refit_choice(checkpoint, selection.refit_seeds, run, say)


def _candidates(config: SweepConfig, store: PartStore) -> list[dict]:
    """The rows the choice needs: every ok trial for seed means, else the best one, so a
    million-trial sweep reads a handful."""
    if config.selection.by == "seed_mean":
        return [row for row in store.rows() if row["status"] == "ok"]
    return store.ranked_rows(1)


def _retrain_pack(checkpoint: BestCheckpoint, chosen: dict, say) -> Pack | None:
    """What puts the chosen trial's model in ``best/``: nothing when the one kept while
    training is that trial's (it is then ``checkpoint.best``), else the trial trained again
    exactly as before (same seed, same data), a pack of one."""
    if best.chosen_trial(checkpoint.folder) == chosen["trial_id"]:
        checkpoint.best = chosen
        return None
    trial = Trial(chosen["trial_id"], TrialConfig.from_record(chosen))
    say(f"training the chosen trial {trial.trial_id} again for best/ (its model was not kept)")
    return Pack(f"chosen-{trial.trial_id}", (trial,), keep_all_models=True)


def _keep(checkpoint: BestCheckpoint, chosen: dict, member: MemberRecord) -> str | None:
    """Put ``member``, the chosen trial trained again, in ``best/``; why it failed, if it did."""
    if member.result is None:
        return member.error
    checkpoint.keep(chosen, member.result)
    return None


def refit_choice(checkpoint: BestCheckpoint, seeds: int, run: PackRunner,
                 say=lambda line: None) -> dict | None:
    """Train the setting in ``best/`` again on training + validation data for the epochs its
    validation chose, from ``seeds`` seeds; return its record (None when ``best/`` already
    holds it, an ``error`` when the refit failed: the validation-time model then stays)."""
    packs = _refit_packs(checkpoint, checkpoint.best, seeds, run, say)
    if not packs:
        return None
    return _record_refit(checkpoint, packs, run_all(run, packs), run)


def _refit_packs(checkpoint: BestCheckpoint, chosen: dict, seeds: int, run: PackRunner,
                 say) -> list[Pack]:
    """The refit of ``chosen`` from ``seeds`` seeds (``packs.restart_packs``); none when
    ``best/`` already holds it."""
    if refit_done(checkpoint.folder, chosen["trial_id"], seeds):
        return []
    configs = refit_configs(TrialConfig.from_record(chosen), int(chosen["best_epoch"]), seeds)
    from_seeds = f", from {seeds} seeds" if seeds > 1 else ""
    say(f"refitting {chosen['trial_id']} on training + validation data ({configs[0].epochs} "
        f"epochs{from_seeds})")
    return restart_packs([Trial(chosen["trial_id"], config) for config in configs],
                         run.largest(seeds))


def _record_refit(checkpoint: BestCheckpoint, packs: list[Pack],
                  members: dict[str, list[MemberRecord]], run: PackRunner) -> dict:
    """Put the refit model (of the refit ``packs``' ``members``, one per seed: the one
    ``kept_seed`` keeps) in ``best/``; its record (an ``error`` if every seed failed)."""
    members = sorted((member for pack in packs for member in members[pack.pack_id]),
                     key=lambda member: member.config_record["seed"])
    losses = [member.result.history["loss"][-1] if member.result else None
              for member in members]
    kept = kept_seed(losses)
    if kept is None:
        return {"trial_id": members[0].trial_id, "error": members[0].error}
    seeds = [{"seed": member.config_record["seed"], "train_loss": loss,
              "test_accuracy": member.result.evaluation.accuracy if member.result else None,
              "error": member.error} for member, loss in zip(members, losses)]
    images = len(run.splits.y_train) + len(run.splits.y_val)
    with recording(checkpoint.folder):
        return write_refit(checkpoint.folder, members[kept].trial_id, members[kept].result,
                           images, seeds)


class _Collected:
    """A sink that keeps the members of the packs handed to it, by pack id."""

    def __init__(self):
        self.members: dict[str, list[MemberRecord]] = {}

    def add_pack(self, pack_id: str, members: list[MemberRecord], placement: dict) -> None:
        self.members[pack_id] = members


def run_all(run: PackRunner, packs: list[Pack]) -> dict[str, list[MemberRecord]]:
    """Train ``packs`` through ``run``, at once; each one's member records, by pack id."""
    sink = _Collected()
    if packs:
        run.run_packs(packs, sink)
    return sink.members


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


def kept_seed(losses: list[float | None]) -> int | None:
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
