"""The sweep driver: trials grouped into packs, one Ray task per pack, gathered with ``ray.wait``.

The data is loaded once here and ``ray.put`` once; every task receives the same reference.
Pending trials are grouped into packs (``packs.make_packs``), as many per pack as
``[resources] pack_size`` allows (``"auto"``: every worker slot busy, then as wide as fits).
A member whose loss stops being finite is recorded ``failed`` with that reason while the rest
of its pack finishes. A pack that raises records its members ``failed`` with the error and is
never retried. A pack whose worker process or node dies is resubmitted by the driver, up to
``max_retries`` times, so each trial's ``attempts`` is exact; Ray's own task retries are off
for the same reason. Each finished pack is written to the reports at once (part files, see
``sweep_report``), so a killed driver loses nothing that finished, and a resumed sweep runs only
the trials missing from them. When every trial is recorded and one has a best model,
``<out>/latest`` is pointed at the sweep (see ``model_ref``).
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from dataclasses import dataclass

from mnist_core import storage
from mnist_core.data import load_dataset
from mnist_core.errors import ConfigError
from mnist_core.html_report import write_sweep_report
from mnist_core.model_ref import write_latest
from mnist_core.packs import Pack, make_packs, pack_size_for
from mnist_core.sweep_config import HYPERPARAMETERS, SweepConfig, Trial
from mnist_core.sweep_report import MemberRecord, SweepReport, read_sweep
from mnist_core.tracking import log_sweep
from mnist_core.trial import TrialFailure


@dataclass(frozen=True)
class SweepSummary:
    """How a sweep ended: where its reports are and how many trials were ok or failed."""

    sweep_id: str
    folder: str
    total: int
    ok: int
    pruned: int
    failed: int
    ran_now: int
    packs: int
    top: tuple[dict, ...]


def run_sweep(config: SweepConfig, out: str, sweep_id: str, show_progress: bool = True,
              top_n: int = 5, cluster_can_grow: bool = False, task=None) -> SweepSummary:
    """Run every trial of ``config`` not yet in ``<out>/<sweep_id>``; return the summary.

    ``cluster_can_grow``: the Ray cluster has an autoscaler, so packs that no node can run
    yet may wait for one (otherwise that is a ``ConfigError``). ``task``: the Ray remote
    function that trains a pack, ``worker.run_pack_task`` unless a test brings its own.
    """
    folder = storage.join(out, sweep_id)
    storage.write_bytes(storage.join(folder, "sweep.toml"), config.source_text.encode())
    report = SweepReport(folder, sweep_id, config.data.dataset, config.data.validation_split)
    todo = [trial for trial in config.trials if trial.trial_id not in report.finished_ids]
    packs = 0
    if todo:
        run = _Run(config, report, _slots(config, cluster_can_grow), task,
                   _Progress(len(config.trials), len(report.trials), show_progress))
        try:
            packs = _halving(run, list(config.trials)) if config.halving else run.train(todo)
        finally:
            run.progress.close()
    complete = report.finished_ids >= {trial.trial_id for trial in config.trials}
    report.compact()
    if complete:
        report.remove_stages()
    report.write_hyperparameter_plot(config.grid_names, config.log_scaled)
    write_sweep_report(folder)
    if config.tracking.enabled:
        log_sweep(config.tracking, folder, sweep_id, HYPERPARAMETERS, read_sweep(folder))
    if report.best is not None and complete:
        write_latest(out, sweep_id)
    return _summarise(report, folder, len(todo), packs, top_n)


class _Run:
    """What training packs needs: the config, where results go, slots, the task, progress."""

    def __init__(self, config: SweepConfig, report: SweepReport, slots: int, task, progress):
        self.config, self.report, self.slots, self.progress = config, report, slots, progress
        self.task, self.splits_ref = task, None
        folder = report.folder
        self.log_dir = None if storage.is_uri(folder) else storage.join(folder, "logs")

    def train(self, trials: list[Trial], budgets: dict[str, int] | None = None,
              route=None) -> int:
        """Train ``trials`` in packs; each finished pack goes to ``route(pack)`` (a report;
        default the sweep's). Returns the number of packs."""
        import ray

        if not trials:
            return 0
        resources = self.config.resources
        largest = pack_size_for(len(trials), self.slots, resources.pack_size,
                                resources.num_gpus > 0)
        packs = make_packs(trials, largest, budgets)
        if self.splits_ref is None:
            self.splits_ref = ray.put(load_dataset(self.config.data))
        submit = _submitter(self.config, self.splits_ref, self.task, self.log_dir)
        pending = {submit(pack): (pack, 1) for pack in packs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                pack, attempt = pending.pop(ref)
                if self.collect(ref, pack, attempt, route or (lambda _: self.report)):
                    pending[submit(pack)] = (pack, attempt + 1)
            self.progress.update(self.report,
                                 sum(len(pack.trials) for pack, _ in pending.values()))
        return len(packs)

    def collect(self, ref, pack: Pack, attempt: int, route) -> bool:
        """Record the finished pack behind ``ref`` in ``route(pack)``; return True when it
        should be retried (its worker died and retries are left)."""
        import ray
        from ray.exceptions import RayError, RayTaskError

        try:
            outcome = ray.get(ref)
        except RayTaskError as error:
            cause = error.cause if error.cause is not None else error
            where = self._save_traceback(pack, str(error))
            _record_failed(route(pack), pack, f"{type(cause).__name__}: {cause}{where}",
                           attempt)
            return False
        except RayError as error:
            if attempt <= self.config.resources.max_retries:
                return True
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            where = "; worker output in logs/" if self.log_dir else ""
            _record_failed(route(pack), pack, f"{type(error).__name__}: {message}{where}",
                           attempt)
            return False
        placement = {"node": outcome.node, "gpu_ids": list(outcome.gpu_ids),
                     "worker_pid": outcome.worker_pid,
                     "worker_setup_seconds": outcome.worker_setup_seconds}
        members = [MemberRecord(trial.trial_id, trial.config.as_record(),
                                None if isinstance(result, TrialFailure) else result,
                                result.error if isinstance(result, TrialFailure) else None,
                                attempt)
                   for trial, result in zip(pack.trials, outcome.results)]
        route(pack).add_pack(pack.pack_id, members, placement)
        return False

    def _save_traceback(self, pack: Pack, text: str) -> str:
        """Write a failed pack's remote traceback to ``logs/``; return the note for its rows."""
        if self.log_dir is None:
            return ""
        name = f"pack-{pack.pack_id}.log"
        plain = re.sub(r"\x1b\[[0-9;]*m", "", text)  # Ray colours its tracebacks
        storage.write_bytes(storage.join(self.log_dir, name), plain.encode())
        return f" (traceback in logs/{name})"



def _halving(run: _Run, trials: list[Trial]) -> int:
    """Successive halving over all ``trials``: at each rung every live trial trains to the
    rung's epochs; trials that reach their own epochs are recorded ``ok``, and of the rest
    only the best ``1/eta`` by validation accuracy go on, the others recorded ``pruned``. A
    resumed sweep retrains nothing already recorded or staged, and recomputes each rung's
    choice from the staged results, so it prunes exactly what the first run would have."""
    halving, report = run.config.halving, run.report
    rungs = halving.rungs(max(trial.config.epochs for trial in trials))
    alive, packs = trials, 0
    for rung, epochs in enumerate(rungs):
        stage = report.stage(rung)
        final = {trial.trial_id for trial in alive
                 if trial.config.epochs <= epochs or rung == len(rungs) - 1}
        waiting = [trial for trial in alive if trial.trial_id not in report.finished_ids
                   and trial.trial_id not in stage.finished_ids]
        budgets = {trial.trial_id: min(epochs, trial.config.epochs) for trial in waiting}
        sink = _SplitSink(report, stage, final, rung)
        packs += run.train(waiting, budgets, route=lambda _, sink=sink: sink)
        alive = _decide_rung(report, stage, [t for t in alive if t.trial_id not in final],
                             halving.eta)
    return packs


class _SplitSink:
    """Where a rung's finished packs go: members that reached their own epochs (or failed) to
    the sweep's report, members still in the race to the rung's staging report."""

    def __init__(self, report: SweepReport, stage: SweepReport, final: set[str], rung: int):
        self.report, self.stage, self.final, self.rung = report, stage, final, rung

    def add_pack(self, pack_id: str, members: list[MemberRecord], placement: dict) -> None:
        members = [dataclasses.replace(member, rung=self.rung) for member in members]
        done = [member for member in members if member.trial_id in self.final
                or member.result is None]
        racing = [member for member in members if member not in done]
        if done:
            self.report.add_pack(pack_id, done, placement)
        if racing:
            self.stage.add_pack(pack_id, racing, placement)


def _decide_rung(report: SweepReport, stage: SweepReport, racing: list[Trial],
                 eta: int) -> list[Trial]:
    """Keep the best ``len // eta`` (at least one) of ``racing`` by staged validation
    accuracy (ties: earlier trial first); record the rest ``pruned``. Returns the keepers."""
    if not racing:
        return []
    staged = {row["trial_id"]: row for row in stage.trials}
    order = {trial.trial_id: index for index, trial in enumerate(racing)}
    ranked = sorted((trial_id for trial_id in order if trial_id in staged),
                    key=lambda trial_id: (-staged[trial_id]["val_accuracy"], order[trial_id]))
    keep = set(ranked[:max(1, len(ranked) // eta)])
    report.adopt(stage, {trial_id for trial_id in ranked[len(keep):]
                         if trial_id not in report.finished_ids}, "pruned")
    return [trial for trial in racing if trial.trial_id in keep]


def _submitter(config: SweepConfig, splits_ref, task, log_dir: str | None):
    from mnist_core.worker import run_pack_task

    resources = config.resources
    remote = (task or run_pack_task).options(num_cpus=resources.num_cpus,
                                             num_gpus=resources.num_gpus, max_retries=0,
                                             retry_exceptions=False)

    def submit(pack: Pack):
        return remote.remote(pack, splits_ref, resources.num_cpus, log_dir)

    return submit


def _record_failed(report: SweepReport, pack: Pack, error: str, attempt: int) -> None:
    report.add_pack(pack.pack_id, [MemberRecord(trial.trial_id, trial.config.as_record(), None,
                                                error, attempt) for trial in pack.trials], {})


def _slots(config: SweepConfig, cluster_can_grow: bool) -> int:
    """How many packs the cluster can run at once with the configured resources."""
    import ray

    available = ray.cluster_resources()
    resources = config.resources
    slots = math.floor(available.get("CPU", 0) / resources.num_cpus)
    if resources.num_gpus > 0:
        slots = min(slots, math.floor(available.get("GPU", 0) / resources.num_gpus))
    if slots > 0:
        return slots
    asked = (f"each pack asks for {resources.num_cpus:g} CPU and {resources.num_gpus:g} GPU; "
             f"the cluster has {available.get('CPU', 0):g} CPU and {available.get('GPU', 0):g} "
             "GPU")
    if not cluster_can_grow:
        raise ConfigError(f"[resources] no node of this local Ray can run a pack ({asked}): "
                          "lower num_cpus/num_gpus, or pass --address of a cluster that has them")
    warnings.warn(f"no node can run a pack now ({asked}): packs wait until the autoscaler "
                  "adds nodes", stacklevel=2)
    return 1


class _Progress:
    """A tqdm bar of trials recorded, with failed, running and best validation accuracy."""

    def __init__(self, total: int, initial: int, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="trial", desc="sweep",
                        disable=not enabled, dynamic_ncols=True)

    def update(self, report: SweepReport, pending: int) -> None:
        self.bar.n = len(report.trials)
        failed = sum(row["status"] == "failed" for row in report.trials)
        best = report.best["val_accuracy"] if report.best else float("nan")
        self.bar.set_postfix(failed=failed, pending=pending, best_val=f"{best:.4f}",
                             refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _summarise(report: SweepReport, folder: str, ran_now: int, packs: int,
               top_n: int) -> SweepSummary:
    ok = [row for row in report.trials if row["status"] == "ok"]
    top = sorted(ok, key=lambda row: row["val_accuracy"], reverse=True)[:top_n]
    count = {status: sum(row["status"] == status for row in report.trials)
             for status in ("pruned", "failed")}
    return SweepSummary(report.sweep_id, folder, len(report.trials), len(ok), count["pruned"],
                        count["failed"], ran_now, packs, tuple(top))
