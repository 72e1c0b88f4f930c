"""After training: the sweep's setting chosen (``selection``), compared again by cross-validation
when ``[selection] finalists`` asks, its model put in ``best/``, and refit.

These steps train through the driver's pack runner (``run``: ``packs``, ``run_packs``,
``splits``), so they retry dead workers and log like the sweep. Each step is resumable: the
folds already scored are kept in ``finalists.parquet`` and its parts (``finalists/``), and
``best.json`` says whose model ``best/`` holds and whose refit, so a resumed sweep trains
again only what is missing.
"""

from __future__ import annotations

import pyarrow as pa

from mnist_core import best, storage
from mnist_core.config import TrialConfig
from mnist_core.errors import recording
from mnist_core.sweep.config import Selection, SweepConfig
from mnist_core.sweep.packs import Pack, PackRunner, fold_packs, pack_key, restart_packs
from mnist_core.sweep.recording import BestKeeper, MemberRecord, PartStore
from mnist_core.sweep.refit import (
    Fold,
    FoldGroups,
    fold_sizes,
    keep_restart,
    refit_configs,
    refit_done,
    write_refit,
)
from mnist_core.sweep.selection import (
    FOLDS_SCHEMA,
    rank_finalists,
    ranked_settings,
    refit_epochs,
    seed_means,
)
from mnist_core.sweep.trials import Trial


def choose(config: SweepConfig, store: PartStore, keeper: BestKeeper, run: PackRunner,
           say=lambda line: None) -> tuple[dict, dict | None]:
    """Choose the setting (``[selection] by``, then finalists by cross-validation) among the
    trials ``store`` recorded, make its trial the one in ``best/`` and, with ``[selection]
    refit``, refit it (the two trainings at once where both are needed: a slot each); return
    how it was chosen (what ``best.json`` records) and the refit's record
    (``refit_choice``). ``say``: where a line announcing each step that trains goes."""
    selection = config.selection
    rows = _candidates(config, store)
    ranked = ranked_settings(rows, selection.by)
    choice = {"chosen_by": "validation", "trial_id": ranked[0]["trial_id"]}
    if selection.by == "seed_mean":
        choice |= {"chosen_by": "seed_mean", "seed_mean": seed_means(rows)[0]}
    if selection.cross_validates:
        finalists = ranked[:selection.finalists]
        say(f"cross-validating the {len(finalists)} best settings on {selection.folds} folds "
            "of training + validation data")
        fold_rows = cross_validate(config, keeper.folder, finalists, run)
        records = rank_finalists(fold_rows, finalists)
        if records[0]["mean"] is not None and not records[0]["failed_folds"]:
            choice |= {"chosen_by": "cross_validation", "trial_id": records[0]["trial_id"]}
        choice |= {"folds": selection.folds, "finalists": records}
    chosen = next(row for row in rows if row["trial_id"] == choice["trial_id"])
    return _settle(keeper, choice, chosen, selection, run, say)


def _settle(keeper: BestKeeper, choice: dict, chosen: dict, selection: Selection, run: PackRunner,
            say) -> tuple[dict, dict | None]:
    """Put ``chosen`` in ``best/`` and, with ``selection.refit``, refit it: both trained at
    once where both train. ``choice`` as it then stands (the best trial by validation, and
    why, if training the chosen one again failed) and the refit's record."""
    hold = _hold_pack(keeper, chosen, say)
    refits = _refit_packs(keeper, chosen, choice, selection.refit_seeds, run, say) \
        if hold and selection.refit else []
    members = run_all(run, [hold, *refits] if hold else refits)
    error = None if hold is None else _keep(keeper, chosen, members[hold.pack_id][0])
    if error is not None:  # best/ keeps the best trial by validation, and says why
        choice |= {"chosen_by": "validation", "trial_id": keeper.best["trial_id"],
                   "error": f"training {chosen['trial_id']} again for best/ failed: {error}"}
    if not selection.refit:
        return choice, None
    if refits and error is None:
        return choice, _record_refit(keeper, refits, members, run)
    return choice, refit_choice(keeper, choice, selection.refit_seeds, run, say)


