"""Write a large image set as Parquet shards, for demos and benchmarks.

    python -m jobs.make_images --dataset digits --count 20000 --shard-size 5000 --out data/demo
    python -m jobs.make_images --dataset fashion_mnist --count 1000000 --shard-size 50000 \\
        --out data/fashion_1m

Tiles the dataset's images (train then test) up to --count, with unique ids
``<dataset>-<index>``. Each shard has columns id (string), image (raw uint8 bytes, row-major,
0–255) and label (the true label, for checking). Digits' 0–16 pixels are rescaled to 0–255.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from jobs._cli import Parser, run
from mnist_core import storage
from mnist_core.config import DATASETS
from mnist_core.data import load_raw
from mnist_core.errors import ConfigError


def parse_args(argv: Sequence[str] | None):
    """Parse the job's flags."""
    parser = Parser(prog="jobs.make_images", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, default="digits")
    parser.add_argument("--data-path", default="")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--shard-size", type=int, default=50_000)
    parser.add_argument("--out", required=True, help="folder or URI for the shards")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; returns the process exit code."""
    args = parse_args(argv)
    if args.count <= 0 or args.shard_size <= 0:
        raise ConfigError("--count and --shard-size must be positive")
    images, labels = base_images(args.dataset, args.data_path)
    shards = write_shards(args.out, args.dataset, images, labels, args.count, args.shard_size)
    print(f"wrote {args.count} images in {shards} shards to {args.out}")
    return 0


def base_images(dataset: str, data_path: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The dataset's images as uint8 (n, pixels) in 0–255, and their labels."""
    raw = load_raw(dataset, data_path)
    images = np.concatenate([raw.x_train, raw.x_test]).reshape(
        len(raw.x_train) + len(raw.x_test), -1)
    scaled = np.rint(images.astype(np.float64) * (255.0 / raw.pixel_max)).astype(np.uint8)
    return scaled, np.concatenate([raw.y_train, raw.y_test]).astype(np.int32)


def write_shards(out: str, dataset: str, images: np.ndarray, labels: np.ndarray, count: int,
                 shard_size: int) -> int:
    """Write ``count`` tiled images as shards of ``shard_size`` rows; return the shard count."""
    width = images.shape[1]
    shards = 0
    for start in range(0, count, shard_size):
        index = np.arange(start, min(start + shard_size, count))
        pixels = images[index % len(images)]
        table = pa.table({
            "id": pa.array([f"{dataset}-{i:09d}" for i in index], pa.string()),
            "image": pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(width), len(index), [None, pa.py_buffer(pixels.tobytes())]
            ).cast(pa.binary()),
            "label": pa.array(labels[index % len(labels)], pa.int32()),
        })
        storage.write_table(storage.join(out, f"part-{shards:05d}.parquet"), table)
        shards += 1
    return shards


if __name__ == "__main__":
    sys.exit(run(main))
