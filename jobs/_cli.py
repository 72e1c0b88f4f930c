"""What every job shares: a one-line-error argument parser and the exit-code contract.

Exit codes: 0 success; 1 the job ran but some trials or shards failed (reports are complete);
2 a usage error, bad config or missing file; 3 a corrupt data or model file; 130 interrupted
(SIGINT, Ctrl-C), 143 terminated (SIGTERM: what Kubernetes and ``ray job stop`` send). Both
signals are handled alike: the job stops submitting work, keeps what finished, stops the Ray
it started and prints how to go on.

The library names fields, paths and references by their key (``out``, ``learning_rate``); this
is the one place that turns a key into the flag a user typed (``--out``, ``--learning-rate``).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence

from mnist_core.errors import UserError

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_CORRUPT = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C raises ``KeyboardInterrupt``."""


def stop_on_sigterm() -> None:
    """Make SIGTERM raise ``Terminated``. Call it again after Ray starts: Ray's core installs
    a SIGTERM handler of its own that dumps a stack trace and dies."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def interrupted_exit_code(interrupt: KeyboardInterrupt) -> int:
    """143 for SIGTERM, 130 for Ctrl-C."""
    return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr and exit code 2, and whose
    help shows every flag's default."""

    def __init__(self, **kwargs):
        super().__init__(formatter_class=argparse.ArgumentDefaultsHelpFormatter, **kwargs)

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see --help)\n")


def flag(key: str) -> str:
    """The command-line flag of a config key: ``learning_rate`` -> ``--learning-rate``."""
    return "--" + key.replace("_", "-")


def message(error: UserError) -> str:
    """The error's one line, its key (if any) spelled as the flag."""
    return f"{flag(error.key)} {error.detail}" if error.key else str(error)


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Call ``main`` and turn a ``UserError`` into its one-line message and exit code, and
    SIGINT or SIGTERM before the job handles them into 130 or 143."""
    try:
        stop_on_sigterm()
        return main(argv)
    except UserError as error:
        print(f"error: {message(error)}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as interrupt:
        print("interrupted", file=sys.stderr)
        return interrupted_exit_code(interrupt)


def int_list(text: str) -> tuple[int, ...]:
    """Parse ``"128,64"`` into ``(128, 64)`` for flags such as ``--hidden-units``."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values
