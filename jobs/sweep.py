"""Run a hyperparameter sweep of the dense model as parallel Ray tasks.

    python -m jobs.sweep --config configs/quick.toml
    python -m jobs.sweep --config configs/mnist_seed.toml --address ray://head:10001
    python -m jobs.sweep --resume quick-20261128-153000        # after an interrupted run

Reports land in ``<out>/<sweep_id>/`` (see docs/reports.md). Exit code 0 when every trial is
ok, 1 when some failed (the reports are still complete), 2 for a bad config or flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from jobs._cli import (
    EXIT_OK,
    EXIT_PARTIAL,
    Parser,
    interrupted_exit_code,
    run,
    summary,
)
from mnist_core import lock, storage
from mnist_core.config import hyperparameter_text
from mnist_core.errors import (
    ConfigError,
    DataNotFoundError,
    OutputBusy,
    RecordingError,
    UserError,
)
from mnist_core.reports import describe_selection
from mnist_core.sweep.checks import check_fits_data
from mnist_core.sweep.config import SWEEP_ID, SweepConfig, load_sweep_config, parse_sweep_config
from mnist_core.sweep.ranking import describe_choice
from mnist_core.sweep.recording import claim_sweep_folder
from mnist_core.sweep.refit import describe_kept_seed

DEFAULT_MLFLOW = "default"  # [tracking] mlflow = "default" or a bare --mlflow: <out>/mlflow.db


def sweep_id(text: str) -> str:
    """A ``--resume`` value: a sweep's id (the folder's name under --out), never a path."""
    if not SWEEP_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a sweep id (the name of a folder under --out, e.g. "
            "quick-20261128-153000)")
    return text


def build_parser() -> Parser:
    """The job's flags (also the source of docs/reference.md)."""
    parser = Parser(prog="jobs.sweep", description=summary(__doc__))
    parser.add_argument("--config", help="sweep TOML (required unless --resume)")
    parser.add_argument("--out", default="runs", help="folder or URI for sweep reports")
    parser.add_argument("--address", default=None,
                        help="Ray address (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--resume", metavar="SWEEP_ID", type=sweep_id,
                        help="finish an interrupted sweep: run only its missing trials")
    parser.add_argument("--wait", action="store_true",
                        help="when another driver runs this sweep, wait for it instead of "
                             "exiting 2")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--mlflow", metavar="URI", nargs="?", const=DEFAULT_MLFLOW,
                        help="log to this MLflow tracking URI (an MLflow server, "
                             "sqlite:///path.db); bare --mlflow: a SQLite store in --out "
                             "(<out>/mlflow.db, artifacts in <out>/mlartifacts); overrides "
                             "[tracking] mlflow")
    parser.add_argument("--tensorboard", metavar="DIR",
                        help="write TensorBoard event files under DIR "
                             "(overrides [tracking] tensorboard)")
    return parser


def parse_args(argv: Sequence[str] | None):
    """Parse the job's flags."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.config and not args.resume:
        parser.error("--config is required (or --resume SWEEP_ID)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; returns the process exit code."""
    args = parse_args(argv)
    config = _with_tracking(_load_config(args), args)
    storage.check_writable(args.out)
    print(f"sweep {args.resume or config.name}: {config.trial_count:,} trials on "
          f"{config.data.dataset}; loading the data", flush=True)  # a first line at once
    splits = _load_data(config)
    check_fits_data(config.space, len(splits.x_train))
    sweep = args.resume or claim_sweep_folder(
        args.out, f"{config.name}-{datetime.now():%Y%m%d-%H%M%S}")
    folder = storage.join(args.out, sweep)
    if not args.resume:  # with the folder: a stop at any moment leaves a resumable sweep
        storage.write_bytes(storage.join(folder, "sweep.toml"), config.source_text.encode())
    try:
        with lock.hold(folder, args.wait, on_wait=_print_waiting(sweep)):
            return _run(config, splits, sweep, args)
    except OutputBusy as error:
        raise OutputBusy(f"sweep {error}; try again later, or pass --wait") from None


