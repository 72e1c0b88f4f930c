"""Exceptions a user can act on, each with the exit code the jobs give it.

Every message is one line that names the file, field or flag at fault. The jobs turn these
into ``error: <message>`` on stderr and ``sys.exit(exit_code)``; nothing else is caught broadly.
"""


class UserError(Exception):
    """Base for errors caused by input the user supplied; never a bug of ours."""

    exit_code = 2


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
