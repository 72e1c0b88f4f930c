"""Benchmark for a GPU machine: packed training throughput, a fractional-GPU sweep, GPU scoring.

    .venv/bin/python bench/gpu.py [--packs 256,1024,4096] [--trials 1000] [--images 1000000]

Prints ONE JSON line:
- ``pack_samples_per_s``: trial-samples/s of ``packed_training.train_pack`` for each pack size
  (784-10-10 sigmoid, SGD, batch 100, 5 epochs) on MNIST-sized data (Fashion-MNIST's 54,000
  training images when Debian's package is installed, else random images of that size),
  data and weights resident on the GPU;
- ``sweep_seconds``: wall time of a --trials-trial, 5-epoch sweep through ``sweep.run_sweep``
  on a local Ray with every GPU, ``num_gpus = 0.25`` per pack (four packs share a card) and
  ``pack_size = "auto"``;
- ``scoring_images_per_s``: ``scoring.execute`` on --images images with GPU actors.
Runs on a CPU-only machine too (``"gpus": 0`` in the line), for checking the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

SWEEP = """
[sweep]
name = "gpu-bench"
dataset = "{dataset}"
samples = {trials}
[grid]
learning_rate = {{loguniform = [0.01, 3.0]}}
momentum = {{uniform = [0.0, 0.95]}}
epochs = [5]
[resources]
num_cpus = 1
num_gpus = {num_gpus}
pack_size = "auto"
"""


def main() -> None:
    """Run the three measurements and print one JSON line."""
    args = _parse()
    from mnist_core import devices

    setup = devices.configure(use_gpu=True)
    splits = _splits()
    result = {"gpus": len(setup.gpus), "train_images": len(splits.y_train),
              "pack_samples_per_s": {size: _throughput(splits, size) for size in args.packs}}
    with tempfile.TemporaryDirectory() as folder:
        result |= _sweep_and_scoring(args, splits, Path(folder), bool(setup.gpus))
    print(json.dumps(result), flush=True)


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packs", default="256,1024,4096",
                        type=lambda text: [int(part) for part in text.split(",")])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--images", type=int, default=1_000_000)
    return parser.parse_args()


def _splits():
    from mnist_core.config import DataConfig
    from mnist_core.data import DEBIAN_FASHION, Splits, load_dataset

    if DEBIAN_FASHION.is_dir():
        return load_dataset(DataConfig(dataset="fashion_mnist", validation_split=0.1))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60_000, 784)).astype(np.float32)
    y = rng.integers(0, 10, 60_000).astype(np.int32)
    return Splits("random", "random", x[:54_000], y[:54_000], x[54_000:], y[54_000:],
                  x[:10_000], y[:10_000], (28, 28), 255.0)


def _throughput(splits, size: int) -> float:
    from mnist_core.config import TrialConfig
    from mnist_core.packed_training import train_pack

    configs = [TrialConfig(learning_rate=float(rate), epochs=5)
               for rate in np.geomspace(0.05, 2.0, size)]
    fit = train_pack(configs, splits)
    return round(size * len(splits.y_train) * 5 / fit.seconds)


def _sweep_and_scoring(args, splits, folder: Path, on_gpu: bool) -> dict:
    import ray

    from mnist_core import scoring
    from mnist_core.config import ModelConfig
    from mnist_core.model import build_model
    from mnist_core.scoring.config import ScoreConfig
    from mnist_core.scoring.shards import write_shards
    from mnist_core.sweep.config import parse_sweep_config
    from mnist_core.sweep.driver import run_sweep

    ray.init(include_dashboard=False, log_to_driver=False)
    dataset = "fashion_mnist" if splits.name == "fashion_mnist" else "digits"
    config = parse_sweep_config(SWEEP.format(dataset=dataset, trials=args.trials,
                                             num_gpus=0.25 if on_gpu else 0))
    start = time.perf_counter()
    summary = run_sweep(config, str(folder / "runs"), "gpu-bench", show_progress=False)
    sweep_seconds = time.perf_counter() - start
    images = splits.x_test.astype(np.uint8)
    write_shards(str(folder / "in"), "gpu", images, splits.y_test, args.images, 50_000)
    build_model(ModelConfig(), 784).save(folder / "model.keras")
    score = ScoreConfig(model=str(folder / "model.keras"), input=str(folder / "in"),
                        out=str(folder / "out"), actors=4 if on_gpu else 2,
                        num_gpus=0.25 if on_gpu else 0.0)
    start = time.perf_counter()
    scored = scoring.execute(scoring.make_plan(score, scoring.check_inputs(score)))
    scoring_seconds = time.perf_counter() - start
    ray.shutdown()
    return {"sweep_trials": summary.total, "sweep_packs": summary.packs,
            "sweep_seconds": round(sweep_seconds, 1),
            "scoring_images_per_s": round(scored.images / scoring_seconds)}


if __name__ == "__main__":
    main()
