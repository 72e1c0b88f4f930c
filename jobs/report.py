"""Rebuild the HTML report of a sweep or a scoring run from its files.

    python -m jobs.report runs/<sweep_id>        # -> runs/<sweep_id>/report.html
    python -m jobs.report scores/demo            # -> scores/demo/report.html

Works for old sweeps, running sweeps (what has finished so far) and scoring folders: the
page is built from the Parquet files alone, and opens from disk with no server or network.
Exit code 0, or 2 when the folder holds neither a sweep nor a scoring run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jobs._cli import Parser, run, summary
from mnist_core import storage
from mnist_core.errors import DataNotFoundError


def build_parser() -> Parser:
    """The job's flags (also the source of docs/reference.md)."""
    parser = Parser(prog="jobs.report", description=summary(__doc__))
    parser.add_argument("folder", help="a sweep folder or a scoring --out (path or URI)")
    return parser


def parse_args(argv: Sequence[str] | None):
    """Parse the job's flags."""
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the report; returns the process exit code."""
    from mnist_core.scoring.page import write_scoring_report
    from mnist_core.sweep.page import write_sweep_report

    folder = parse_args(argv).folder.rstrip("/")
    if storage.exists(storage.join(folder, "sweep.toml")):
        location = write_sweep_report(folder)
    elif storage.exists(storage.join(folder, "manifest.parquet")):
        location = write_scoring_report(folder)
    else:
        raise DataNotFoundError(f"{folder}: neither a sweep (sweep.toml) nor a scoring run "
                                "(manifest.parquet)")
    print(f"report: {location}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
