"""The Ray task that runs one trial on a worker, and what it reports about where it ran.

The task is defined at module level with ``max_calls=0`` so a worker process is reused across
trials even when they ask for GPUs (Ray otherwise retires a GPU task's process after one call):
TensorFlow's import and start-up are paid once per process, which ``worker_setup_seconds``
shows (non-zero only on a process's first trial).

A test-only fault hook: when ``MNIST_CORE_FAULTS`` names a folder, a file
``<sweep_id>.<trial_id>.crash`` there makes the worker process exit mid-trial once (the file is
removed first, so the retry succeeds), and ``<sweep_id>.<trial_id>.raise`` makes the trial raise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import ray

from mnist_core.config import TrialConfig
from mnist_core.data import Splits
from mnist_core.trial import TrialResult

FAULTS_ENV = "MNIST_CORE_FAULTS"


@dataclass(frozen=True, eq=False)
class TrialOutcome:
    """A trial's result plus the node, GPUs and worker process it ran on."""

    result: TrialResult
    node: str
    gpu_ids: tuple[str, ...]
    worker_pid: int
    worker_setup_seconds: float


@ray.remote(max_calls=0)
def run_trial_task(sweep_id: str, trial_id: str, config: TrialConfig, splits: Splits,
                   num_cpus: float) -> TrialOutcome:
    """Set up TensorFlow for this worker (once), run the trial, return its outcome."""
    from mnist_core import devices
    from mnist_core.trial import run_trial

    gpu_ids = tuple(str(gpu) for gpu in ray.get_gpu_ids())
    setup = devices.configure(num_cpus=max(1, int(num_cpus)), use_gpu=bool(gpu_ids))
    _inject_fault(sweep_id, trial_id)
    result = run_trial(config, splits)
    return TrialOutcome(
        result=result,
        node=ray.get_runtime_context().get_node_id(),
        gpu_ids=gpu_ids,
        worker_pid=os.getpid(),
        worker_setup_seconds=setup.seconds,
    )


def _inject_fault(sweep_id: str, trial_id: str) -> None:
    folder = os.environ.get(FAULTS_ENV)
    if not folder:
        return
    crash = Path(folder) / f"{sweep_id}.{trial_id}.crash"
    if crash.exists():
        crash.unlink()
        os._exit(1)
    if (Path(folder) / f"{sweep_id}.{trial_id}.raise").exists():
        raise RuntimeError(f"injected fault in trial {trial_id}")
