"""Exceptions a user can act on, each with the exit code the jobs give it.

Every message is one line in the library's own words. Where the fault is one field, path or
reference, ``key`` names it (``out``, ``model``, ``learning_rate``) and the message starts with
it; the jobs (``jobs/_cli.py``) turn that key into the flag the user typed (``--out``,
``--learning-rate``). The jobs turn these into ``error: <message>`` on stderr and
``sys.exit(exit_code)``; nothing else is caught broadly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class UserError(Exception):
    """Base for errors caused by input the user supplied; never a bug of ours."""

    exit_code = 2

    def __init__(self, detail: str, key: str | None = None):
        super().__init__(f"{key} {detail}" if key else detail)
        self.detail, self.key = detail, key


class ConfigError(UserError, ValueError):
    """A flag, TOML key or value is wrong (exit 2)."""

    exit_code = 2


class DataNotFoundError(UserError, FileNotFoundError):
    """A data, model or input path does not exist, or a download is impossible (exit 2)."""

    exit_code = 2


class DataFormatError(UserError, ValueError):
    """A file exists but its contents are corrupt or not what we expect (exit 3)."""

    exit_code = 3


class OutputError(UserError):
    """An output folder cannot be created or written, or another run holds it (exit 2)."""

    exit_code = 2


class OutputBusy(OutputError):
    """Another run holds the output folder (exit 2)."""


class RecordingError(OutputError):
    """Writing a sweep's reports or a page failed midway (a full disk, a lost mount); what
    was recorded before is kept and the job can be resumed (exit 2)."""


@contextlib.contextmanager
def recording(folder: str) -> Iterator[None]:
    """Turn a failed write (a full disk, a lost mount) into a one-line ``RecordingError``."""
    try:
        yield
    except OSError as error:
        where = getattr(error, "filename", None) or folder
        reason = error.strerror or str(error).splitlines()[0]
        raise RecordingError(f"{where}: {reason}; every trial recorded before this is kept"
                             ) from None
