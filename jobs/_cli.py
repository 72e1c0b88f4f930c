"""What every job shares: a one-line-error argument parser and the exit-code contract.

Exit codes: 0 success; 1 the job ran but some trials or shards failed (reports are complete);
2 a usage error, bad config or missing file; 3 a corrupt data or model file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from mnist_core.errors import ConfigError, UserError

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_CORRUPT = 0, 1, 2, 3


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr and exit code 2."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see --help)\n")


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Call ``main`` and turn a ``UserError`` into its one-line message and exit code."""
    try:
        return main(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


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


def build(factory: Callable, **fields):
    """Build a config dataclass, re-raising its ``ConfigError`` with the flag spelling."""
    try:
        return factory(**fields)
    except ConfigError as error:
        for name in fields:
            message = str(error).replace(name, "--" + name.replace("_", "-"), 1)
            if message != str(error):
                raise ConfigError(message) from None
        raise
