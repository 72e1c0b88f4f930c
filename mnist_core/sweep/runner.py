"""Running packs: one Ray task per pack, gathered with ``ray.wait``, retried when a worker dies.

``PackRun`` is the driver's ``packs.PackRunner``: it submits a bounded number of packs at a
time (an iterator of a million trials is made as it is needed), hands each finished one to
its sink, resubmits a pack whose worker process or node died up to ``max_retries`` times (so
each trial's ``attempts`` is exact; Ray's own task retries are off for the same reason), and
records the members of a pack that raised ``failed`` with the error, never retried. The data
is ``ray.put`` once; every task receives the same reference. ``LivePage`` rebuilds the page
while it runs; ``Progress`` is the console's one bar.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from mnist_core import storage
from mnist_core.data import Splits, load_dataset
from mnist_core.errors import ConfigError, UserError
from mnist_core.memory import release_unused
from mnist_core.session import task_error_cause
from mnist_core.sweep.config import SweepConfig
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
from mnist_core.sweep.recording import MemberRecord, PackRecorder, PartStore
from mnist_core.sweep.trials import Trial, TrialGrid

WINDOW_TRIALS = 16_384  # trials grouped into packs at a time (made as they are needed)


IN_FLIGHT_GROWING = 32  # packs submitted at once where an autoscaler may add nodes


class LivePage:
    """``report.html`` rebuilt from the finished packs while a sweep runs (the page reloads
    itself): first once the first packs are on their way (not before: the workers' start
    would wait for it), then at most every ``INTERVAL`` seconds, and never more often than
    ``COST_FACTOR`` times what a rebuild took, so a huge sweep spends at most a twentieth of
    its driver on it (a million trials' page, about 3 s to build, is rebuilt about once a
    minute)."""

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
class RunSetup:
    """How the driver runs: may the cluster grow, the pack task, a progress bar, the data."""

    cluster_can_grow: bool
    task: object
    show_progress: bool
    splits: Splits | None


class PackRun:
    """What training packs needs: the config, the sweep's recorder, slots, the task, progress."""

    def __init__(self, config: SweepConfig, recorder: PackRecorder, slots: int,
                 setup: RunSetup, progress: Progress | None):
        self.config, self.recorder, self.slots, self.progress = config, recorder, slots, progress
        self.task, self._splits, self.splits_ref = setup.task, setup.splits, None
        self.cluster_can_grow = setup.cluster_can_grow
        self.trial_epochs = 0  # epochs trained by the ok members of the packs run
        self.busy_seconds = 0.0  # worker time spent on the packs run
        kept = (recorder.checkpoint.best or {}).get("val_accuracy")  # recorded before this run
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


def slots_for(config: SweepConfig, cluster_can_grow: bool) -> int:
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


class Progress:
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


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
