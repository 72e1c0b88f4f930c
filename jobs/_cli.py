"""What every job shares: a one-line-error argument parser and the exit-code contract.

Exit codes: 0 success; 1 the job ran but some trials or shards failed (reports are complete);
2 a usage error, bad config or missing file; 3 a corrupt data or model file; 130 interrupted
(SIGINT, Ctrl-C), 143 terminated (SIGTERM: what Kubernetes and ``ray job stop`` send). Both
signals are handled alike (``mnist_core.signals``): the job stops submitting work, keeps what
finished, stops the Ray it started and prints how to go on. ``jobs/__init__`` makes SIGTERM an
exit 143 already while a job's modules are imported, before ``run`` takes over.

The library names fields, paths and references by their key (``out``, ``learning_rate``); this
is the one place that turns a key into the flag a user typed (``--out``, ``--learning-rate``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from mnist_core import signals
from mnist_core.errors import UserError
from mnist_core.signals import interrupted_exit_code, stop_on_sigterm

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_CORRUPT = 0, 1, 2, 3
__all__ = ["EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "EXIT_CORRUPT", "Parser", "flag",
           "int_list", "interrupted_exit_code", "message", "run", "stop_on_sigterm"]


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr and exit code 2, and whose
    help shows every flag's default (``_HelpFormatter``)."""

    def __init__(self, **kwargs):
        super().__init__(formatter_class=_HelpFormatter, **kwargs)

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see --help)\n")


class _HelpFormatter(argparse.HelpFormatter):
    """Each flag's default after its help, as a user would type it (``10,10``, not
    ``(10, 10)``); none for a flag without one, or whose help already says it."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        default = action.default
        if "(default" in text or default in (None, False, argparse.SUPPRESS):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, tuple | list) else default
        return f"{text} (default: {str(shown).replace('%', '%%')})"


def summary(doc: str) -> str:
    """The first paragraph of a job's docstring, as one line: its ``--help`` description."""
    return " ".join(doc.strip().split("\n\n")[0].split())


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
        signals.stop_if_received()  # one that an import swallowed before the handler was ours
        return main(argv)
    except UserError as error:
        print(f"error: {message(error)}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as interrupt:
        print("interrupted", file=sys.stderr)
        return interrupted_exit_code(interrupt)
    except Exception:
        code = signals.received()
        if code is None:
            raise
        print("interrupted", file=sys.stderr)  # a library turned the signal into its own error
        return code


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
