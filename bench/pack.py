"""Benchmark: packed trials against one trial per process, and against Ray Tune.

    .venv/bin/python bench/pack.py [--train 8000] [--epochs 10] [--sweep-trials 256]
        [--tune-trials 32] [--skip-sweeps]

(a) Trial-samples/s on ONE CPU thread for packs of 1, 8, 32, 128 and 512 members of the
    tutorial network (784-10-10, sigmoid, SGD, batch 100) on the first --train Fashion-MNIST
    images, through ``packed_training.train_pack`` (one shared data order, the shipped design),
    and for packs up to 64 with a data order per member (a (K, batch, 784) gather: the design
    not taken), beside the single-trial trainer (``training.train``) as the pack of one.
(b) A --sweep-trials sweep of the tutorial net on Fashion-MNIST (54,000 training images after
    the 10% validation split, 5 epochs, learning rates log-spaced 0.01-3) through
    ``sweep.run_sweep`` on a local Ray with 2 CPUs, ``pack_size = 1`` against ``"auto"``.
(c) The same trials through Ray Tune (function trainable running the tutorial's plain Keras
    ``fit``, ``reuse_actors=True``, 1 CPU per trial): the peer a Ray user would pick. Tune runs
    --tune-trials of them (its per-trial cost is flat) and its time is scaled to the sweep's
    trial count; the line says so.
Prints every figure and the ratios in one run. Needs Debian's dataset-fashion-mnist.
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
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

PACKS = (1, 8, 32, 128, 512)
SWEEP = """
[sweep]
name = "bench-{name}"
dataset = "fashion_mnist"
validation_split = 0.1
[grid]
learning_rate = {rates}
epochs = [5]
[resources]
num_cpus = 1
pack_size = {size}
"""


def main() -> None:
    """Run the measurements and print their ratios."""
    args = _parse()
    throughput = _throughput_per_core(args.train, args.epochs)
    _print_throughput(args, throughput)
    if not args.skip_sweeps:
        _print_sweeps(args, _sweeps(args))


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--sweep-trials", type=int, default=256)
    parser.add_argument("--tune-trials", type=int, default=32)
    parser.add_argument("--skip-sweeps", action="store_true")
    return parser.parse_args()


def _splits(train: int):
    from mnist_core.config import DataConfig
    from mnist_core.data import Splits, load_dataset

    full = load_dataset(DataConfig(dataset="fashion_mnist"))
    empty = np.empty((0, full.input_dim), np.float32)
    return Splits("fashion_mnist", full.source, full.x_train[:train], full.y_train[:train],
                  empty, full.y_train[:0], full.x_test, full.y_test, full.image_shape,
                  full.pixel_max)


def _configs(count: int, epochs: int):
    from mnist_core.config import TrialConfig

    return [TrialConfig(learning_rate=float(rate), epochs=epochs, seed=0)
            for rate in np.geomspace(0.05, 2.0, count)]


def _throughput_per_core(train: int, epochs: int) -> dict:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from mnist_core.packed_training import train_pack
    from mnist_core.training import train as train_alone

    splits = _splits(train)
    samples = len(splits.y_train) * epochs
    alone = train_alone(_configs(1, epochs)[0], splits)
    rates = {"single-trial trainer": samples / alone.seconds, "shared": {}, "per_member": {}}
    for size in PACKS:
        fit = train_pack(_configs(size, epochs), splits)
        rates["shared"][size] = size * samples / fit.seconds
        if size <= 64:
            rates["per_member"][size] = size * samples / _per_member_order(splits, size, epochs)
        print(f"  measured pack of {size}", flush=True)
    return rates


def _per_member_order(splits, size: int, epochs: int, batch: int = 100) -> float:
    """Seconds to train ``size`` members that each draw their own data order (the first layer
    as a gathered (K, batch, 784) einsum): the alternative to a shared order, measured."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    n, width = len(splits.y_train), splits.input_dim
    x = tf.constant(splits.x_train / np.float32(splits.pixel_max))
    y = tf.constant(splits.y_train)
    limit = np.sqrt(6 / (width + 10))
    variables = [tf.Variable(rng.uniform(-limit, limit, (size, width, 10)).astype("float32")),
                 tf.Variable(np.zeros((size, 1, 10), "float32")),
                 tf.Variable(rng.uniform(-0.5, 0.5, (size, 10, 10)).astype("float32")),
                 tf.Variable(np.zeros((size, 1, 10), "float32"))]
    rates = tf.constant(np.geomspace(0.05, 2.0, size).astype("float32").reshape(size, 1, 1))
    steps = -(-n // batch)

    @tf.function(autograph=False)
    def epoch(order):
        def step(index, total):
            chosen = order[:, index * batch:(index + 1) * batch]
            with tf.GradientTape() as tape:
                hidden = tf.sigmoid(tf.einsum("kbi,kih->kbh", tf.gather(x, chosen),
                                              variables[0]) + variables[1])
                logits = tf.einsum("kbh,kho->kbo", hidden, variables[2]) + variables[3]
                loss = tf.reduce_sum(tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(tf.gather(y, chosen),
                                                                   logits), axis=1))
            for variable, gradient in zip(variables, tape.gradient(loss, variables)):
                variable.assign_sub(rates * gradient)
            return index + 1, total + loss

        return tf.while_loop(lambda index, _: index < steps, step,
                             (tf.constant(0), tf.constant(0.0)))[1]

    start = time.perf_counter()
    for index in range(epochs):
        orders = np.stack([np.random.default_rng(index * 1000 + member).permutation(n)
                           for member in range(size)]).astype("int32")
        epoch(tf.constant(orders))
    return time.perf_counter() - start


