"""Benchmark: batch scoring through jobs.score against plain model.predict and numpy.

    .venv/bin/python bench/score.py [--images 1000000] [--shard-size 50000] [--actors 1]

Scores N images (Fashion-MNIST tiled, when Debian's package is installed; else digits)
(a) through the scoring pipeline (Parquet shards in, Parquet predictions out, on a local Ray;
    Ray's start-up is timed separately), (b) through plain ``model.predict`` in one process,
(c) through a numpy forward pass of the same weights, and (d) through the predictor's batch
function alone; prints images/second for each and the ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from mnist_core.data import DEBIAN_FASHION  # noqa: E402


def main() -> None:
    """Run the four measurements and print their ratios."""
    args = _parse()
    from mnist_core import devices
    from mnist_core.data import dataset_images
    from mnist_core.shards import write_shards

    devices.configure()
    dataset = "fashion_mnist" if DEBIAN_FASHION.is_dir() else "digits"
    pixels, labels = dataset_images(dataset)
    images = pixels[np.arange(args.images) % len(pixels)]
    with tempfile.TemporaryDirectory() as folder:
        model_path = _model(Path(folder), pixels, labels)
        write_shards(f"{folder}/in", dataset, pixels, labels, args.images, args.shard_size)
        ray_start, job = _time_job(model_path, f"{folder}/in/*.parquet", f"{folder}/out", args)
        rates = {"jobs.score (Parquet in/out)": args.images / job}
        rates |= _in_process_rates(model_path, images)
    _print(dataset, args, ray_start, job, rates)


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--shard-size", type=int, default=50_000)
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8192)
    return parser.parse_args()


def _model(folder: Path, pixels: np.ndarray, labels: np.ndarray) -> str:
    """The tutorial's model, trained for one epoch so its outputs are not uniform."""
    from mnist_core.config import TrialConfig
    from mnist_core.data import Splits
    from mnist_core.training import train

    x = pixels.astype(np.float32)
    side = int(np.sqrt(x.shape[1]))
    empty = np.empty((0, x.shape[1]), np.float32)
    splits = Splits("bench", "bench", x, labels, empty, labels[:0], empty, labels[:0],
                    (side, side), float(pixels.max()))
    path = folder / "model.keras"
    train(TrialConfig(epochs=1), splits).model.save(path)
    return str(path)


def _time_job(model_path: str, pattern: str, out: str, args) -> tuple[float, float]:
    from mnist_core import scoring, session
    from mnist_core.score_config import ScoreConfig

    start = time.perf_counter()
    session.connect(None)
    ray_start = time.perf_counter() - start
    config = ScoreConfig(model=model_path, input=pattern, out=out, batch_size=args.batch_size,
                         actors=args.actors)
    start = time.perf_counter()
    landed = []
    summary = scoring.execute(scoring.plan(config),
                              on_shard=lambda *_: landed.append(time.perf_counter() - start))
    seconds = time.perf_counter() - start
    assert summary.images == args.images and summary.failed_rows == 0
    print(f"first shard committed after {landed[0]:.2f} s; last after {landed[-1]:.2f} s",
          flush=True)
    return ray_start, seconds


def _in_process_rates(model_path: str, images: np.ndarray) -> dict[str, float]:
    from mnist_core.prediction import DenseForward, Predictor, load_model

    model = load_model(model_path)
    forward = DenseForward.from_model(model)
    rates = {}
    start = time.perf_counter()
    model.predict(images.astype(np.float32), batch_size=8192, verbose=0)
    rates["plain model.predict"] = len(images) / (time.perf_counter() - start)
    start = time.perf_counter()
    for chunk in _chunks(images):
        forward.probabilities(chunk.astype(np.float32))
    rates["numpy forward pass"] = len(images) / (time.perf_counter() - start)
    predictor = Predictor(forward)
    text = np.full(8192, "x", dtype=object)
    start = time.perf_counter()
    for chunk in _chunks(images):
        count = len(chunk)
        predictor({"id": text[:count], "pixels": chunk})
    rates["predictor batch function"] = len(images) / (time.perf_counter() - start)
    return rates


def _chunks(images: np.ndarray, size: int = 8192):
    for start in range(0, len(images), size):
        yield images[start:start + size]


def _print(dataset: str, args, ray_start: float, job: float, rates: dict[str, float]) -> None:
    print(f"== scoring {args.images:,} {dataset} images ({args.images // args.shard_size} "
          f"Parquet shards, {args.actors} actor(s), batch {args.batch_size})")
    print(f"local Ray start-up (not in the job's time)   {ray_start:8.1f} s")
    print(f"jobs.score wall time                        {job:8.1f} s")
    for name, rate in rates.items():
        print(f"{name:<40} {rate:12,.0f} images/s")
    plain, numpy_rate = rates["plain model.predict"], rates["numpy forward pass"]
    print(f"ratio predictor batch fn / numpy forward     "
          f"{rates['predictor batch function'] / numpy_rate:6.2f}x   (target >= 0.8)")
    print(f"ratio jobs.score / plain model.predict       "
          f"{rates['jobs.score (Parquet in/out)'] / plain:6.2f}x   (target >= 5)")


if __name__ == "__main__":
    main()
