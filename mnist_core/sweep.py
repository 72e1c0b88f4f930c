"""The sweep driver: one Ray task per trial, gathered with ``ray.wait`` as they finish.

The data is loaded once here and ``ray.put`` once; every task receives the same reference.
A trial that raises is recorded ``failed`` with its error and never retried. A trial whose
worker process or node dies is resubmitted by the driver, up to ``max_retries`` times, so the
``attempts`` column is exact; Ray's own task retries are off for the same reason. Reports are
rewritten after every trial, so a killed driver loses nothing that finished, and a resumed
sweep runs only the trials missing from ``trials.parquet``. When every trial is recorded and
one has a best model, ``<out>/latest`` is pointed at the sweep (see ``model_ref``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from mnist_core import storage
from mnist_core.data import load_dataset
from mnist_core.model_ref import write_latest
from mnist_core.reports import SweepReport
from mnist_core.sweep_config import SweepConfig, Trial


@dataclass(frozen=True)
class SweepSummary:
    """How a sweep ended: where its reports are and how many trials were ok or failed."""

    sweep_id: str
    folder: str
    total: int
    ok: int
    failed: int
    ran_now: int
    top: tuple[dict, ...]


def run_sweep(config: SweepConfig, out: str, sweep_id: str, show_progress: bool = True,
              top_n: int = 5) -> SweepSummary:
    """Run every trial of ``config`` not yet in ``<out>/<sweep_id>``; return the summary."""
    folder = storage.join(out, sweep_id)
    storage.write_bytes(storage.join(folder, "sweep.toml"), config.source_text.encode())
    report = SweepReport(folder, sweep_id, config.data.dataset, config.data.validation_split)
    todo = [trial for trial in config.trials if trial.trial_id not in report.finished_ids]
    if todo:
        _run_trials(config, todo, report, show_progress)
    report.write_hyperparameter_plot(config.grid_names)
    if report.best is not None and report.finished_ids >= {t.trial_id for t in config.trials}:
        write_latest(out, sweep_id)
    return _summarise(report, folder, len(todo), top_n)


def _run_trials(config: SweepConfig, todo: list[Trial], report: SweepReport,
                show_progress: bool) -> None:
    import ray

    splits_ref = ray.put(load_dataset(config.data))
    submit = _submitter(config, report.sweep_id, splits_ref)
    pending = {submit(trial): (trial, 1) for trial in todo}
    progress = _Progress(len(config.trials), len(report.trials), _slots(config), show_progress)
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                trial, attempt = pending.pop(ref)
                retry = _collect(ref, trial, attempt, config.resources.max_retries, report)
                if retry:
                    pending[submit(trial)] = (trial, attempt + 1)
            progress.update(report, len(pending))
    finally:
        progress.close()


def _submitter(config: SweepConfig, sweep_id: str, splits_ref):
    from mnist_core.worker import run_trial_task

    resources = config.resources
    task = run_trial_task.options(num_cpus=resources.num_cpus, num_gpus=resources.num_gpus,
                                  max_retries=0, retry_exceptions=False)

    def submit(trial: Trial):
        return task.remote(sweep_id, trial.trial_id, trial.config, splits_ref,
                           resources.num_cpus)

    return submit


def _collect(ref, trial: Trial, attempt: int, max_retries: int, report: SweepReport) -> bool:
    """Record the finished task behind ``ref``; return True when it should be retried."""
    import ray
    from ray.exceptions import RayError, RayTaskError

    try:
        outcome = ray.get(ref)
    except RayTaskError as error:
        cause = error.cause if error.cause is not None else error
        report.add_failed(trial.trial_id, trial.config.as_record(),
                          f"{type(cause).__name__}: {cause}", attempt)
        return False
    except RayError as error:
        if attempt <= max_retries:
            return True
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        report.add_failed(trial.trial_id, trial.config.as_record(),
                          f"{type(error).__name__}: {message}", attempt)
        return False
    placement = {"node": outcome.node, "gpu_ids": list(outcome.gpu_ids),
                 "worker_pid": outcome.worker_pid,
                 "worker_setup_seconds": outcome.worker_setup_seconds}
    report.add_ok(trial.trial_id, outcome.result, placement, attempt)
    return False


def _slots(config: SweepConfig) -> int:
    """How many trials the cluster can run at once with the configured resources."""
    import ray

    available = ray.cluster_resources()
    resources = config.resources
    slots = math.floor(available.get("CPU", 0) / resources.num_cpus)
    if resources.num_gpus > 0:
        slots = min(slots, math.floor(available.get("GPU", 0) / resources.num_gpus))
    if slots == 0:
        warnings.warn(
            f"no node can run a trial now (each asks for {resources.num_cpus} CPU and "
            f"{resources.num_gpus} GPU; the cluster has {available.get('CPU', 0)} CPU and "
            f"{available.get('GPU', 0)} GPU): trials wait until the autoscaler adds nodes",
            stacklevel=2)
    return max(slots, 1)


class _Progress:
    """A tqdm bar of trials recorded, with failed, running and best validation accuracy."""

    def __init__(self, total: int, initial: int, slots: int, enabled: bool):
        from tqdm import tqdm

        self.slots = slots
        self.bar = tqdm(total=total, initial=initial, unit="trial", desc="sweep",
                        disable=not enabled, dynamic_ncols=True)

    def update(self, report: SweepReport, pending: int) -> None:
        self.bar.n = len(report.trials)
        failed = sum(row["status"] == "failed" for row in report.trials)
        best = report.best["val_accuracy"] if report.best else float("nan")
        self.bar.set_postfix(failed=failed, running=min(pending, self.slots),
                             best_val=f"{best:.4f}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _summarise(report: SweepReport, folder: str, ran_now: int, top_n: int) -> SweepSummary:
    ok = [row for row in report.trials if row["status"] == "ok"]
    top = sorted(ok, key=lambda row: row["val_accuracy"], reverse=True)[:top_n]
    return SweepSummary(report.sweep_id, folder, len(report.trials), len(ok),
                        len(report.trials) - len(ok), ran_now, tuple(top))
