"""The sweep driver: every trial still owed trained in packs (``runner``), then compacted,
chosen, refit, paged and tracked.

Pending trials are grouped into packs (``packs``), as many per pack as ``[resources]
pack_size`` allows (``"auto"``: every worker slot busy, then as wide as fits). A member whose
loss stops being finite is recorded ``failed`` with that reason while the rest of its pack
finishes. Each finished pack is written to the reports at once (part files, see
``recording``), so a killed driver loses nothing that finished, and a resumed sweep runs only
the trials missing from them. When every trial is recorded and one has a best model,
``<out>/latest`` is pointed at the sweep (see ``model_ref``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from mnist_core import console, storage
from mnist_core.data import Splits
from mnist_core.memory import limit_malloc_arenas, release_unused
from mnist_core.model_ref import move_latest
from mnist_core.session import task_error_cause
from mnist_core.sweep.config import SweepConfig
from mnist_core.sweep.halving import remove_stages, run_halving
from mnist_core.sweep.page import write_sweep_report
from mnist_core.sweep.proposals import run_rounds
from mnist_core.sweep.ranking import seed_means
from mnist_core.sweep.reading import count_at_chance, read_sweep, true_where
from mnist_core.sweep.recording import BestCheckpoint, PackRecorder, PartStore, SweepRows
from mnist_core.sweep.refit import choose
from mnist_core.sweep.runner import PackRun, Progress, RunSetup, slots_for
from mnist_core.sweep.tracking import log_sweep
from mnist_core.sweep.trials import trial_positions

# Packs from which compaction and the final page go to worker tasks: below, the driver's few
# seconds cost less than the tasks' start (a worker process each, about a second and a half on
# a small machine), and its memory for them is small.
WORKER_FINISH_PACKS = 256


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
    selection: dict | None = None
    refit: dict | None = None
    diverged: int = 0  # ok trials that trained to chance level
    choice: dict | None = None  # how the setting was chosen (``refit.choose``)
    settings: tuple[dict, ...] = ()  # with several seeds: the best settings' seed means
    trial_epochs: int = 0  # epochs trained now by the trials that finished ok
    stage_idle: tuple[float, ...] = ()  # per rung (round): share of worker slot time idle
    tracked: tuple[str, ...] = ()  # where MLflow and TensorBoard have the sweep, a line each


def run_sweep(config: SweepConfig, out: str, sweep_id: str, show_progress: bool = True,
              top_n: int = 5, cluster_can_grow: bool = False, task=None,
              splits: Splits | None = None) -> SweepSummary:
    """Run every trial of ``config`` not yet in ``<out>/<sweep_id>``; return the summary.

    ``cluster_can_grow``: the Ray cluster has an autoscaler, so packs that no node can run
    yet may wait for one (otherwise that is a ``ConfigError``). ``task``: the Ray remote
    function that trains a pack, ``worker.run_pack_task`` unless a test brings its own.
    ``splits``: the config's data, when the caller loaded it already (else loaded here).
    """
    folder = storage.join(out, sweep_id)
    config_file = storage.join(folder, "sweep.toml")
    if not storage.exists(config_file):  # written once: its age is the sweep's (``latest``)
        storage.write_bytes(config_file, config.source_text.encode())
    limit_malloc_arenas()  # and freed memory given back after each phase (``memory``)
    store = PartStore(folder)
    recorder = PackRecorder(store, SweepRows(sweep_id, config.data.dataset,
                                             config.data.validation_split),
                            BestCheckpoint(folder, store), config.keep_models == "all")
    owed = config.trial_count - store.recorded
    setup = RunSetup(cluster_can_grow, task, show_progress, splits)
    try:
        packs, trial_epochs, idle = _train_all(config, recorder, setup)
    except KeyboardInterrupt:
        _track(config, folder, sweep_id, "KILLED")
        raise
    release_unused()
    on_workers = _finishing_on_workers(folder)
    # First: what follows reads one file per table, not every pack's parts.
    store.compact(_run_on_worker("compact_sweep_task") if on_workers else None)
    release_unused()
    summary = dataclasses.replace(
        _summarise(store, sweep_id, folder, max(owed, 0), packs, top_n),
        trial_epochs=trial_epochs, stage_idle=idle)
    release_unused()
    write_page = _run_on_worker("sweep_page_task") if on_workers else write_sweep_report
    return _finish(config, out, recorder, summary, setup, write_page)


def _finish(config: SweepConfig, out: str, recorder: PackRecorder, summary: SweepSummary,
            setup: RunSetup, write_page: Callable[[str], object]) -> SweepSummary:
    """After training and compaction: choose the setting (``refit.choose``: by trial or
    seed means, then refit), say how far the choice can be trusted, write the page
    (``write_page(folder)``), track, and point ``latest`` at a complete sweep."""
    store, folder = recorder.store, summary.folder
    complete = store.recorded >= config.trial_count
    if complete:
        remove_stages(folder)
    choice = refit = None
    if complete and recorder.checkpoint.best is not None:
        run = PackRun(config, recorder, slots_for(config, setup.cluster_can_grow), setup, None)
        say = functools.partial(print, flush=True)  # a line per step: each can take minutes
        choice, refit = choose(config, store, recorder.checkpoint, run, say)
        release_unused()
    selection = recorder.checkpoint.record_selection(store, choice)
    release_unused()
    write_page(folder)
    release_unused()
    tracked = _track(config, folder, summary.sweep_id,
                     "FAILED" if summary.failed else "FINISHED")
    if recorder.checkpoint.best is not None and complete:
        move_latest(out, summary.sweep_id)
    return dataclasses.replace(summary, selection=selection, refit=refit, choice=choice,
                               tracked=tracked)


def _track(config: SweepConfig, folder: str, sweep_id: str, status: str) -> tuple[str, ...]:
    """Log the sweep to MLflow and TensorBoard, when it asks for that; what they print (and
    TensorFlow's start-up, for the MLflow model) goes to ``logs/tracking.log``. Returns where
    each has it, a line each."""
    if not config.tracking.enabled:
        return ()

    log = None if storage.is_uri(folder) else storage.join(folder, "logs", "tracking.log")
    with console.native_output_to(log):
        return log_sweep(config.tracking, folder, sweep_id, read_sweep(folder), status)


def _train_all(config: SweepConfig, recorder: PackRecorder,
               setup: RunSetup) -> tuple[int, int, tuple[float, ...]]:
    """Train the trials still owed (all rungs, with successive halving; round by round, with
    proposals); the packs run, the trial-epochs trained, and the share of slot time left
    idle in each stage (rung or round): packs wait for the stage's last one."""
    store = recorder.store
    if store.recorded >= config.trial_count:
        return 0, 0, ()
    run = PackRun(config, recorder, slots_for(config, setup.cluster_can_grow), setup,
               Progress(config.trial_count, store.recorded, setup.show_progress))
    try:
        if config.proposes:
            packs = run_rounds(config, recorder, run)
        elif config.halving:
            packs = run_halving(config.halving, list(config.trials), recorder, run)
        else:  # positions, not trials: the workers make them (``grid_packs``)
            recorded = trial_positions(store.index().column("trial_id"))
            owed = np.setdiff1d(np.arange(config.trial_count), recorded)
            packs = run.train_grid(config.trials, owed, recorder,
                                   _details_folder(store.folder))
    finally:
        run.progress.close()
    return packs, run.trial_epochs, tuple(run.idle)


def _summarise(store: PartStore, sweep_id: str, folder: str, ran_now: int, packs: int,
               top_n: int) -> SweepSummary:
    index = store.index()
    ok = true_where(pc.equal(index.column("status"), "ok"))  # a mask: no copy of the rows
    several_seeds = len(np.unique(index.column("seed").to_numpy(zero_copy_only=False)[ok])) > 1
    settings = ()
    if several_seeds:  # seed means group whole rows: these sweeps hold every ok row here
        settings = tuple(seed_means([row for row in store.rows() if row["status"] == "ok"])
                         [:top_n])
    return SweepSummary(sweep_id, folder, store.recorded, int(ok.sum()), store.counts["pruned"],
                        store.counts["failed"], ran_now, packs,
                        tuple(store.ranked_rows(top_n)),
                        diverged=count_at_chance(index), settings=settings)


def _details_folder(folder: str) -> str | None:
    """Where workers can write a pack's detail parts themselves: the sweep's folder when it is
    on an object store, or on a local disk while every Ray node is this machine; else None
    and the driver writes them."""
    import ray

    if storage.is_uri(folder):
        return folder
    here = ray.util.get_node_ip_address()
    nodes = {node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]}
    return folder if nodes == {here} else None


def _finishing_on_workers(folder: str) -> bool:
    """Whether compaction and the final page go to worker tasks: where workers reach
    ``folder`` (``_details_folder``) and it holds at least ``WORKER_FINISH_PACKS`` packs'
    parts. Their memory (every trial's ids, the page's columns) is then not the driver's."""
    packs = storage.finished_files(storage.join(folder, "parts", "trials"))
    return len(packs) >= WORKER_FINISH_PACKS and _details_folder(folder) is not None


def _run_on_worker(task_name: str) -> Callable[[str], None]:
    """A call of ``worker.<task_name>(folder)`` as a Ray task that returns once it is done
    (its own error raised here, not Ray's)."""

    def run(folder: str) -> None:
        import ray
        from ray.exceptions import RayTaskError

        import mnist_core.sweep.worker as worker

        try:
            ray.get(getattr(worker, task_name).remote(folder))
        except RayTaskError as error:
            raise task_error_cause(error) from None

    return run


