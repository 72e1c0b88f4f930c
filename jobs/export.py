"""Export a sweep to another tool: an Optuna study (for optuna-dashboard and
``optuna.visualization``).

    python -m jobs.export optuna --storage sqlite:///optuna.db runs/<sweep_id>
    optuna-dashboard sqlite:///optuna.db

Exit code 0, 2 for a folder that holds no sweep or a study name already taken, 3 for a
corrupt report file.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jobs._cli import Parser, run, summary
from mnist_core import storage
from mnist_core.errors import DataNotFoundError


def build_parser() -> Parser:
    """The job's flags (also the source of docs/reference.md)."""
    parser = Parser(prog="jobs.export", description=summary(__doc__))
    parser.add_argument("format", choices=["optuna"], help="what to export to")
    parser.add_argument("folder", help="a sweep folder (path or URI)")
    parser.add_argument("--storage", required=True,
                        help="the Optuna storage URL, e.g. sqlite:///optuna.db")
    parser.add_argument("--study-name", default=None,
                        help="the study's name (default: the sweep's id)")
    return parser


def parse_args(argv: Sequence[str] | None):
    """Parse the job's flags."""
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Export the sweep; returns the process exit code."""
    args = parse_args(argv)
    folder = args.folder.rstrip("/")
    config = storage.join(folder, "sweep.toml")
    if not storage.exists(config):
        raise DataNotFoundError(f"{folder}: not a sweep folder (no sweep.toml)")
    from mnist_core.sweep.optuna_export import export_study
    from mnist_core.sweep.reading import read_sweep

    name = args.study_name or storage.name(folder)
    count = export_study(storage.read_bytes(config).decode(), read_sweep(folder), args.storage,
                         name)
    print(f"study {name}: {count} trials in {args.storage} "
          f"(optuna-dashboard {args.storage})")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
