"""The Ray task that trains one pack of trials on a worker, and what it reports about where.

``train_pack_on_worker`` is the plain function; ``run_pack_task`` is it as a Ray task, defined
at module level with ``max_calls=0`` so a worker process is reused across packs even when they
ask for GPUs (Ray otherwise retires a GPU task's process after one call): TensorFlow's import
and start-up are paid once per process, which ``worker_setup_seconds`` shows (non-zero only on
a process's first pack). Given a local ``log_dir`` (the sweep's ``logs/``), a worker sends its
whole output there on its first pack, TensorFlow's C++ start-up lines included, so the user's
console shows none of it. Tests that need a worker to crash or raise wrap the plain function
in a remote function of their own and hand it to ``sweep.run_sweep``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass

import ray

from mnist_core import console, devices
from mnist_core.data import Splits
from mnist_core.memory import release_unused
from mnist_core.reports import best_trial
from mnist_core.session import task_error_cause
from mnist_core.sweep.compaction import CompactionPlan, compact_folder, compact_table
from mnist_core.sweep.packs import Pack, PackFailed, pack_progress
from mnist_core.sweep.page import write_sweep_report
from mnist_core.sweep.recording import MemberRecord, PackTables, write_details
from mnist_core.sweep.views import view_data
from mnist_core.trial import TrialFailure, TrialResult, run_pack, with_model

_state: dict[str, bool] = {}


@dataclass(frozen=True, eq=False)
class PackOutcome:
    """Each member's result or failure (in the pack's order), plus the node, GPUs and worker
    process the pack ran on. A pack whose worker built its report tables (``as_tables``)
    holds them, and a result only for the members whose model came back (None for the rest).
    """

    results: list[TrialResult | TrialFailure | None]
    node: str
    gpu_ids: tuple[str, ...]
    worker_pid: int
    worker_setup_seconds: float
    seconds: float = 0.0  # the whole task on the worker: set-up, training, evaluation
    tables: PackTables | None = None  # its rows, encoded (attempts: 1)
    trial_epochs: int = 0  # epochs its ok members trained (with ``tables``)
    best_val: float | None = None  # its members' best validation accuracy (with ``tables``)

    @property
    def placement(self) -> dict:
        """Where the pack ran, as its ``trials`` rows say."""
        return {"node": self.node, "gpu_ids": list(self.gpu_ids),
                "worker_pid": self.worker_pid, "worker_setup_seconds": self.worker_setup_seconds}


def train_pack_on_worker(pack: Pack, splits: Splits, num_cpus: float,
                         log_dir: str | None = None) -> PackOutcome:
    """Set up this worker (once: its output to ``<log_dir>/worker-<pid>.log``, TensorFlow),
    train the pack, return its outcome."""
    started = time.perf_counter()

    if log_dir and not _state.get("logging"):
        _state["logging"] = console.to_log_file(f"{log_dir}/worker-{os.getpid()}.log")
    gpu_ids = tuple(str(gpu) for gpu in ray.get_gpu_ids())
    setup = devices.configure(num_cpus=max(1, int(num_cpus)), use_gpu=bool(gpu_ids))
    try:
        data, groups = view_data(pack.view, splits)
        results = run_pack(pack.configs, data, pack.budgets, pack.starts, groups)
    except Exception as error:
        # TensorFlow's exception types would make the driver import TensorFlow to unpickle
        # them (its start-up lines on the user's console): send a plain one, traceback kept.
        raise PackFailed(f"{type(error).__name__}: {error}") from error
    outcome = PackOutcome(
        results=with_models(pack, results, splits),
        node=ray.get_runtime_context().get_node_id(),
        gpu_ids=gpu_ids,
        worker_pid=os.getpid(),
        worker_setup_seconds=setup.seconds,
    )
    if pack.rows is not None:
        outcome = as_tables(pack, outcome)
    return dataclasses.replace(outcome, seconds=time.perf_counter() - started)


def with_models(pack: Pack, results: list, splits: Splits) -> list:
    """The results with a model file for every member (``keep_models = "all"``) or only for
    the pack's best (``best_member``), and no weights: what crosses to the driver."""
    kept = range(len(results)) if pack.keep_all_models else best_member(pack, results)
    return [result if not isinstance(result, TrialResult)
            else with_model(result, splits) if index in kept
            else dataclasses.replace(result, weights=None, model_bytes=b"")
            for index, result in enumerate(results)]


