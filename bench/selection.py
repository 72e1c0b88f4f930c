"""Benchmark: what a search chooses, and how it does on the test set, by how it chooses.

    .venv/bin/python bench/selection.py [--seeds 5] [--samples 1000] [--epochs 9]
                                        [--min-epochs 1] [--dataset fashion_mnist]

For each of ``--seeds`` search seeds, on Fashion-MNIST (Debian's package; else the digits):
(a) one validation split: ``--samples`` random settings of the tutorial network (the shipped
    Fashion-MNIST search's space) compared by successive halving (eta 3, rungs from
    ``--min-epochs`` up to ``--epochs``), the best by validation accuracy chosen; its test
    accuracy is the chosen trial's.
(b) cross-validated finalists + refit: the same search, whose ``--finalists`` best settings are
    compared again by 5-fold cross-validation over training + validation data, the best mean
    chosen and refit on training + validation; its test accuracy is the refit model's. (a) and
    (b) come from one sweep: (a) is what that sweep chose before its finalists were compared.
(c) TPE: ``[search] sampler = "tpe"`` at (a)'s trial-epoch budget (settings trained to
    ``--epochs``, as many as (a)'s trial-epochs allow, in 5 rounds), on one validation split.
(d) cross-validated finalists without refit (``refit = false``): (b)'s choice, its model the
    one trained on the one split (what ``best/model_validation.keras`` holds), so (b) against
    (d) is what the refit's training adds or takes.
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

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mnist_core.data import DEBIAN_FASHION  # noqa: E402
from mnist_core.reports import best_trial  # noqa: E402

SEARCH = """
[sweep]
name = "{name}"
dataset = "{dataset}"
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


def main() -> None:
    """Run every seed's searches and print the comparison."""
    args = _parse()
    dataset = args.dataset or ("fashion_mnist" if Path(DEBIAN_FASHION).is_dir() else "digits")
    results = {"a": [], "b": [], "c": [], "d": []}
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seeds):
            extra = (HALVING.format(min_epochs=args.min_epochs) + "\n[selection]\n"
                     f"finalists = {args.finalists}\nfolds = 5\nrefit = true\n")
            halving = _sweep(Path(folder), f"halving-{seed}", SEARCH.format(
                name=f"halving-{seed}", dataset=dataset, samples=args.samples, seed=seed,
                epochs=args.epochs, extra=extra), args.epochs)
            results["a"].append(halving["one_split"])
            results["b"].append(halving["cross_validated"])
            results["d"].append(halving["no_refit"])
            settings = max(1, round(halving["one_split"]["trial_epochs"] / args.epochs))
            extra = (f'[search]\nsampler = "tpe"\nround_size = {-(-settings // 5)}\n'
                     "[selection]\nrefit = false\n")
            tpe = _sweep(Path(folder), f"tpe-{seed}", SEARCH.format(
                name=f"tpe-{seed}", dataset=dataset, samples=settings, seed=seed,
                epochs=args.epochs, extra=extra), args.epochs)
            results["c"].append(tpe["one_split"])
            print(f"seed {seed}: (a) {_line(halving['one_split'])} | (b) "
                  f"{_line(halving['cross_validated'])} | (c) {_line(tpe['one_split'])} | "
                  f"(d) {_line(halving['no_refit'])}",
                  flush=True)
    _report(results, args, dataset)


def _sweep(folder: Path, name: str, text: str, epochs: int) -> dict:
    """Run one sweep as users do (the whole command timed); what it chose, and at what cost."""
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
    chosen = best_trial(trials)  # by one validation split
    one_split = {"trial_id": chosen["trial_id"], "test_accuracy": chosen["test_accuracy"],
                 "trial_epochs": trial_epochs, "seconds": seconds}
    found = {"one_split": one_split}
    finalists = best.get("choice", {}).get("finalists")
    if finalists:
        extra = sum(len(record["fold_accuracies"]) for record in finalists) * epochs
        found["cross_validated"] = {
            "trial_id": best["trial_id"], "test_accuracy": best["refit"]["test_accuracy"],
            "trial_epochs": trial_epochs + extra + best["refit"]["epochs"],
            "seconds": seconds, "rank": finalists[0]["rank_by_validation"]}
        cross_validated = next(row for row in trials if row["trial_id"] == best["trial_id"])
        found["no_refit"] = {"trial_id": best["trial_id"],
                             "test_accuracy": cross_validated["test_accuracy"],
                             "trial_epochs": trial_epochs + extra, "seconds": seconds}
    return found


def _line(result: dict) -> str:
    return (f"{result['trial_id']} test {result['test_accuracy']:.4f} "
            f"({result['trial_epochs']:,} trial-epochs)")


def _report(results: dict, args, dataset: str) -> None:
    names = {"a": "one validation split", "b": "CV finalists + refit", "c": "TPE, one split",
             "d": "CV finalists, no refit"}
    print(f"\n{args.seeds} search seeds, {args.samples} settings (a, b) on {dataset}, "
          f"halving from {args.min_epochs} to {args.epochs} epochs; {args.finalists} "
          "finalists, 5 folds (b):")
    print(f"{'method':<26} {'test accuracy (mean ± std)':>28} {'trial-epochs':>14} "
          f"{'wall s':>8}")
    for key, name in names.items():
        tests = [result["test_accuracy"] for result in results[key]]
        spread = statistics.pstdev(tests) if len(tests) > 1 else 0.0
        epochs = statistics.fmean(result["trial_epochs"] for result in results[key])
        seconds = statistics.fmean(result["seconds"] for result in results[key])
        print(f"({key}) {name:<22} {statistics.fmean(tests):>19.4f} ± {spread:.4f} "
              f"{epochs:>14,.0f} {seconds:>8.0f}")
    print("(a), (b) and (d) are one sweep per seed: wall time is the whole sweep's.")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="search seeds")
    parser.add_argument("--samples", type=int, default=1000, help="settings per search")
    parser.add_argument("--finalists", type=int, default=8, help="finalists of (b)")
    parser.add_argument("--epochs", type=int, default=9, help="each setting's epochs")
    parser.add_argument("--min-epochs", type=int, default=1, help="halving's first rung")
    parser.add_argument("--dataset", default="", help="default: fashion_mnist if installed")
    return parser.parse_args()


if __name__ == "__main__":
    main()
