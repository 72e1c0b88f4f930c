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

import math
import warnings
from dataclasses import dataclass

from mnist_core import storage
from mnist_core.data import load_dataset
from mnist_core.errors import ConfigError
from mnist_core.model_ref import write_latest
from mnist_core.packs import Pack, make_packs, pack_size_for
from mnist_core.sweep_config import SweepConfig
from mnist_core.sweep_report import MemberRecord, SweepReport
from mnist_core.trial import TrialFailure


@dataclass(frozen=True)
class SweepSummary:
    """How a sweep ended: where its reports are and how many trials were ok or failed."""

    sweep_id: str
    folder: str
    total: int
    ok: int
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
    packs = []
    if todo:
        slots = _slots(config, cluster_can_grow)
        largest = pack_size_for(len(todo), slots, config.resources.pack_size,
                                config.resources.num_gpus > 0)
        packs = make_packs(todo, largest)
        progress = _Progress(len(config.trials), len(report.trials), show_progress)
        _run_packs(config, packs, report, progress, task)
    report.compact()
    report.write_hyperparameter_plot(config.grid_names)
    if report.best is not None and report.finished_ids >= {t.trial_id for t in config.trials}:
        write_latest(out, sweep_id)
    return _summarise(report, folder, len(todo), len(packs), top_n)


def _run_packs(config: SweepConfig, packs: list[Pack], report: SweepReport, progress,
               task) -> None:
    import ray

    submit = _submitter(config, ray.put(load_dataset(config.data)), task)
    pending = {submit(pack): (pack, 1) for pack in packs}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                pack, attempt = pending.pop(ref)
                if _collect(ref, pack, attempt, config.resources.max_retries, report):
                    pending[submit(pack)] = (pack, attempt + 1)
            progress.update(report, sum(len(pack.trials) for pack, _ in pending.values()))
    finally:
        progress.close()


def _submitter(config: SweepConfig, splits_ref, task):
    from mnist_core.worker import run_pack_task

    resources = config.resources
    remote = (task or run_pack_task).options(num_cpus=resources.num_cpus,
                                             num_gpus=resources.num_gpus, max_retries=0,
                                             retry_exceptions=False)

    def submit(pack: Pack):
        return remote.remote(pack, splits_ref, resources.num_cpus)

    return submit


def _collect(ref, pack: Pack, attempt: int, max_retries: int, report: SweepReport) -> bool:
    """Record the finished pack behind ``ref``; return True when it should be retried."""
    import ray
    from ray.exceptions import RayError, RayTaskError

    try:
        outcome = ray.get(ref)
    except RayTaskError as error:
        cause = error.cause if error.cause is not None else error
        _record_failed(report, pack, f"{type(cause).__name__}: {cause}", attempt)
        return False
    except RayError as error:
        if attempt <= max_retries:
            return True
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        _record_failed(report, pack, f"{type(error).__name__}: {message}", attempt)
        return False
    placement = {"node": outcome.node, "gpu_ids": list(outcome.gpu_ids),
                 "worker_pid": outcome.worker_pid,
                 "worker_setup_seconds": outcome.worker_setup_seconds}
    members = [MemberRecord(trial.trial_id, trial.config.as_record(),
                            None if isinstance(result, TrialFailure) else result,
                            result.error if isinstance(result, TrialFailure) else None, attempt)
               for trial, result in zip(pack.trials, outcome.results)]
    report.add_pack(pack.pack_id, members, placement)
    return False


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
    return SweepSummary(report.sweep_id, folder, len(report.trials), len(ok),
                        len(report.trials) - len(ok), ran_now, packs, tuple(top))
