"""Benchmark: batch scoring through the scoring job against plain model.predict and numpy.

    .venv/bin/python bench/score.py [--images 1000000,10000000] [--shard-size 50000] [--actors 2]

For each size N (Fashion-MNIST tiled, when Debian's package is installed; else digits), scores
N images through the scoring job's library path (Parquet shards in, Parquet predictions and a
manifest out, on a local Ray started beforehand and timed on its own) and prints its wall time
and the time to the first committed shard. In the same run it measures plain
``model.predict`` on 1,000,000 images in memory (no reading, no writing: generous to it), a
numpy forward pass of the same weights and the predictor's batch function, and prints the
ratios. ``model.predict`` runs at a rate that does not depend on N, so the ratio at N uses
that rate.
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

IN_MEMORY = 1_000_000


def main() -> None:
    """Run the measurements and print their ratios."""
    args = _parse()
    from mnist_core import devices, session
    from mnist_core.data import held_out_images

    devices.configure()
    dataset = "fashion_mnist" if DEBIAN_FASHION.is_dir() else "digits"
    pixels, labels = held_out_images(dataset)
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        model_path = _model(Path(folder), pixels, labels)
        rates = _in_process_rates(model_path, pixels[np.arange(IN_MEMORY) % len(pixels)])
        start = time.perf_counter()
        session.connect(None)
        ray_start = time.perf_counter() - start
        time.sleep(2)  # let Ray's pool of idle workers start, as it has on a running cluster
        jobs = {count: _time_job(Path(folder), model_path, dataset, pixels, labels, count, args)
                for count in args.images}
    _print(dataset, args, ray_start, jobs, rates)


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", default="1000000,10000000",
                        type=lambda text: [int(part) for part in text.split(",")])
    parser.add_argument("--shard-size", type=int, default=50_000)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--workdir", default=None, help="where the shards are written")
    return parser.parse_args()


def _model(folder: Path, pixels: np.ndarray, labels: np.ndarray) -> str:
    """The tutorial's model, trained for one epoch so its outputs are not uniform."""
    from mnist_core.config import TrialConfig
    from mnist_core.data import Splits
    from mnist_core.training import train

    x = pixels[:60_000].astype(np.float32)
    side = int(np.sqrt(x.shape[1]))
    empty = np.empty((0, x.shape[1]), np.float32)
    splits = Splits("bench", "bench", x, labels[:60_000], empty, labels[:0], empty, labels[:0],
                    (side, side), 255.0 if side == 28 else 16.0)
    path = folder / "model.keras"
    train(TrialConfig(epochs=1), splits).model.save(path)
    return str(path)


def _time_job(folder: Path, model_path: str, dataset: str, pixels, labels, count: int,
              args) -> dict:
    from mnist_core import scoring
    from mnist_core.scoring.config import ScoreConfig
    from mnist_core.scoring.shards import write_shards

    start = time.perf_counter()
    write_shards(str(folder / f"in-{count}"), dataset, pixels, labels, count, args.shard_size)
    print(f"wrote {count:,} images as shards in {time.perf_counter() - start:.1f} s", flush=True)
    config = ScoreConfig(model=model_path, input=str(folder / f"in-{count}"),
                         out=str(folder / f"out-{count}"), batch_size=args.batch_size,
                         actors=args.actors)
    start = time.perf_counter()
    landed = []
    plan = scoring.make_plan(config, scoring.check_inputs(config))
    summary = scoring.execute(plan,
                              on_shard=lambda *_: landed.append(time.perf_counter() - start))
    seconds = time.perf_counter() - start
    assert summary.images == count and summary.failed_rows == 0
    job = {"seconds": seconds, "first_shard": landed[0]}
    if count <= IN_MEMORY:
        job["plain_loop"] = _plain_loop(model_path, str(folder / f"in-{count}" / "*.parquet"),
                                        folder / f"plain-{count}")
    return job