def _load_data(config: SweepConfig):
    """The sweep's data, loaded before Ray and before any folder: bad data is one line naming
    its ``[sweep]`` key. What a download or TensorFlow prints goes to a temporary log, kept
    (and named) only when loading fails for a reason of its own."""
    from mnist_core import console
    from mnist_core.data import load_dataset

    handle, name = tempfile.mkstemp(prefix="mnist-ray-data-", suffix=".log")
    os.close(handle)
    log = Path(name)
    try:
        with console.native_output_to(str(log)):
            splits = load_dataset(config.data)
    except UserError as error:  # a sweep's data keys live in its TOML, not in flags
        log.unlink(missing_ok=True)
        if error.key is None:
            raise
        raise type(error)(f"[sweep] {error.key} {error.detail}") from None
    except Exception:
        print(f"loading the data failed; its log: {log}", file=sys.stderr)
        raise
    log.unlink(missing_ok=True)
    return splits


def _run(config: SweepConfig, splits, sweep: str, args) -> int:
    """Connect to Ray, run the sweep, print the summary (or, interrupted, how to go on)."""
    from mnist_core import session
    from mnist_core.sweep.driver import run_sweep

    page = storage.join(args.out, sweep, "report.html")
    print(f"folder: {storage.join(args.out, sweep)} (page: {page}, live while the sweep runs)",
          flush=True)
    print(f"starting {'Ray' if args.address or os.environ.get('RAY_ADDRESS') else 'local Ray'}"
          " (workers then load TensorFlow)", flush=True)
    print(f"sweep {sweep}: {config.trial_count} trials on {session.connect(args.address)}",
          flush=True)
    try:
        summary = run_sweep(config, args.out, sweep, show_progress=not args.no_progress,
                            cluster_can_grow=bool(args.address or os.environ.get("RAY_ADDRESS")),
                            splits=splits)
    except KeyboardInterrupt as interrupt:
        print(f"interrupted: finished trials are in the reports; continue with\n"
              f"  {resume_command(sweep, args.out)}", file=sys.stderr, flush=True)
        session.disconnect()
        return interrupted_exit_code(interrupt)
    except RecordingError as error:
        raise RecordingError(f"{error}; free space, then resume: "
                             f"{resume_command(sweep, args.out)}") from None
    _print_summary(summary, config)
    return EXIT_OK if summary.failed == 0 else EXIT_PARTIAL


def resume_command(sweep_id: str, out: str) -> str:
    """The command that finishes sweep ``sweep_id``, with the interpreter that ran this one."""
    return f"{sys.executable} -m jobs.sweep --resume {sweep_id} --out {out}"


def _with_tracking(config: SweepConfig, args) -> SweepConfig:
    """The config's tracking with the flags' overrides, the default MLflow store placed in
    --out (never the working directory)."""
    flags = {key: value for key, value in (("mlflow", args.mlflow),
                                           ("tensorboard", args.tensorboard)) if value}
    tracking = dataclasses.replace(config.tracking, **flags)
    if tracking.mlflow == DEFAULT_MLFLOW:
        if storage.is_uri(args.out):
            raise ConfigError("needs a tracking URI (an MLflow server) when --out is a URI",
                              key="mlflow")
        store = Path(args.out).resolve() / "mlflow.db"
        tracking = dataclasses.replace(tracking, mlflow=f"sqlite:///{store}")
    return dataclasses.replace(config, tracking=tracking)


def _print_waiting(sweep: str):
    def on_wait(holder: str) -> None:
        print(f"waiting for the driver that runs sweep {sweep} ({holder})", flush=True)

    return on_wait


