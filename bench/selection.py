"""Benchmark: what a search chooses, and how it does on the test set, by how it chooses.

    .venv/bin/python bench/selection.py [--seeds 10] [--samples 1000] [--epochs 9]
                                        [--min-epochs 1] [--refit-seeds 8]
                                        [--train-images 8000] [--dataset fashion_mnist]

For each of ``--seeds`` search seeds, on Fashion-MNIST (Debian's package; else the digits),
``--samples`` random settings of the tutorial network (the shipped Fashion-MNIST search's
space) compared by successive halving (eta 3, rungs from ``--min-epochs`` to ``--epochs``):
(a) one validation split: the best trial by validation accuracy; its test accuracy is its own.
(e) one split + refit: (a)'s setting trained again on training + validation data from
    ``--refit-seeds`` seeds, the lowest training loss kept (the same sweep as (a)).
(c) TPE: ``[search] sampler = "tpe"`` at (a)'s trial-epoch budget (settings trained to
    ``--epochs``, in 5 rounds), chosen on one split.
(f) TPE + refit: (c)'s setting refit as in (e) (the same sweep as (c)).
``--train-images N`` keeps N training images (drawn once, seed 0; the test set whole), for
the small-data case where one validation split holds a few hundred images. ``--skip-tpe``
leaves (c) and (f) out. (Cross-validated finalists, (b) and (d) in docs/results.md, were
measured by this file as of commit 3913ab8, before they were removed.)
Prints each seed's choices and, per method, the mean ± standard deviation over the seeds of the
chosen test accuracy, the trial-epochs, and the wall time of the whole command.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mnist_core.data import DEBIAN_FASHION, load_raw  # noqa: E402

SEARCH = """
[sweep]
name = "{name}"
dataset = "{dataset}"
data_path = "{data_path}"
validation_split = 0.1
samples = {samples}
search_seed = {seed}

[grid]
hidden_units = [[10]]
activation = ["sigmoid"]
optimizer = ["sgd"]
batch_size = [100]
epochs = [{epochs}]
learning_rate = {{loguniform = [0.03, 3.0]}}
momentum = {{uniform = [0.5, 0.95]}}
nesterov = [true]
l2 = {{loguniform = [1e-6, 3e-4]}}
schedule = ["cosine"]
restore_best = [true]
{extra}
[resources]
num_cpus = 1
pack_size = "auto"
"""
HALVING = "[scheduler]\nkind = \"halving\"\neta = 3\nmin_epochs = {min_epochs}\n"
REFIT = "[selection]\nrefit = true\nrefit_seeds = {refit_seeds}\n"
NAMES = {"a": "one validation split", "e": "one split + refit", "c": "TPE, one split",
         "f": "TPE + refit"}


def main() -> None:
    """Run every seed's searches and print the comparison."""
    args = _parse()
    dataset = args.dataset or ("fashion_mnist" if Path(DEBIAN_FASHION).is_dir() else "digits")
    results: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as folder:
        data_path = _fewer_images(Path(folder), dataset, args.train_images)
        for seed in range(args.seeds):
            found = _searches(Path(folder), args, dataset, data_path, seed)
            for key, result in found.items():
                results.setdefault(key, []).append(result)
            print(f"seed {seed}: " + " | ".join(
                f"({key}) {_line(found[key])}" for key in NAMES if key in found), flush=True)
    _report(results, args, dataset)


def _searches(folder: Path, args, dataset: str, data_path: str, seed: int) -> dict:
    """The two sweeps of one search seed: one split (a, e) and TPE (c, f)."""
    def search(name: str, samples: int, extra: str) -> dict:
        return _sweep(folder, name, SEARCH.format(
            name=name, dataset=dataset, data_path=data_path, samples=samples, seed=seed,
            epochs=args.epochs, extra=extra))

    halving = HALVING.format(min_epochs=args.min_epochs)
    refit = REFIT.format(refit_seeds=args.refit_seeds)
    one_split = search(f"split-{seed}", args.samples, halving + refit)
    found = {"a": one_split["chosen"], "e": one_split["refit"]}
    if not args.skip_tpe:
        settings = max(1, round(one_split["chosen"]["trial_epochs"] / args.epochs))
        tpe = search(f"tpe-{seed}", settings,
                     f'[search]\nsampler = "tpe"\nround_size = {-(-settings // 5)}\n' + refit)
        found |= {"c": tpe["chosen"], "f": tpe["refit"]}
    return found


