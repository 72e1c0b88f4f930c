"""Write a large image set as Parquet shards, for demos and benchmarks.

    python -m jobs.make_images --dataset digits --count 20000 --shard-size 5000 --out data/demo
    python -m jobs.make_images --dataset fashion_mnist --count 1000000 --shard-size 50000 \\
        --out data/fashion_1m

Tiles the data set's test images (held out from every model trained on it, so the accuracy
a scoring run reports on them is a test accuracy) up to --count, with unique ids
``<dataset>-<index>``. Each shard has columns id (string), image (raw uint8 bytes, row-major,
in the dataset's own pixel units: 0–255, or 0–16 for digits, as its models take them) and
label (the true label, for checking).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jobs._cli import Parser, run, summary
from mnist_core import storage
from mnist_core.config import DATASETS
from mnist_core.data import held_out_images
from mnist_core.errors import ConfigError
from mnist_core.scoring.shards import write_shards


def build_parser() -> Parser:
    """The job's flags (also the source of docs/reference.md)."""
    parser = Parser(prog="jobs.make_images", description=summary(__doc__))
    parser.add_argument("--dataset", choices=DATASETS, default="digits",
                        help="the data set whose test images are tiled")
    parser.add_argument("--data-path", default="",
                        help="a Keras .npz or a folder of IDX files (mnist, fashion_mnist)")
    parser.add_argument("--count", type=int, required=True, help="images to write")
    parser.add_argument("--shard-size", type=int, default=50_000, help="images per shard")
    parser.add_argument("--out", required=True, help="folder or URI for the shards")
    return parser


def parse_args(argv: Sequence[str] | None):
    """Parse the job's flags."""
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; returns the process exit code."""
    args = parse_args(argv)
    if args.count <= 0 or args.shard_size <= 0:
        raise ConfigError("--count and --shard-size must be positive")
    storage.check_writable(args.out)
    images, labels = held_out_images(args.dataset, args.data_path)
    shards = write_shards(args.out, args.dataset, images, labels, args.count, args.shard_size)
    print(f"wrote {args.count} images in {shards} shards to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