def _in_process_rates(model_path: str, images: np.ndarray) -> dict[str, float]:
    import pyarrow as pa

    from mnist_core.prediction import DenseForward, Predictor, load_model

    model = load_model(model_path)
    forward = DenseForward.from_model(model)
    rates = {}
    start = time.perf_counter()
    model.predict(images, batch_size=8192, verbose=0)
    rates["plain model.predict"] = len(images) / (time.perf_counter() - start)
    tutorial = _without_rescaling(model)
    start = time.perf_counter()
    tutorial.predict(images.astype(np.float32) / 255, batch_size=8192, verbose=0)
    rates["tutorial-style predict (x/255 first)"] = len(images) / (time.perf_counter() - start)
    start = time.perf_counter()
    for chunk in _chunks(images):
        forward.probabilities(chunk.astype(np.float32))
    rates["numpy forward pass"] = len(images) / (time.perf_counter() - start)
    predictor = Predictor(forward)
    ids = pa.array([f"image-{index}" for index in range(8192)])  # Arrow, as shards give them
    start = time.perf_counter()
    for chunk in _chunks(images):
        predictor(ids[:len(chunk)], chunk)
    rates["predictor batch function"] = len(images) / (time.perf_counter() - start)
    return rates


def _without_rescaling(model):
    """The same weights as a model fed [0, 1] floats, the way the tutorial feeds its model."""
    import keras

    return keras.Sequential([keras.Input((model.input_shape[1],)), *model.layers[1:]])


def _plain_loop(model_path: str, pattern: str, out: Path) -> float:
    """The plain alternative with the same I/O: per shard read, model.predict, write Parquet."""
    import glob

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mnist_core.prediction import load_model

    model = load_model(model_path)
    out.mkdir()
    start = time.perf_counter()
    for index, path in enumerate(sorted(glob.glob(pattern))):
        table = pq.read_table(path, columns=["id", "image"])
        images = np.frombuffer(b"".join(table.column("image").to_pylist()), np.uint8)
        probabilities = model.predict(images.reshape(table.num_rows, -1), batch_size=8192,
                                      verbose=0)
        pq.write_table(pa.table({
            "id": table.column("id"), "predicted_label": probabilities.argmax(axis=1),
            "probabilities": pa.FixedSizeListArray.from_arrays(probabilities.reshape(-1), 10)}),
            out / f"part-{index}.parquet")
    return time.perf_counter() - start


def _chunks(images: np.ndarray, size: int = 8192):
    for start in range(0, len(images), size):
        yield images[start:start + size]


def _print(dataset: str, args, ray_start: float, jobs: dict, rates: dict[str, float]) -> None:
    print(f"== scoring {dataset} images ({args.shard_size:,}-image Parquet shards, "
          f"{args.actors} actor(s), batch {args.batch_size})")
    print(f"local Ray start-up (not in the job's time)      {ray_start:8.1f} s")
    for name, rate in rates.items():
        print(f"{name:<40} {rate:12,.0f} images/s   ({IN_MEMORY:,} in memory)")
    plain = rates["plain model.predict"]
    tutorial = rates["tutorial-style predict (x/255 first)"]
    for count, job in jobs.items():
        rate = count / job["seconds"]
        print(f"-- {count:,} images: job {job['seconds']:.1f} s ({rate:,.0f} images/s), first "
              f"shard committed after {job['first_shard']:.2f} s (target <= 3)")
        if "plain_loop" in job:
            print(f"   plain loop over the shards (read, predict, write) {job['plain_loop']:.1f} s;"
                  f" ratio job / plain loop {job['plain_loop'] / job['seconds']:5.2f}x")
        print(f"   ratio job / plain model.predict {rate / plain:5.2f}x, / tutorial-style "
              f"predict {rate / tutorial:5.2f}x   (target >= 5 at 10M)")
    print(f"ratio predictor batch fn / numpy forward        "
          f"{rates['predictor batch function'] / rates['numpy forward pass']:6.2f}x   "
          "(target >= 0.8)")


if __name__ == "__main__":
    main()
