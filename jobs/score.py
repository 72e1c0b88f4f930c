"""Score image shards with a trained model on a pool of Ray actors, each image exactly once.

    python -m jobs.score --model runs/<sweep_id>/best/model.keras \\
        --input 'data/demo_images/*.parquet' --out scores/demo
    python -m jobs.score --model runs/latest --input 's3://bucket/incoming/*.parquet' \
        --out s3://bucket/scores

Inputs (paths or URIs): Parquet shards (id, image), .npy/.npz arrays of uint8 images, or
folders of PNG/JPEG. Writes predictions/shard=<key>/part-0.parquet, manifest.parquet and
failures.parquet to --out. A rerun scores only new or changed shards, every shard again when
the model changed, and (--retry-failed) the shards with rejected images. One run per --out at
a time. Exit code 0 when --out holds a prediction from this model for every image of the
input, 1 when it holds rejected images or shards for this model (from this run or an earlier
one: the most common reasons are printed, every one is in failures.parquet), 2 for a missing
model or input, images of another size than the model takes, resources the cluster lacks, an
output folder that cannot be written or is in use, 3 for a corrupt model.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Sequence

from jobs._cli import (
    EXIT_OK,
    EXIT_PARTIAL,
    Parser,
    interrupted_exit_code,
    run,
    summary,
)
from mnist_core import lock, storage
from mnist_core.errors import OutputBusy
from mnist_core.scoring.config import ScoreConfig


def build_parser() -> Parser:
    """The job's flags (also the source of docs/reference.md)."""
    parser = Parser(prog="jobs.score", description=summary(__doc__))
    parser.add_argument("--model", required=True,
                        help="a .keras file, a sweep folder, or <out>/latest (path or URI)")
    parser.add_argument("--input", required=True,
                        help="a shard, a folder or a glob (quoted); path or URI")
    parser.add_argument("--out", required=True, help="output folder or URI")
    parser.add_argument("--batch-size", type=int, default=8192, help="rows per predictor call")
    parser.add_argument("--actors", type=int, default=1, help="predictor actors in the pool")
    parser.add_argument("--num-gpus", type=float, default=0.0,
                        help="GPUs per actor (fractions share a GPU)")
    parser.add_argument("--max-retries", type=int, default=2,
                        help="new actors for a shard whose actor process died")
    parser.add_argument("--address", default=None,
                        help="Ray address (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--no-progress", action="store_true",
                        help="a line per committed shard instead of a progress bar (for logs)")
    parser.add_argument("--wait", action="store_true",
                        help="wait for another run that holds --out instead of exiting 2")
    parser.add_argument("--retry-failed", action="store_true",
                        help="score again the shards whose images this model rejected")
    return parser