def _load_config(args) -> SweepConfig:
    """The config of a new sweep (``--config``), or the one stored with ``--resume``'s."""
    if not args.resume:
        return load_sweep_config(args.config)
    stored = storage.join(args.out, args.resume, "sweep.toml")
    if not storage.exists(stored):
        raise DataNotFoundError(f"{args.resume}: no sweep at {stored}", key="resume")
    text = storage.read_bytes(stored).decode()
    if args.config and load_sweep_config(args.config).source_text != text:
        raise ConfigError(f"--config {args.config} differs from the config of sweep "
                          f"{args.resume}; resume without --config")
    try:
        return parse_sweep_config(text)
    except ConfigError as error:
        raise ConfigError(f"{stored}: {error}") from None


def _print_summary(summary, config: SweepConfig) -> None:
    pruned = f"{summary.pruned} pruned, " if summary.pruned else ""
    print(f"\n{summary.ok} ok, {pruned}{summary.failed} failed of {summary.total} trials "
          f"({summary.ran_now} run now in {summary.packs} packs, {summary.trial_epochs:,} "
          "trial-epochs)")
    if len(summary.stage_idle) > 1:
        stage = "rung" if config.halving else "round"
        print(f"worker slots idle at each {stage}'s barrier: " + ", ".join(
            f"{stage} {index} {share:.0%}" for index, share in enumerate(summary.stage_idle)))
    if summary.diverged:
        print(f"{summary.diverged} of the ok trials trained to chance level (validation "
              "accuracy near 1/10): flagged on the page")
    if summary.choice is not None and (summary.choice["chosen_by"] != "validation"
                                       or "error" in summary.choice):
        print(describe_choice(summary.choice))
    if summary.selection is not None:
        print(f"best {describe_selection(summary.selection)}")
    if summary.refit is not None:
        print(_describe_refit(summary.refit))
    names = config.grid_names or ["learning_rate", "epochs"]
    if summary.top:
        print(f"top {len(summary.top)} by validation accuracy:")
        _print_table(summary.top, [*names, "best_epoch", "val_accuracy", "test_accuracy"])
    if summary.settings:
        print(f"top {len(summary.settings)} settings by mean validation accuracy over seeds "
              "(mean ± std; trial_id: the setting's best seed):")
        rows = [record | _seed_cells(record) for record in summary.settings]
        _print_table(rows, [*(name for name in names if name != "seed"), "seeds",
                            "val_accuracy", "test_accuracy"])
    print(f"reports: {summary.folder} (open {storage.join(summary.folder, 'report.html')})")
    for line in summary.tracked:
        print(line)


def _seed_cells(record: dict) -> dict:
    return {"trial_id": record["trial_id"], "seeds": record["seeds"],
            **{name: f"{record[name + '_mean']:.4f}±{record[name + '_std']:.4f}"
               for name in ("val_accuracy", "test_accuracy")}}


def _print_table(rows: list[dict], columns: list[str]) -> None:
    widths = [max(len(name), 10) for name in columns]
    print(f"{'trial_id':<15} " + " ".join(f"{name:>{width}}"
                                          for name, width in zip(columns, widths)))
    for row in rows:
        print(f"{row['trial_id']:<15} " + " ".join(
            f"{_cell(row.get(name, '')):>{width}}" for name, width in zip(columns, widths)))


def _describe_refit(refit: dict) -> str:
    if "error" in refit:
        return (f"refit of {refit['trial_id']} failed ({refit['error']}): best/model.keras is "
                "the validation-time model")
    kept = describe_kept_seed(refit)
    return (f"refit: {refit['trial_id']} trained again on training + validation "
            f"({refit['train_images']:,} images, {refit['epochs']} epochs"
            f"{'; ' + kept if kept else ''}): test accuracy {refit['test_accuracy']:.4f}; "
            "that model is best/model.keras")


def _cell(value) -> str:
    value = hyperparameter_text(value)
    if isinstance(value, float):
        return f"{value:.4f}" if 0.001 <= abs(value) < 1 else f"{value:.4g}"
    return str(value)


if __name__ == "__main__":
    sys.exit(run(main))
