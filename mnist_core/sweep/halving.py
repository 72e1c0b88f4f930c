"""Successive halving over a sweep's trials: rungs, their staging stores, and who goes on.

At each rung every live trial trains to the rung's epochs; trials that reach their own epochs
are recorded in the sweep's store, and the rest land in the rung's staging store
(``rungs/r<k>/``) with the state they stopped in (``states/<trial_id>.npz``: weights,
optimizer slots, history, epoch choice). When the rung is done, only the best ``1/eta`` by
validation accuracy go on — from that state, with the data order they would have had trained
straight through, so no epoch is trained twice and each ends as if trained straight to its
epochs; the others are copied from the staging store into the sweep's with status ``pruned``.
A resumed sweep retrains nothing already recorded or staged, and recomputes each rung's choice
from the staged results, so it prunes exactly what the first run would have. The staging
stores go when the sweep is complete (``remove_stages``).
"""

from __future__ import annotations

import dataclasses

from mnist_core import storage
from mnist_core.errors import recording
from mnist_core.packed_training import MemberState
from mnist_core.reports import ranked_trials
from mnist_core.sweep.config import Halving
from mnist_core.sweep.packs import PackRunner
from mnist_core.sweep.recording import MemberRecord, PackRecorder, PartStore
from mnist_core.sweep.trials import Trial


def run_halving(halving: Halving, trials: list[Trial], recorder: PackRecorder,
                run: PackRunner) -> int:
    """Run every rung over ``trials``, each trial going on from the state its last rung left
    (``run.train``'s ``starts``). Returns the number of packs trained."""
    store = recorder.store
    rungs = halving.rungs(max(trial.config.epochs for trial in trials))
    alive, packs = trials, 0
    for rung, epochs in enumerate(rungs):
        stage = PartStore(stage_folder(store.folder, rung))
        final = {trial.trial_id for trial in alive
                 if trial.config.epochs <= epochs or rung == len(rungs) - 1}
        done = store.finished_ids() | stage.finished_ids()
        waiting = [trial for trial in alive if trial.trial_id not in done]
        budgets = {trial.trial_id: min(epochs, trial.config.epochs) for trial in waiting}
        starts = _states(store.folder, rung - 1, rungs[rung - 1], waiting) if rung else {}
        staging = PackRecorder(stage, recorder.labels)  # keeps no models: not yet decided
        packs += run.train(waiting, budgets, _RungSink(recorder, staging, final, rung),
                       starts=starts)
        alive = _decide_rung(store, stage, [t for t in alive if t.trial_id not in final],
                             halving.eta)
    return packs


def stage_folder(folder: str, rung: int) -> str:
    """The staging folder of ``rung`` inside sweep folder ``folder``."""
    return storage.join(folder, "rungs", f"r{rung}")


def _states(folder: str, rung: int, epochs: int, trials: list[Trial]) -> dict[str, MemberState]:
    """The states ``trials`` stopped in at ``rung`` (after ``epochs`` epochs), by trial id;
    a trial without one (trained alone, unpackable) starts again from scratch."""
    found = {}
    for trial in trials:
        location = _state_file(stage_folder(folder, rung), trial.trial_id)
        if storage.exists(location):
            found[trial.trial_id] = MemberState(epochs, storage.read_bytes(location))
    return found


def _state_file(stage: str, trial_id: str) -> str:
    return storage.join(stage, "states", f"{trial_id}.npz")


def remove_stages(folder: str) -> None:
    """Delete the staging stores of every rung (once every trial is recorded)."""
    PartStore(storage.join(folder, "rungs")).remove()


class _RungSink:
    """Where a rung's finished packs go: members that reached their own epochs (or failed) to
    the sweep's recorder, members still in the race to the rung's staging recorder."""

    def __init__(self, recorder: PackRecorder, staging: PackRecorder, final: set[str],
                 rung: int):
        self.recorder, self.staging, self.final, self.rung = recorder, staging, final, rung

    def add_pack(self, pack_id: str, members: list[MemberRecord], placement: dict) -> None:
        members = [dataclasses.replace(member, rung=self.rung) for member in members]
        done = [member for member in members if member.trial_id in self.final
                or member.result is None]
        contenders = [member for member in members if member not in done]
        if done:
            self.recorder.add_pack(pack_id, done, placement)
        if contenders:
            stage = self.staging.store.folder
            with recording(stage):  # the states first: the trials part commits the pack
                for member in contenders:
                    if member.result.state is not None:
                        storage.write_bytes(_state_file(stage, member.trial_id),
                                            member.result.state.arrays)
            self.staging.add_pack(pack_id, contenders, placement)


def _decide_rung(store: PartStore, stage: PartStore, contenders: list[Trial],
                 eta: int) -> list[Trial]:
    """Keep the best ``len // eta`` (at least one) of ``contenders`` by staged validation accuracy
    (ties: ``reports.best_trial``'s rule); record the rest ``pruned``. Returns the trials kept."""
    if not contenders:
        return []
    wanted = {trial.trial_id for trial in contenders}
    ranked = [row["trial_id"] for row in ranked_trials(stage.index().to_pylist())
              if row["trial_id"] in wanted]
    keep = set(ranked[:max(1, len(ranked) // eta)])
    done = store.finished_ids()
    pruned = {trial_id for trial_id in ranked[len(keep):] if trial_id not in done}
    store.copy_records(stage, pruned, "pruned")
    return [trial for trial in contenders if trial.trial_id in keep]
