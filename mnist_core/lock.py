"""One run per folder: an OS file lock, on a scoring output or a sweep folder, that dies with
its holder.

A local folder is locked through ``<folder>/.lock`` (``fcntl.flock`` via ``filelock``): the
kernel releases it when the process ends, however it ends, so a crashed run never leaves a
stale lock behind. Beside it, ``.lock.holder`` says who holds it (pid, host, start time) so the
run that is turned away can name the holder. An object store has no such lock: for a URI the
lock file lives in this machine's temporary folder, which keeps apart runs on one machine (a
cron host) but not runs on different machines.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from mnist_core import storage
from mnist_core.errors import OutputBusy


@contextlib.contextmanager
def hold(out: str, wait: bool = False,
         on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lock on ``out`` for the ``with`` block. When another process holds it: raise
    ``OutputBusy`` naming the holder, or (``wait``) call ``on_wait(holder)`` and block."""
    from filelock import FileLock, Timeout

    path = _lock_path(out)
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = _holder(path)
        if not wait:
            raise OutputBusy(f"{out} is in use by another run ({holder})") from None
        if on_wait is not None:
            on_wait(holder)
        lock.acquire(timeout=-1)
    try:
        _holder_file(path).write_text(
            f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now():%Y-%m-%d %H:%M:%S}")
        yield
    finally:
        _holder_file(path).unlink(missing_ok=True)
        lock.release()


def _lock_path(out: str) -> Path:
    if not storage.is_uri(out):
        return Path(str(out).removeprefix("file://")) / ".lock"
    folder = Path(tempfile.gettempdir()) / "mnist-ray-locks"
    folder.mkdir(exist_ok=True)
    return folder / f"{hashlib.sha1(str(out).encode()).hexdigest()[:16]}.lock"


def _holder_file(lock: Path) -> Path:
    return lock.with_name(lock.name + ".holder")


def _holder(lock: Path) -> str:
    try:
        return _holder_file(lock).read_text().strip() or "holder unknown"
    except OSError:
        return "holder unknown"
