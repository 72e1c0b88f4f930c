"""Benchmark: a Ray sweep against the plain loop, and our training loop against plain Keras.

    .venv/bin/python bench/sweep.py [--trials 8] [--epochs 5] [--dataset fashion_mnist]

(a) ``python -m jobs.sweep`` on an N-trial grid, whole command timed (Ray start included);
(b) the plain alternative: one Python process training each grid point in turn with the
    tutorial's Keras code (``model.fit``), whole command timed (imports included);
(c) per-trial training throughput in one process: ``mnist_core.training.train`` against plain
    ``model.fit`` and scikit-learn's ``MLPClassifier(hidden_layer_sizes=(10,))`` with the same
    epochs and batch size.
Prints wall times, the ratio, per-trial overhead and samples/s. Uses Debian's Fashion-MNIST
when installed (60k images at MNIST's real scale), else the embedded digits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mnist_core.data import DEBIAN_FASHION  # noqa: E402

GRID = """
[sweep]
name = "bench"
dataset = "{dataset}"
validation_split = 0.1
seeds = [0]
[grid]
activation = ["sigmoid", "relu"]
optimizer = ["sgd", "adam"]
learning_rate = [0.01, 0.1]
batch_size = [100]
epochs = [{epochs}]
[resources]
num_cpus = 1
"""


def main() -> None:
    """Run the three measurements and print their ratios."""
    args = _parse()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "bench.toml"
        config.write_text(GRID.format(dataset=args.dataset, epochs=args.epochs))
        trials = _trial_count(config, args.trials)
        sweep_seconds, sweep_rows = _time_sweep(config, Path(folder) / "runs")
        plain_seconds = _time_command([sys.executable, __file__, "--plain-loop", str(config),
                                       "--trials", str(trials)])
    _report_sweep(trials, sweep_seconds, plain_seconds, sweep_rows)
    _report_throughput(args.dataset, args.epochs)


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dataset", default="fashion_mnist" if DEBIAN_FASHION.is_dir()
                        else "digits")
    parser.add_argument("--plain-loop", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_loop:
        _plain_loop(Path(args.plain_loop), args.trials)
        sys.exit(0)
    return args


def _trial_count(config: Path, wanted: int) -> int:
    from mnist_core.sweep.config import load_sweep_config

    available = len(load_sweep_config(config).trials)
    if wanted != available:
        sys.exit(f"the bench grid has {available} trials; run with --trials {available}")
    return available


def _time_command(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _time_sweep(config: Path, out: Path) -> tuple[float, list[dict]]:
    import pyarrow.parquet as pq

    seconds = _time_command([sys.executable, "-m", "jobs.sweep", "--config", str(config),
                             "--out", str(out), "--no-progress"])
    (folder,) = list(out.iterdir())
    return seconds, pq.read_table(folder / "trials.parquet").to_pylist()


def _plain_loop(config_path: Path, trials: int) -> None:
    """The plain alternative: the tutorial's Keras program, once per grid point, in turn."""
    import keras

    from mnist_core.data import load_dataset
    from mnist_core.sweep.config import load_sweep_config
    from mnist_core.training import make_optimizer

    config = load_sweep_config(config_path)
    splits = load_dataset(config.data)
    for trial in config.trials[:trials]:
        settings = trial.config
        keras.utils.set_random_seed(settings.seed)
        model = keras.Sequential([
            keras.Input((splits.input_dim,)),
            keras.layers.Dense(10, activation=settings.model.activation),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile(optimizer=make_optimizer(settings),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        scale = splits.pixel_max  # the tutorial scales in NumPy: x / 255
        model.fit(splits.x_train / scale, splits.y_train, batch_size=settings.batch_size,
                  epochs=settings.epochs, validation_data=(splits.x_val / scale, splits.y_val),
                  verbose=0)
        model.evaluate(splits.x_test, splits.y_test, verbose=0)


def _report_sweep(trials: int, sweep_seconds: float, plain_seconds: float,
                  rows: list[dict]) -> None:
    slots = min(os.cpu_count() or 1, trials)
    train_total = sum(row["train_seconds"] for row in rows)
    overhead = (sweep_seconds * slots - train_total) / trials
    setup = [row["worker_setup_seconds"] for row in rows if row["worker_setup_seconds"] > 0]
    print(f"== sweep of {trials} trials ({slots} in parallel)")
    print(f"jobs.sweep wall time         {sweep_seconds:8.1f} s")
    print(f"plain Keras loop wall time   {plain_seconds:8.1f} s")
    print(f"ratio sweep / plain          {sweep_seconds / plain_seconds:8.2f}x   (target <= 0.70)")
    print(f"per-trial overhead           {overhead:8.2f} s   (Ray, imports, data, evaluation)")
    print(f"worker processes / set-ups   {len({r['worker_pid'] for r in rows}):8d}   "
          f"({len(setup)} paid TensorFlow start-up, mean {sum(setup) / max(len(setup), 1):.1f} s)")


def _report_throughput(dataset: str, epochs: int) -> None:
    from mnist_core import devices

    devices.configure()
    results = _throughputs(dataset, epochs)
    ours, fit, mlp = results["mnist_core.train"], results["keras fit"], results["MLPClassifier"]
    print(f"== per-trial training throughput ({dataset}, {epochs} epochs, batch 100)")
    for name, value in results.items():
        print(f"{name:<28} {value:12,.0f} samples/s")
    print(f"ratio ours / keras fit       {ours / fit:8.2f}x   (target >= 3)")
    print(f"ratio ours / MLPClassifier   {ours / mlp:8.2f}x   (stretch >= 1)")
    print("json " + json.dumps({key: round(value) for key, value in results.items()}))


def _throughputs(dataset: str, epochs: int) -> dict[str, float]:
    import warnings

    import keras
    from sklearn.neural_network import MLPClassifier

    from mnist_core.config import DataConfig, TrialConfig
    from mnist_core.data import load_dataset
    from mnist_core.training import make_optimizer, train

    splits = load_dataset(DataConfig(dataset=dataset))
    samples = len(splits.y_train) * epochs
    config = TrialConfig(epochs=epochs, batch_size=100, learning_rate=0.5)
    ours = train(config, splits).seconds
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((splits.input_dim,)),
                              keras.layers.Dense(10, activation="sigmoid"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=make_optimizer(config), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(splits.x_train / splits.pixel_max, splits.y_train, batch_size=100, epochs=epochs,
              verbose=0)
    fit = time.perf_counter() - start
    mlp = MLPClassifier(hidden_layer_sizes=(10,), activation="logistic", solver="sgd",
                        learning_rate_init=0.5, batch_size=100, max_iter=epochs,
                        n_iter_no_change=epochs + 1, tol=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        mlp.fit(splits.x_train / splits.pixel_max, splits.y_train)
        sklearn_seconds = time.perf_counter() - start
    return {"mnist_core.train": samples / ours, "keras fit": samples / fit,
            "MLPClassifier": samples / sklearn_seconds}


if __name__ == "__main__":
    main()
