"""The sweep driver: trials grouped into packs, one Ray task per pack, gathered with ``ray.wait``.

The data is loaded once here and ``ray.put`` once; every task receives the same reference.
Pending trials are grouped into packs (``packs.make_packs``), as many per pack as
``[resources] pack_size`` allows (``"auto"``: every worker slot busy, then as wide as fits).
A member whose loss stops being finite is recorded ``failed`` with that reason while the rest
of its pack finishes. A pack that raises records its members ``failed`` with the error and is
never retried. A pack whose worker process or node dies is resubmitted by the driver, up to
``max_retries`` times, so each trial's ``attempts`` is exact; Ray's own task retries are off
for the same reason. Each finished pack is written to the reports at once (part files, see
``store``), so a killed driver loses nothing that finished, and a resumed sweep runs only
the trials missing from them. When every trial is recorded and one has a best model,
``<out>/latest`` is pointed at the sweep (see ``model_ref``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import math
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from mnist_core import console, storage
from mnist_core.data import Splits, load_dataset
from mnist_core.errors import ConfigError, UserError
from mnist_core.memory import limit_malloc_arenas, release_unused
from mnist_core.model_ref import move_latest
from mnist_core.session import task_error_cause
from mnist_core.sweep.config import SweepConfig
from mnist_core.sweep.halving import remove_stages, run_halving
from mnist_core.sweep.packs import (
    Pack,
    PackFailed,
    PackSink,
    grid_packs,
    make_packs,
    pack_progress,
    pack_size_for,
)
from mnist_core.sweep.page import write_sweep_report
from mnist_core.sweep.proposals import run_rounds
from mnist_core.sweep.ranking import seed_means
from mnist_core.sweep.reading import count_at_chance, read_sweep, true_where
from mnist_core.sweep.recording import BestKeeper, MemberRecord, PackRecorder, PartStore, SweepRows
from mnist_core.sweep.refit import choose
from mnist_core.sweep.tracking import log_sweep
from mnist_core.sweep.trials import Trial, TrialGrid, trial_positions

WINDOW_TRIALS = 16_384  # trials grouped into packs at a time (made as they are needed)
# Packs from which compaction and the final page go to worker tasks: below, the driver's few
# seconds cost less than the tasks' start (a worker process each, about a second and a half on
# a small machine), and its memory for them is small.
WORKER_FINISH_PACKS = 256
IN_FLIGHT_GROWING = 32  # packs submitted at once where an autoscaler may add nodes


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
                            BestKeeper(folder, store), config.keep_models == "all")
    owed = config.trial_count - store.recorded
    setup = _Setup(cluster_can_grow, task, show_progress, splits)
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
            setup: _Setup, write_page: Callable[[str], object]) -> SweepSummary:
    """After training and compaction: choose the setting (``refit.choose``: by trial or
    seed means, then refit), say how far the choice can be trusted, write the page
    (``write_page(folder)``), track, and point ``latest`` at a complete sweep."""
    store, folder = recorder.store, summary.folder
    complete = store.recorded >= config.trial_count
    if complete:
        remove_stages(folder)
    choice = refit = None
    if complete and recorder.keeper.best is not None:
        run = _Run(config, recorder, _slots(config, setup.cluster_can_grow), setup, None)
        say = functools.partial(print, flush=True)  # a line per step: each can take minutes
        choice, refit = choose(config, store, recorder.keeper, run, say)
        release_unused()
    selection = recorder.keeper.record_selection(store, choice)
    release_unused()
    write_page(folder)
    release_unused()
    tracked = _track(config, folder, summary.sweep_id,
                     "FAILED" if summary.failed else "FINISHED")
    if recorder.keeper.best is not None and complete:
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


class LivePage:
    """``report.html`` rebuilt from the finished packs while a sweep runs (the page reloads
    itself): at most every ``INTERVAL`` seconds, and never more often than ``COST_FACTOR``
    times what a rebuild took, so a huge sweep spends at most a twentieth of its driver on it
    (a million trials' page, about 3 s to build, is rebuilt about once a minute)."""

    INTERVAL = 5.0
    COST_FACTOR = 20

    def __init__(self, folder: str):
        self.folder, self.due = folder, 0.0

    def tick(self) -> None:
        """Rebuild the page if it is due (a page that cannot be built now is skipped)."""
        now = time.monotonic()
        if now < self.due:
            return
        # A full disk or a damaged file is reported by the recording itself.
        with contextlib.suppress(OSError, UserError):
            write_sweep_report(self.folder, live=True)
        release_unused()
        cost = time.monotonic() - now
        self.due = time.monotonic() + max(self.INTERVAL, self.COST_FACTOR * cost)


@dataclass(frozen=True)
class _Setup:
    """How the driver runs: may the cluster grow, the pack task, a progress bar, the data."""

    cluster_can_grow: bool
    task: object
    show_progress: bool
    splits: Splits | None


def _train_all(config: SweepConfig, recorder: PackRecorder,
               setup: _Setup) -> tuple[int, int, tuple[float, ...]]:
    """Train the trials still owed (all rungs, with successive halving; round by round, with
    proposals); the packs run, the trial-epochs trained, and the share of slot time left
    idle in each stage (rung or round): packs wait for the stage's last one."""
    store = recorder.store
    if store.recorded >= config.trial_count:
        return 0, 0, ()
    run = _Run(config, recorder, _slots(config, setup.cluster_can_grow), setup,
               _Progress(config.trial_count, store.recorded, setup.show_progress))
    run.live.tick()
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


class _Run:
    """What training packs needs: the config, the sweep's recorder, slots, the task, progress."""

    def __init__(self, config: SweepConfig, recorder: PackRecorder, slots: int,
                 setup: _Setup, progress: _Progress | None):
        self.config, self.recorder, self.slots, self.progress = config, recorder, slots, progress
        self.task, self._splits, self.splits_ref = setup.task, setup.splits, None
        self.cluster_can_grow = setup.cluster_can_grow
        self.trial_epochs = 0  # epochs trained by the ok members of the packs run
        self.busy_seconds = 0.0  # worker time spent on the packs run
        kept = (recorder.keeper.best or {}).get("val_accuracy")  # recorded before this run
        self.best_val = -math.inf if kept is None else kept  # and raised by each pack's members
        self.idle: list[float] = []  # per stage (a rung, a round): share of slot time idle
        folder = recorder.store.folder
        self.log_dir = None if storage.is_uri(folder) else storage.join(folder, "logs")
        self.live = LivePage(folder)

    @property
    def splits(self) -> Splits:
        """The sweep's data (loaded on first use)."""
        if self._splits is None:
            self._splits = load_dataset(self.config.data)
        return self._splits

    def train(self, trials: Iterable[Trial], budgets: dict[str, int] | None, sink,
              starts: dict | None = None) -> int:
        """Train ``trials`` in packs (``budgets``: epochs per trial now, when not its own;
        ``starts``: the states they go on from); each finished pack goes to
        ``sink.add_pack``. Returns the number of packs."""
        trials = list(trials)
        largest = self.largest(len(trials))
        window = max(WINDOW_TRIALS, 2 * largest * self.slots)
        keep_all = self.config.keep_models == "all"
        return self.stage((pack for chunk in _chunks(trials, window)
                           for pack in make_packs(chunk, largest, budgets, keep_all,
                                                  starts=starts)), sink)

    def train_grid(self, grid: TrialGrid, positions: np.ndarray, recorder: PackRecorder,
                   details_to: str | None) -> int:
        """Train the trials of ``grid`` at ``positions`` in packs that carry positions, not
        trials, made a window at a time (``packs.grid_packs``); their workers build the
        report tables (and write the detail parts to ``details_to``, when it is a folder they
        reach), and each finished pack goes to ``recorder.add_tables``. Returns the number of
        packs."""
        largest = self.largest(len(positions))
        window = max(WINDOW_TRIALS, 2 * largest * self.slots)
        keep_all = self.config.keep_models == "all"
        return self.stage((pack for start in range(0, len(positions), window)
                           for pack in grid_packs(grid, positions[start:start + window],
                                                  largest, keep_all, details_to,
                                                  recorder.labels)), recorder)

    def stage(self, packs: Iterable[Pack], sink) -> int:
        """Run ``packs`` as one stage (a rung, a round, a whole sweep), noting the share of
        slot time it left idle; returns the number of packs."""
        began, busy = time.monotonic(), self.busy_seconds
        ran = self.run_packs(packs, sink)
        if ran:  # the share of the slots' time this stage (a rung, a round) left idle
            slot_seconds = (time.monotonic() - began) * self.slots
            self.idle.append(max(0.0, 1.0 - (self.busy_seconds - busy) / slot_seconds))
        return ran

    def largest(self, count: int) -> int:
        """The most members a pack of ``count`` trials may have (``packs.pack_size_for``)."""
        resources = self.config.resources
        return pack_size_for(count, self.slots, resources.pack_size, resources.num_gpus > 0)

    def run_packs(self, packs: Iterable[Pack], sink: PackSink) -> int:
        """Run ``packs`` (retrying those whose worker died), a bounded number in flight so
        an iterator of a million trials is made as it is needed; each finished one goes to
        ``sink.add_pack``. Returns the number of packs run."""
        import ray

        packs, ran = iter(packs), 0
        pending: dict = {}
        submit = None
        while True:
            while len(pending) < self.in_flight and (pack := next(packs, None)) is not None:
                if submit is None:
                    submit = self._submitter()
                pending[submit(pack)] = (pack, 1)
                ran += 1
            if not pending:
                return ran
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                pack, attempt = pending.pop(ref)
                if self.collect(ref, pack, attempt, sink):
                    pending[submit(pack)] = (pack, attempt + 1)
            if self.progress is not None:
                self.progress.update(self.recorder.store, self.best_val,
                                     sum(len(pack.trials) for pack, _ in pending.values()))
                self.live.tick()

    @property
    def in_flight(self) -> int:
        """Packs submitted at once: each slot's next pack queued behind the one it runs; on
        a cluster that can grow, enough waiting for the autoscaler to see the demand."""
        return max(2 * self.slots, IN_FLIGHT_GROWING if self.cluster_can_grow else 2)

    def _submitter(self):
        import ray

        if self.splits_ref is None:
            self.splits_ref = ray.put(self.splits)
        return _submitter(self.config, self.splits_ref, self.task, self.log_dir)

    def collect(self, ref, pack: Pack, attempt: int, sink) -> bool:
        """Hand the finished pack behind ``ref`` to ``sink``; return True when it should be
        retried (its worker died and retries are left)."""
        import ray
        from ray.exceptions import RayError, RayTaskError


        try:
            outcome = ray.get(ref)
        except RayTaskError as error:
            cause = task_error_cause(error)
            where = self._save_traceback(pack, str(error))
            text = str(cause) if isinstance(cause, PackFailed) else (
                f"{type(cause).__name__}: {cause}")
            _record_failed(sink, pack, f"{text}{where}", attempt)
            return False
        except RayError as error:
            if attempt <= self.config.resources.max_retries:
                return True
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            where = "; worker output in logs/" if self.log_dir else ""
            _record_failed(sink, pack, f"{type(error).__name__}: {message}{where}", attempt)
            return False
        self.busy_seconds += outcome.seconds
        if outcome.tables is not None:
            self._record_tables(pack, outcome, attempt, sink)
            return False
        trial_epochs, best_val = pack_progress(pack, outcome.results)
        self.trial_epochs += trial_epochs
        self.best_val = max(self.best_val, -math.inf if best_val is None else best_val)
        sink.add_pack(pack.pack_id, [MemberRecord.of(trial, result, attempt) for trial, result
                                     in zip(pack.trials, outcome.results)], outcome.placement)
        return False

    def _record_tables(self, pack: Pack, outcome, attempt: int, sink: PackRecorder) -> None:
        """Hand a pack whose worker built its tables to ``sink`` (its attempts set)."""
        tables = outcome.tables if attempt == 1 else outcome.tables.retried(attempt)
        if outcome.best_val is not None:
            self.best_val = max(self.best_val, outcome.best_val)
        self.trial_epochs += outcome.trial_epochs
        kept = {trial_id: result for trial_id, result in zip(  # both in the pack's order
            (row["trial_id"] for row in tables.kept_rows),
            (result for result in outcome.results if result is not None))}
        sink.add_tables(pack.pack_id, tables, kept)

    def _save_traceback(self, pack: Pack, text: str) -> str:
        """Write a failed pack's remote traceback to ``logs/``; return the note for its rows."""
        if self.log_dir is None:
            return ""
        name = f"pack-{pack.pack_id}.log"
        plain = re.sub(r"\x1b\[[0-9;]*m", "", text)  # Ray colours its tracebacks
        storage.write_bytes(storage.join(self.log_dir, name), plain.encode())
        return f" (traceback in logs/{name})"


def _submitter(config: SweepConfig, splits_ref, task, log_dir: str | None):
    from mnist_core.sweep.worker import run_pack_task

    resources = config.resources
    remote = (task or run_pack_task).options(num_cpus=resources.num_cpus,
                                             num_gpus=resources.num_gpus, max_retries=0,
                                             retry_exceptions=False)

    def submit(pack: Pack):
        return remote.remote(pack, splits_ref, resources.num_cpus, log_dir)

    return submit


def _record_failed(sink, pack: Pack, error: str, attempt: int) -> None:
    sink.add_pack(pack.pack_id, [MemberRecord(trial.trial_id, trial.config.as_record(), None,
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
                          "lower num_cpus/num_gpus, or run on a cluster that has them")
    warnings.warn(f"no node can run a pack now ({asked}): packs wait until the autoscaler "
                  "adds nodes", stacklevel=2)
    return 1


class _Progress:
    """A tqdm bar of trials recorded, with failed, running and best validation accuracy (of
    any member trained: with successive halving, a rung's members before the last rung
    records them); each update reads the store's counts (O(1), not per trial)."""

    def __init__(self, total: int, initial: int, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="trial", desc="sweep",
                        disable=not enabled, dynamic_ncols=True)

    def update(self, store: PartStore, best_val: float, pending: int) -> None:
        self.bar.n = store.recorded
        self.bar.set_postfix(failed=store.counts["failed"], pending=pending,
                             best_val=f"{best_val:.4f}" if best_val > -math.inf else "-",
                             refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


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

        from mnist_core.sweep import worker

        try:
            ray.get(getattr(worker, task_name).remote(folder))
        except RayTaskError as error:
            raise task_error_cause(error) from None

    return run


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