def parse_args(argv: Sequence[str] | None):
    """Parse the job's flags."""
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; returns the process exit code."""
    args = parse_args(argv)
    config = ScoreConfig(model=args.model, input=args.input, out=args.out,
                         batch_size=args.batch_size, actors=args.actors,
                         num_gpus=args.num_gpus, max_retries=args.max_retries, wait=args.wait,
                         retry_failed=args.retry_failed)
    rerun = shlex.join([sys.executable, "-m", "jobs.score",
                        *(sys.argv[1:] if argv is None else argv)])
    return score(config, rerun, args.address, show_progress=not args.no_progress)


def score(config: ScoreConfig, rerun: str, address: str | None = None,
          show_progress: bool = True) -> int:
    """Check the inputs (before ``--out`` is touched), then check and lock ``--out``, score
    what is pending, print the summary; return the exit code. ``rerun``: the command that
    continues an interrupted run. ``jobs.score_demo`` calls this with its own config."""
    from mnist_core.scoring.driver import check_inputs

    print(f"checking {config.input} against {config.model}", flush=True)  # a first line at once
    inputs = check_inputs(config)
    storage.check_writable(config.out)
    try:
        with lock.hold(config.out, config.wait, on_wait=_print_waiting(config.out)):
            return _score(config, inputs, address, show_progress)
    except OutputBusy as error:
        raise OutputBusy(f"{error}; try again later, or pass --wait", key="out") from None
    except KeyboardInterrupt as interrupt:
        from mnist_core import session

        print(f"interrupted: every shard committed so far is kept; score the rest with\n"
              f"  {rerun}", file=sys.stderr, flush=True)
        session.disconnect()
        return interrupted_exit_code(interrupt)


def _score(config: ScoreConfig, inputs, address: str | None, show_progress: bool) -> int:
    from mnist_core import console, session
    from mnist_core.scoring.driver import check_resources, execute, make_plan
    from mnist_core.scoring.page import write_scoring_report

    print(f"{len(inputs.shards)} shards of images of {inputs.side}x{inputs.side}; loading the "
          "model", flush=True)
    with console.native_output_to(storage.join(config.out, "logs", "score.log")):
        plan = make_plan(config, inputs)
    print(f"model {inputs.model_id}: {inputs.model}", flush=True)
    print(f"{len(plan.pending)} of {len(inputs.shards)} shards to score", flush=True)
    if plan.pending:
        print("starting Ray" if address or os.environ.get("RAY_ADDRESS") else
              "starting local Ray", flush=True)
        print(f"scoring on {session.connect(address)}", flush=True)
        check_resources(config, cluster_can_grow=bool(address or os.environ.get("RAY_ADDRESS")))
    start = time.perf_counter()
    with _ShardProgress(plan.pending, show_progress) as progress:
        summary = execute(plan, on_shard=progress.committed)
    seconds = time.perf_counter() - start
    print(f"{summary.scored_shards} of {summary.shards} shards scored "
          f"({summary.shards - summary.scored_shards} already scored by this model): "
          f"{summary.images} images in {seconds:.1f} s, {summary.failed_rows} rejected")
    print(f"predictions: before {_models(summary.models_before)}; "
          f"now {_models(summary.models_after)}")
    _print_held(summary.held, config.out)
    print(f"output: {config.out} (report: {write_scoring_report(config.out)})")
    return EXIT_OK if summary.held.rejected == 0 else EXIT_PARTIAL


def _print_held(held, out: str) -> None:
    """What --out holds from this model for the input: every run says it, so a rerun that
    scores nothing still reports (and exits 1 for) what earlier runs rejected."""
    print(f"{out} holds {held.images:,} predictions from this model for {held.shards} of the "
          f"input's shards; {held.rejected:,} rejected")
    if not held.rejected:
        return
    for reason, count in held.reasons:
        print(f"  {count:>8,} rejected: {reason}")
    print(f"every rejected image is in {storage.join(out, 'failures.parquet')}; a shard is "
          "scored again when it or the model changes, or with --retry-failed")


class _ShardProgress:
    """A tqdm bar of shards committed (images and rejects alongside), or with the bar off,
    one line per committed shard for logs."""

    def __init__(self, pending: list, enabled: bool):
        from tqdm import tqdm

        self.enabled, self.images, self.rejected = enabled, 0, 0
        self.bar = tqdm(total=len(pending), unit="shard", desc="scoring", disable=not enabled,
                        dynamic_ncols=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()

    def committed(self, shard, images: int, rejected: int) -> None:
        self.images, self.rejected = self.images + images, self.rejected + rejected
        if not self.enabled:
            print(f"committed {shard.path}: {images} images scored, {rejected} rejected",
                  flush=True)
            return
        self.bar.set_postfix(images=f"{self.images:,}", rejected=self.rejected, refresh=False)
        self.bar.update(1)


def _models(counts: dict[str, int]) -> str:
    if not counts:
        return "none"
    return ", ".join(f"model {model} ({shards} shards)" for model, shards in
                     sorted(counts.items(), key=lambda item: -item[1]))


def _print_waiting(out: str):
    def on_wait(holder: str) -> None:
        print(f"waiting for the run that holds {out} ({holder})", flush=True)

    return on_wait


if __name__ == "__main__":
    sys.exit(run(main))