def _candidates(config: SweepConfig, store: PartStore) -> list[dict]:
    """The rows the choice needs: every ok trial for seed means, else the best few (enough
    for the finalists' settings over every seed), so a million-trial sweep reads a handful."""
    if config.selection.by == "seed_mean":
        return [row for row in store.rows() if row["status"] == "ok"]
    seeds = len(config.space.seeds) if config.space else 1
    return store.ranked_rows(max(1, config.selection.finalists) * seeds)


def _hold_pack(keeper: BestKeeper, chosen: dict, say) -> Pack | None:
    """What puts the chosen trial's model in ``best/``: nothing when the one kept while
    training is that trial's (it is then ``keeper.best``), else the trial trained again
    exactly as before (same seed, same data), a pack of one."""
    if best.chosen_trial(keeper.folder) == chosen["trial_id"]:
        keeper.best = chosen
        return None
    trial = Trial(chosen["trial_id"], TrialConfig.from_record(chosen))
    say(f"training the chosen trial {trial.trial_id} again for best/ (its model was not kept)")
    return Pack(f"chosen-{trial.trial_id}", (trial,), keep_all_models=True)


def _keep(keeper: BestKeeper, chosen: dict, member: MemberRecord) -> str | None:
    """Put ``member``, the chosen trial trained again, in ``best/``; why it failed, if it did."""
    if member.result is None:
        return member.error
    keeper.keep(chosen, member.result)
    return None


def refit_choice(keeper: BestKeeper, choice: dict, seeds: int, run: PackRunner,
                 say=lambda line: None) -> dict | None:
    """Train the setting in ``best/`` again on training + validation data (``refit``) for the
    epochs its validation chose, from ``seeds`` seeds; return its record (None when ``best/``
    already holds it, an ``error`` when the refit failed: the validation-time model then
    stays)."""
    packs = _refit_packs(keeper, keeper.best, choice, seeds, run, say)
    if not packs:
        return None
    return _record_refit(keeper, packs, run_all(run, packs), run)


def _refit_packs(keeper: BestKeeper, chosen: dict, choice: dict, seeds: int, run: PackRunner,
                 say) -> list[Pack]:
    """The refit of ``chosen`` from ``seeds`` seeds (``packs.restart_packs``); none when
    ``best/`` already holds it."""
    if refit_done(keeper.folder, chosen["trial_id"], seeds):
        return []
    finalist = next((record for record in choice.get("finalists", [])
                     if record["trial_id"] == chosen["trial_id"]), None)
    configs = refit_configs(TrialConfig.from_record(chosen), refit_epochs(chosen, finalist),
                            seeds)
    from_seeds = f", from {seeds} seeds" if seeds > 1 else ""
    say(f"refitting {chosen['trial_id']} on training + validation data ({configs[0].epochs} "
        f"epochs{from_seeds})")
    return restart_packs([Trial(chosen["trial_id"], config) for config in configs],
                         run.largest(seeds))


def _record_refit(keeper: BestKeeper, packs: list[Pack],
                  members: dict[str, list[MemberRecord]], run: PackRunner) -> dict:
    """Put the refit model (of the refit ``packs``' ``members``, one per seed: the one
    ``keep_restart`` keeps) in ``best/``; its record (an ``error`` if every seed failed)."""
    members = sorted((member for pack in packs for member in members[pack.pack_id]),
                     key=lambda member: member.config_record["seed"])
    losses = [member.result.history["loss"][-1] if member.result else None
              for member in members]
    kept = keep_restart(losses)
    if kept is None:
        return {"trial_id": members[0].trial_id, "error": members[0].error}
    seeds = [{"seed": member.config_record["seed"], "train_loss": loss,
              "test_accuracy": member.result.evaluation.accuracy if member.result else None,
              "error": member.error} for member, loss in zip(members, losses)]
    images = len(run.splits.y_train) + len(run.splits.y_val)
    with recording(keeper.folder):
        return write_refit(keeper.folder, members[kept].trial_id, members[kept].result,
                           images, seeds)


