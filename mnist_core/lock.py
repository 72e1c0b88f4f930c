"""One run per folder: an OS file lock, on a scoring output or a sweep folder, that dies with
its holder.

A local folder is locked through ``<folder>/.lock`` (``fcntl.flock`` via ``filelock``): the
kernel releases it when the process ends, however it ends, so a crashed run never leaves a
stale lock behind. Beside it, ``.lock.holder`` says who holds it (pid, host, start time) so the
run that is turned away can name the holder.

An ``s3://`` folder is locked through an object, ``<folder>/.lock``, created with S3's
conditional write (``If-None-Match: *``: of two runs on any machines, one creates it) and held
as a lease: the holder rewrites it every ``RENEW_SECONDS`` with ``If-Match`` on its own ETag,
pushing its expiry ``LEASE_SECONDS`` ahead, and deletes it when done. A run that finds an
expired lease (its holder crashed) takes it over with ``If-Match`` on the ETag it read, so two
runs never both take it. Other object stores (``gs://``) have no such lock here: their lock
file lives in this machine's temporary folder, which keeps apart runs on one machine only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from mnist_core import storage
from mnist_core.errors import OutputBusy

LEASE_SECONDS = 120
RENEW_SECONDS = 30
POLL_SECONDS = 5


@contextlib.contextmanager
def hold(out: str, wait: bool = False,
         on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lock on ``out`` for the ``with`` block. When another process holds it: raise
    ``OutputBusy`` naming the holder, or (``wait``) call ``on_wait(holder)`` and block."""
    if str(out).startswith("s3://"):
        with _ObjectLease(str(out)).held(wait, on_wait):
            yield
        return
    with _file_lock(out, wait, on_wait):
        yield


@contextlib.contextmanager
def _file_lock(out: str, wait: bool, on_wait) -> Iterator[None]:
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
        _holder_file(path).write_text(_me())
        yield
    finally:
        _holder_file(path).unlink(missing_ok=True)
        lock.release()


def _lock_path(out: str) -> Path:
    """``<out>/.lock`` for a local folder; for another object store, a file in this machine's
    temporary folder named after the URI."""
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


def _me() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now():%Y-%m-%d %H:%M:%S}"


class _ObjectLease:
    """The lease on an ``s3://`` folder: the object ``<folder>/.lock`` holding who has it and
    until when (JSON), written only with S3's conditional writes."""

    def __init__(self, out: str):
        import boto3

        bucket, _, prefix = out.removeprefix("s3://").partition("/")
        self.out, self.bucket = out, bucket
        self.key = f"{prefix.rstrip('/')}/.lock" if prefix.strip("/") else ".lock"
        self.client = boto3.client("s3")
        self.etag: str | None = None
        self.stop = threading.Event()

    @contextlib.contextmanager
    def held(self, wait: bool, on_wait) -> Iterator[None]:
        """Take the lease (or raise ``OutputBusy``, or wait), renew it while the block runs,
        and give it back."""
        self._take(wait, on_wait)
        renewer = threading.Thread(target=self._renew, daemon=True, name="lock-lease")
        renewer.start()
        try:
            yield
        finally:
            self.stop.set()
            renewer.join()
            self._give_back()

    def _take(self, wait: bool, on_wait) -> None:
        told = False
        while not self._try_take():
            holder = self._holder_text()
            if not wait:
                raise OutputBusy(f"{self.out} is in use by another run ({holder})")
            if on_wait is not None and not told:
                on_wait(holder)
                told = True
            time.sleep(POLL_SECONDS)

    def _try_take(self) -> bool:
        """Create the lease object, or take over one whose lease ran out; False when another
        run holds it (or won the race for it)."""
        if self._put(IfNoneMatch="*"):
            return True
        current = self._read()
        if current is None or current[1]["expires"] > time.time():
            return False
        return self._put(IfMatch=current[0])

    def _renew(self) -> None:
        while not self.stop.wait(RENEW_SECONDS):
            if self.etag is None or not self._put(IfMatch=self.etag):
                return  # lost: another run took over an expired lease

    def _give_back(self) -> None:
        current = self._read()
        if current is not None and current[0] == self.etag:
            self.client.delete_object(Bucket=self.bucket, Key=self.key)

    def _put(self, **condition) -> bool:
        from botocore.exceptions import ClientError

        body = json.dumps({"holder": _me(), "expires": time.time() + LEASE_SECONDS})
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=self.key,
                                              Body=body.encode(), **condition)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412",
                        "409", "404"):
                return False
            raise
        self.etag = response["ETag"]
        return True

    def _read(self) -> tuple[str, dict] | None:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError:
            return None
        try:
            return response["ETag"], json.loads(response["Body"].read())
        except ValueError:
            return response["ETag"], {"holder": "holder unknown", "expires": 0}

    def _holder_text(self) -> str:
        current = self._read()
        return current[1].get("holder", "holder unknown") if current else "holder unknown"