def _fewer_images(folder: Path, dataset: str, count: int) -> str:
    """A Keras-format .npz of ``count`` training images drawn once (the test set whole), or
    "" for the data set as it is."""
    if not count:
        return ""
    raw = load_raw(dataset)
    keep = np.random.default_rng(0).choice(len(raw.y_train), count, replace=False)
    path = folder / f"{dataset}-{count}.npz"
    np.savez(path, x_train=raw.x_train[keep], y_train=raw.y_train[keep],
             x_test=raw.x_test, y_test=raw.y_test)
    return str(path)


def _sweep(folder: Path, name: str, text: str) -> dict:
    """Run one sweep as users do (the whole command timed): its choice and its refit."""
    config = folder / f"{name}.toml"
    config.write_text(text)
    out = folder / "runs"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jobs.sweep", "--config", str(config), "--out",
                    str(out), "--no-progress"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "RAY_ADDRESS": ""})
    seconds = time.perf_counter() - started
    (sweep,) = sorted(out.glob(f"{name}-*"))
    trials = pq.read_table(sweep / "trials.parquet").to_pylist()
    trial_epochs = pq.read_table(sweep / "epochs.parquet", columns=["trial_id"]).num_rows
    best = json.loads((sweep / "best" / "best.json").read_text())
    chosen = next(row for row in trials if row["trial_id"] == best["trial_id"])
    refit = best["refit"]
    return {
        "chosen": {"trial_id": chosen["trial_id"], "test_accuracy": chosen["test_accuracy"],
                   "trial_epochs": trial_epochs, "seconds": seconds},
        "refit": {"trial_id": chosen["trial_id"], "test_accuracy": refit["test_accuracy"],
                  "trial_epochs": trial_epochs + refit["epochs"] * len(refit["seeds"]),
                  "seconds": seconds, "seed": refit["seed"]}}


def _line(result: dict) -> str:
    seed = f", seed {result['seed']}" if "seed" in result else ""
    return (f"{result['trial_id']} test {result['test_accuracy']:.4f} "
            f"({result['trial_epochs']:,} trial-epochs{seed})")


def _report(results: dict, args, dataset: str) -> None:
    images = f"{args.train_images:,} training images of " if args.train_images else ""
    print(f"\n{args.seeds} search seeds, {args.samples} settings (a, e) on {images}{dataset}, "
          f"halving from {args.min_epochs} to {args.epochs} epochs; refit from "
          f"{args.refit_seeds} seeds (e, f):")
    print(f"{'method':<30} {'test accuracy (mean ± std)':>28} {'trial-epochs':>14} "
          f"{'wall s':>8}")
    for key in (key for key in NAMES if key in results):
        tests = [result["test_accuracy"] for result in results[key]]
        spread = statistics.pstdev(tests) if len(tests) > 1 else 0.0
        epochs = statistics.fmean(result["trial_epochs"] for result in results[key])
        seconds = statistics.fmean(result["seconds"] for result in results[key])
        label = f"({key}) {NAMES[key]}"
        print(f"{label:<30} {statistics.fmean(tests):>19.4f} ± {spread:.4f} "
              f"{epochs:>14,.0f} {seconds:>8.0f}")
    print("(a, e) and (c, f) are one sweep each per seed: wall time is the whole sweep's.")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="search seeds")
    parser.add_argument("--samples", type=int, default=1000, help="settings per search")
    parser.add_argument("--epochs", type=int, default=9, help="each setting's epochs")
    parser.add_argument("--min-epochs", type=int, default=1, help="halving's first rung")
    parser.add_argument("--refit-seeds", type=int, default=8, help="the refits' seeds")
    parser.add_argument("--train-images", type=int, default=0,
                        help="keep this many training images (default: all)")
    parser.add_argument("--skip-tpe", action="store_true", help="leave (c) and (f) out")
    parser.add_argument("--dataset", default="", help="default: fashion_mnist if installed")
    return parser.parse_args()


if __name__ == "__main__":
    main()