def cross_validate(config: SweepConfig, folder: str, finalists: list[dict],
                   run: PackRunner) -> list[dict]:
    """Every finalist's score on every fold, all at once; folds already scored (a resumed
    sweep) are read back, not trained again."""
    store = _FoldStore(folder)
    done = {(row["trial_id"], row["fold"]) for row in store.rows}
    packs = _cross_validation_packs(config, finalists, done, run)
    store.folds = {pack.pack_id: _member_folds(pack) for pack in packs}
    run.run_packs(packs, store)
    store.compact()
    wanted = {row["trial_id"] for row in finalists}
    return [row for row in store.rows if row["trial_id"] in wanted]


def _cross_validation_packs(config: SweepConfig, finalists: list[dict], done: set,
                            run: PackRunner) -> list[Pack]:
    """The packs that score every finalist on every fold not ``done``. Folds of as many
    images that still need the same finalists train in the same packs, each finalist once per
    fold (``packs.fold_packs``): 6 finalists on 5 folds with 2 slots are 2 packs of 15
    members, not 10 packs of 3."""
    count = config.selection.folds
    seed = config.space.search_seed if config.space else 0
    sizes = fold_sizes(run.splits, count, seed)
    trials = {row["trial_id"]: Trial(row["trial_id"], TrialConfig.from_record(row))
              for row in finalists}
    wanted: dict[tuple, list[int]] = {}  # (pack key, fold size, trial ids) -> fold indices
    for index in range(count):
        needed: dict[str, list[str]] = {}
        for trial in trials.values():
            if (trial.trial_id, index) not in done:
                needed.setdefault(pack_key(trial.config), []).append(trial.trial_id)
        for key, ids in needed.items():
            wanted.setdefault((key, int(sizes[index]), tuple(ids)), []).append(index)
    largest = run.largest(sum(len(ids) * len(folds) for (*_, ids), folds in wanted.items()))
    return [pack for (*_, ids), folds in wanted.items()
            for pack in fold_packs([trials[trial_id] for trial_id in ids],
                                   FoldGroups(tuple(folds), count, seed), largest)]


def _member_folds(pack: Pack) -> list[Fold]:
    """The fold each member of a cross-validation pack is scored on."""
    if isinstance(pack.view, FoldGroups):
        return pack.view.member_folds(len(pack.trials))
    return [pack.view] * len(pack.trials)


class _FoldStore:
    """Fold scores: ``finalists.parquet`` and one part per finished pack under
    ``finalists/`` (the sink ``run_packs`` hands finished packs to)."""

    def __init__(self, folder: str):
        self.folder = folder
        self.compacted = storage.join(folder, "finalists.parquet")
        self.rows = [row for location in self._files()
                     for row in storage.read_table(location).to_pylist()]
        self.folds: dict[str, list[Fold]] = {}  # by pack id: each member's, packs being run

    def add_pack(self, pack_id: str, members: list[MemberRecord], placement: dict) -> None:
        """Record one finished fold pack's scores."""
        rows = [_fold_row(member, fold) for member, fold in zip(members, self.folds[pack_id])]
        with recording(self.folder):
            storage.write_rows(storage.join(self.folder, "finalists", f"{pack_id}.parquet"),
                               rows, FOLDS_SCHEMA)
        self.rows += rows

    def compact(self) -> None:
        """Fold the parts into ``finalists.parquet``, then remove them."""
        parts = self._files()[storage.exists(self.compacted):]
        if not parts:
            return
        with recording(self.folder):
            storage.write_table(self.compacted, pa.Table.from_pylist(self.rows, FOLDS_SCHEMA))
            for part in parts:
                storage.remove(part)
            storage.remove_empty_folders(storage.join(self.folder, "finalists"))

    def _files(self) -> list[str]:
        parts = [entry.location for entry in
                 storage.finished_files(storage.join(self.folder, "finalists"))]
        return [self.compacted, *parts] if storage.exists(self.compacted) else parts


def _fold_row(member: MemberRecord, fold: Fold) -> dict:
    row = {"trial_id": member.trial_id, "fold": fold.index, "folds": fold.count,
           "status": "ok" if member.result is not None else "failed", "error": member.error}
    if member.result is not None:
        row |= {"best_epoch": member.result.best_epoch,
                "val_accuracy": member.result.val_accuracy,
                "val_loss": member.result.val_loss, "val_images": member.result.val_images}
    return row


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