def _sweeps(args) -> dict:
    import ray

    from mnist_core.sweep.config import parse_sweep_config
    from mnist_core.sweep.driver import run_sweep

    rates = np.geomspace(0.01, 3.0, args.sweep_trials).round(6).tolist()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in ("auto", 1):
            config = parse_sweep_config(SWEEP.format(name=size, size=json.dumps(size),
                                                     rates=rates))
            start = time.perf_counter()
            summary = run_sweep(config, folder, f"bench-{size}", show_progress=False)
            results[size] = {"seconds": time.perf_counter() - start, "packs": summary.packs,
                             "ok": summary.ok}
            print(f"  sweep with pack_size = {size}: {results[size]}", flush=True)
        results["tune"] = _tune(rates[:: max(1, len(rates) // args.tune_trials)]
                                [:args.tune_trials], Path(folder))
    ray.shutdown()
    return results


def _tune(rates: list[float], folder: Path) -> dict:
    """The same trials through Ray Tune: the tutorial's plain Keras code in a function
    trainable, one CPU per trial, actors reused."""
    from ray import tune

    from mnist_core.config import DataConfig
    from mnist_core.data import load_dataset

    splits = load_dataset(DataConfig(dataset="fashion_mnist", validation_split=0.1))
    trainable = tune.with_resources(tune.with_parameters(_tutorial_trial, splits=splits),
                                    {"cpu": 1})
    tuner = tune.Tuner(trainable, param_space={"learning_rate": tune.grid_search(rates)},
                       tune_config=tune.TuneConfig(reuse_actors=True, metric="val_accuracy",
                                                   mode="max"),
                       run_config=tune.RunConfig(storage_path=str(folder / "tune"), verbose=0))
    start = time.perf_counter()
    grid = tuner.fit()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "trials": len(rates), "errors": grid.num_errors,
            "best_val_accuracy": grid.get_best_result().metrics["val_accuracy"]}


def _tutorial_trial(config: dict, splits) -> dict:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((splits.input_dim,)),
                              keras.layers.Dense(10, activation="sigmoid"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(config["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(splits.x_train / 255.0, splits.y_train, batch_size=100, epochs=5,
                        validation_data=(splits.x_val / 255.0, splits.y_val), verbose=0)
    return {"val_accuracy": history.history["val_accuracy"][-1]}


def _print_throughput(args, rates: dict) -> None:
    print(f"== trial-samples/s on one CPU thread ({args.train:,} Fashion-MNIST images, "
          f"{args.epochs} epochs, 784-10-10 sigmoid, SGD, batch 100)")
    print(f"single-trial trainer (training.train)   {rates['single-trial trainer']:>12,.0f}")
    print(f"{'K':>5} {'shared order':>14} {'order per member':>18}")
    for size in PACKS:
        per_member = rates["per_member"].get(size)
        shown = f"{per_member:>18,.0f}" if per_member else f"{'-':>18}"
        print(f"{size:>5} {rates['shared'][size]:>14,.0f} {shown}")
    best = max(rates["shared"].values())
    print(f"ratio best pack / pack of one                {best / rates['shared'][1]:6.2f}x   "
          "(target >= 8, stretch 10)")
    print(f"ratio best pack / single-trial trainer       "
          f"{best / rates['single-trial trainer']:6.2f}x")


def _print_sweeps(args, results: dict) -> None:
    auto, alone, tune = results["auto"], results[1], results["tune"]
    scaled = tune["seconds"] * args.sweep_trials / tune["trials"]
    print(f"== {args.sweep_trials}-trial sweep, Fashion-MNIST (54,000 train), 5 epochs, 2 CPUs")
    print(f"pack_size = 1       {alone['seconds']:8.1f} s  ({alone['packs']} packs)")
    print(f"pack_size = auto    {auto['seconds']:8.1f} s  ({auto['packs']} packs)")
    print(f"Ray Tune (fit)      {scaled:8.1f} s  (measured {tune['seconds']:.1f} s for "
          f"{tune['trials']} trials, scaled to {args.sweep_trials}; {tune['errors']} errors)")
    print(f"ratio pack_size=1 / auto                     {alone['seconds'] / auto['seconds']:6.2f}x"
          "   (target >= 5)")
    print(f"ratio Ray Tune / auto                        {scaled / auto['seconds']:6.2f}x")


if __name__ == "__main__":
    main()
