"""What reaches the user's console: our output only.

TensorFlow's C++ start-up lines (absl's "All log messages before absl::InitializeLog()",
oneDNN notices, ``cuInit`` on a machine without a GPU) are written straight to file
descriptors 1 and 2, below Python, and ``TF_CPP_MIN_LOG_LEVEL`` does not silence them all. So
a Ray worker sends its whole output to a log file in the sweep folder (``to_log_file``), and a
job's driver sends what TensorFlow prints while it starts to a log file beside its reports
(``native_output_to``). Our errors name those files.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from mnist_core import storage


def to_log_file(path: str) -> bool:
    """Send this process's stdout and stderr (file descriptors included) to ``path`` for good;
    False (and nothing changed) when the file cannot be opened."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    except OSError:
        return False
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    os.close(handle)
    return True


@contextlib.contextmanager
def native_output_to(path: str | None) -> Iterator[None]:
    """Within the block, send what is written to file descriptors 1 and 2 to ``path`` (a
    local file; ``None`` or an unwritable path leaves the console as it is)."""
    handle = _open(path)
    if handle is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for descriptor in (*saved, handle):
            os.close(descriptor)


def _open(path: str | None) -> int | None:
    if path is None or storage.is_uri(path):
        return None
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    except OSError:
        return None
