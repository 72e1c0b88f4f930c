"""Score image shards with a trained model on Ray Data: resumable, exactly once per image.

    python -m jobs.score --model runs/<sweep_id>/best/model.keras \\
        --input 'data/demo_images/*.parquet' --out scores/demo
    python -m jobs.score --model model.keras --input images/ --out scores/pngs --actors 2

Inputs: Parquet shards (id, image), .npy/.npz arrays of uint8 images, or folders of PNG/JPEG.
Writes predictions/shard=<key>/part-0.parquet, manifest.parquet and failures.parquet to --out.
A rerun scores only new or changed shards. Exit code 0 when every image was scored, 1 when
some images or shards were rejected (see failures.parquet), 2 for a missing model or input.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from jobs._cli import EXIT_OK, EXIT_PARTIAL, Parser, build, run
from mnist_core.scoring import ScoreConfig


def parse_args(argv: Sequence[str] | None):
    """Parse the job's flags."""
    parser = Parser(prog="jobs.score", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a .keras model file")
    parser.add_argument("--input", required=True, help="a shard, a folder or a glob (quoted)")
    parser.add_argument("--out", required=True, help="output folder or URI")
    parser.add_argument("--batch-size", type=int, default=8192, help="rows per predictor call")
    parser.add_argument("--actors", type=int, default=1, help="predictor actors in the pool")
    parser.add_argument("--num-gpus", type=float, default=0.0,
                        help="GPUs per actor (fractions share a GPU)")
    parser.add_argument("--address", default=None,
                        help="Ray address (default: $RAY_ADDRESS, else a local Ray)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; returns the process exit code."""
    args = parse_args(argv)
    config = build(ScoreConfig, model=args.model, input=args.input, out=args.out,
                   batch_size=args.batch_size, actors=args.actors, num_gpus=args.num_gpus)
    from mnist_core import scoring, session

    work = scoring.plan(config)
    print(f"{len(work.pending)} of {len(work.shards)} shards to score with model "
          f"{work.model_id}", flush=True)
    if work.pending:
        print(f"scoring on {session.connect(args.address)}", flush=True)
    start = time.perf_counter()
    summary = scoring.execute(work, on_shard=_print_shard)
    seconds = time.perf_counter() - start
    print(f"{summary.scored_shards} of {summary.shards} shards scored "
          f"({summary.shards - summary.scored_shards} already in the manifest): "
          f"{summary.images} images in {seconds:.1f} s, {summary.failed_rows} rejected; "
          f"model {summary.model_id}")
    print(f"output: {config.out}")
    return EXIT_OK if summary.failed_rows == 0 else EXIT_PARTIAL


def _print_shard(shard, images: int, rejected: int) -> None:
    print(f"committed {shard.path}: {images} images scored, {rejected} rejected", flush=True)


if __name__ == "__main__":
    sys.exit(run(main))