def best_member(pack: Pack, results: list) -> list[int]:
    """The position of the pack's best member (by ``reports.best_trial``, among members
    trained to their own epochs: a member still between rungs of successive halving cannot be chosen
    yet), in a list, or none: the driver keeps one model per sweep, so only a candidate for
    it crosses to the driver (about 20 KB a member saved)."""
    budgets = pack.budgets or [trial.config.epochs for trial in pack.trials]
    rows = [{"trial_id": trial.trial_id, "status": "ok", "val_accuracy": result.val_accuracy,
             "val_loss": result.val_loss}
            for trial, result, budget in zip(pack.trials, results, budgets)
            if isinstance(result, TrialResult) and budget == trial.config.epochs]
    best = best_trial(rows) if rows and rows[0]["val_accuracy"] is not None else None
    keep = best["trial_id"] if best else None
    return [index for index, trial in enumerate(pack.trials) if trial.trial_id == keep]


def as_tables(pack: Pack, outcome: PackOutcome) -> PackOutcome:
    """``outcome`` as its pack's report tables, built here rather than by the driver: the
    members' ``trials`` rows, their detail tables (written to the sweep folder where
    ``pack.details_to`` says this worker reaches it, else sent), and a result only for the
    members whose model came back. The driver's work per pack is then a few calls, whatever
    its size; the trials part itself is the driver's to write (the commit)."""
    members = [MemberRecord.of(trial, result, 1)
               for trial, result in zip(pack.trials, outcome.results)]
    tables = pack.rows.pack_tables(pack.pack_id, members, outcome.placement)
    kept = [result if isinstance(result, TrialResult) and result.model_bytes else None
            for result in outcome.results]
    if pack.details_to is not None:
        write_details(pack.details_to, pack.pack_id, tables.details)
        tables = dataclasses.replace(tables, details=None)
    trial_epochs, best_val = pack_progress(pack, outcome.results)
    return dataclasses.replace(outcome, tables=tables, results=kept,
                               trial_epochs=trial_epochs, best_val=best_val)


@ray.remote(num_cpus=1)
def compact_sweep_task(folder: str) -> None:
    """``store.compact_folder`` as a Ray task, off the driver: finding which rows each file
    gives (reading every part's trial ids: about 250 MB for a million trials) here, each
    table by a task of its own (the detail tables at once, then ``trials``)."""
    compact_folder(folder, _compact_tables_on_workers)
    release_unused()  # this process goes on training packs


def _compact_tables_on_workers(names: list[str], plan: CompactionPlan) -> None:
    from ray.exceptions import RayTaskError

    try:
        shared = ray.put(plan)  # pickled once, not once a task
        ray.get([compact_table_task.remote(name, shared) for name in names])
    except RayTaskError as error:  # a full disk, a damaged file: its own error, not Ray's
        raise task_error_cause(error) from None


@ray.remote(num_cpus=1)
def compact_table_task(name: str, plan: CompactionPlan) -> None:
    """``store.compact_table`` as a Ray task."""
    compact_table(name, plan)


@ray.remote(num_cpus=1)
def sweep_page_task(folder: str) -> None:
    """``page.write_sweep_report`` as a Ray task: a big sweep's page (its every trial's
    counted columns, its charts) built off the driver."""
    write_sweep_report(folder)
    release_unused()


@ray.remote(max_calls=0)
def run_pack_task(pack: Pack, splits: Splits, num_cpus: float,
                  log_dir: str | None = None) -> PackOutcome:
    """``train_pack_on_worker`` as a Ray task."""
    return train_pack_on_worker(pack, splits, num_cpus, log_dir)
