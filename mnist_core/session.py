"""Connecting to Ray: a given address, ``RAY_ADDRESS``, or a local Ray bound to loopback.

No job-wide ``runtime_env`` is set here: a worker needing one cannot come from Ray's pool of
pre-started workers, which costs about 2 s per worker process on a small machine. Workers pin
Keras to TensorFlow themselves (``mnist_core.devices.configure``) before importing it, and jobs
submitted to a cluster get their environment from ``cluster/runtime_env.yaml``.

The console stays ours: workers' output is not forwarded to the driver (``log_to_driver``
off; sweep workers write it to ``<sweep>/logs/``, see ``console``), and Ray's own driver-side
notices below ERROR (its start-up INFO line, the token-authentication WARNING) are not shown.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator

from mnist_core import signals

_connected_here: list[bool] = []  # whether connect() called ray.init in this process


def connect(address: str | None = None, num_cpus: int | None = None) -> str:
    """Connect this process to Ray (once) and return a short description of where. The
    caller's SIGTERM handler stays in place (``ray.init`` installs one of its own that exits
    15; a SIGTERM it catches is raised as ``signals.Terminated`` where the caller has ours).
    A signal while Ray imports and starts is held until it has (``signals.held``)."""
    with signals.held():
        return _connect(address, num_cpus)


def _connect(address: str | None, num_cpus: int | None) -> str:
    import ray

    if ray.is_initialized():
        return "existing Ray session"
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    _connected_here.append(True)
    with _keeping_sigterm_handler():
        if address:
            ray.init(address=address, **quiet)
            return f"Ray cluster at {address}"
        ray.init(num_cpus=num_cpus, dashboard_host="127.0.0.1", include_dashboard=False,
                 **quiet)
        return "local Ray (127.0.0.1)"


@contextlib.contextmanager
def _keeping_sigterm_handler() -> Iterator[None]:
    ours = signals.handles_sigterm()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    except SystemExit as stop:
        if ours and stop.code == signal.SIGTERM:
            raise signals.terminated() from None
        raise
    finally:
        if previous is not None:  # None: a handler set outside Python, left to Ray
            signal.signal(signal.SIGTERM, previous)


def disconnect() -> None:
    """Leave the Ray that ``connect`` joined: a local Ray it started stops with every process
    of it (a session that was there before ``connect`` is left alone)."""
    if not _connected_here:  # nothing to leave: never import Ray on an interrupt's way out
        return
    import ray

    if ray.is_initialized():
        ray.shutdown()
        _connected_here.clear()


def task_error_cause(error) -> BaseException:
    """The exception a remote task or actor method raised, out of Ray's ``RayTaskError``."""
    return error.cause if error.cause is not None else error
