"""Test helper: kill a whole process session, as a crash of the machine's job would.

A job started with ``start_new_session=True`` leads its own session; Ray's GCS, raylet and
workers started by it stay in that session (workers in process groups of their own). Killing
every member and waiting for them to vanish means no straggler can write after the "crash".
"""

import contextlib
import os
import signal
import time
from pathlib import Path


def session_members(leader: int) -> list[int]:
    """Pids of the live processes whose session id is ``leader``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == leader and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def kill_session(leader: int, timeout: float = 30) -> None:
    """SIGKILL every process of the session led by ``leader`` and wait until none is left."""
    deadline = time.monotonic() + timeout
    while members := session_members(leader):
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes {members} of session {leader} survived SIGKILL")
        time.sleep(0.1)


def crash_when(command: list[str], pattern: str, root: Path, rows: int = 1,
               timeout: float = 240, ready=None) -> Path:
    """Run ``command`` in a session of its own; once a Parquet file matching ``root/pattern``
    holds ``rows`` rows (or ``ready(table)`` says so), kill the whole session, as a crash
    would. Return that file."""
    import subprocess

    from mnist_core import storage

    job = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env={**os.environ, "RAY_ADDRESS": ""})
    deadline = time.monotonic() + timeout
    found = None
    while time.monotonic() < deadline and job.poll() is None:
        found = next(iter(sorted(root.glob(pattern))), None)
        # Read the bytes once: the job replaces this file while we poll, and a reader that
        # opens the path twice could mix the old file's footer with the new file's pages.
        if found is not None:
            table = storage.read_table(str(found))
            if ready(table) if ready is not None else table.num_rows >= rows:
                break
        time.sleep(0.1)
    kill_session(job.pid)
    job.wait()
    if found is None:
        raise AssertionError(f"{command} wrote no {pattern} before it ended")
    return found


def terminate_when(command: list[str], pattern: str, root: Path, rows: int = 1,
                   timeout: float = 240) -> tuple[int, str, list[int]]:
    """Run ``command`` in a session of its own; once a Parquet file matching ``root/pattern``
    holds ``rows`` rows, send the job SIGTERM (as Kubernetes stops a pod) and wait for it.
    Return its exit code, its stderr, and the processes of its session still alive 30 s
    later (then kill those, so no test leaks them)."""
    from mnist_core import storage

    def ready() -> bool:
        found = next(iter(sorted(root.glob(pattern))), None)
        return found is not None and storage.read_table(str(found)).num_rows >= rows

    return signal_when(command, ready, timeout=timeout)


def signal_when(command: list[str], ready, sent: int = signal.SIGTERM,
                timeout: float = 240) -> tuple[int, str, list[int]]:
    """Run ``command`` in a session of its own; as soon as ``ready()`` is true, send the job
    ``sent`` and wait for it. Return its exit code, its stderr, and the processes of its
    session still alive 30 s later (then kill those, so no test leaks them)."""
    import subprocess

    job = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "RAY_ADDRESS": ""})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and job.poll() is None:
        if ready():
            break
        time.sleep(0.05)
    job.send_signal(sent)
    _, stderr = job.communicate(timeout=120)
    deadline = time.monotonic() + 30
    while (left := session_members(job.pid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    kill_session(job.pid)
    return job.returncode, stderr, left


_HOLDER = """
import sys
from mnist_core import lock
with lock.hold(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def hold_lock(folder, env: dict | None = None):
    """A process holding ``lock.hold(folder)`` until its stdin closes (``communicate("")``);
    returned once it holds the lock."""
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=env)
    assert holder.stdout.readline().strip() == "held"
    return holder
