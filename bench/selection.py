"""Benchmark: what a search chooses, and how it does on the test set, by how it chooses.

    .venv/bin/python bench/selection.py [--seeds 5] [--samples 1000] [--epochs 9]
                                        [--min-epochs 1] [--refit-seeds 8]
                                        [--dataset fashion_mnist]

For each of ``--seeds`` search seeds, on Fashion-MNIST (Debian's package; else the digits):
(a) one validation split: ``--samples`` random settings of the tutorial network (the shipped
    Fashion-MNIST search's space) compared by successive halving (eta 3, rungs from
    ``--min-epochs`` up to ``--epochs``), the best by validation accuracy chosen; its test
    accuracy is the chosen trial's.
(b) cross-validated finalists + refit: the same search, whose ``--finalists`` best settings are
    compared again by 5-fold cross-validation over training + validation data, the best mean
    chosen and refit on training + validation from ``--refit-seeds`` seeds, the one with the
    lowest training loss kept; its test accuracy is the refit model's. (a) and (b) come from
    one sweep: (a) is what that sweep chose before its finalists were compared.
    Also printed: (b) as ``refit_seeds = k`` would have kept, for k = 1, 2, 4, … below
    ``--refit-seeds``: the refit's first k seeds are what ``refit_seeds = k`` trains, each
    seed trained as it would be alone, so one run gives them all (k = 1: the chosen
    setting's own seed only).
(c) TPE: ``[search] sampler = "tpe"`` at (a)'s trial-epoch budget (settings trained to
    ``--epochs``, as many as (a)'s trial-epochs allow, in 5 rounds), on one validation split.
(d) cross-validated finalists without refit (``refit = false``): (b)'s choice, its model the
    one trained on the one split (what ``best/model_validation.keras`` holds), so (b) against
    (d) is what the refit's training adds or takes.
``--skip-tpe`` leaves (c) out (it does not depend on the others' settings).
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
from mnist_core.sweep.refit import keep_restart  # noqa: E402

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
    results: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seeds):
            extra = (HALVING.format(min_epochs=args.min_epochs) + "\n[selection]\n"
                     f"finalists = {args.finalists}\nfolds = 5\nrefit = true\n"
                     f"refit_seeds = {args.refit_seeds}\n")
            halving = _sweep(Path(folder), f"halving-{seed}", SEARCH.format(
                name=f"halving-{seed}", dataset=dataset, samples=args.samples, seed=seed,
                epochs=args.epochs, extra=extra), args.epochs)
            found = {"a": halving["one_split"], "b": halving["cross_validated"],
                     "d": halving["no_refit"]} | halving["fewer_seeds"]
            if not args.skip_tpe:
                settings = max(1, round(halving["one_split"]["trial_epochs"] / args.epochs))
                extra = (f'[search]\nsampler = "tpe"\nround_size = {-(-settings // 5)}\n'
                         "[selection]\nrefit = false\n")
                found["c"] = _sweep(Path(folder), f"tpe-{seed}", SEARCH.format(
                    name=f"tpe-{seed}", dataset=dataset, samples=settings, seed=seed,
                    epochs=args.epochs, extra=extra), args.epochs)["one_split"]
            for key, result in found.items():
                results.setdefault(key, []).append(result)
            print(f"seed {seed}: " + " | ".join(
                f"({key}) {_line(found[key])}" for key in _order(found)), flush=True)
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
        refit = best["refit"]
        found["cross_validated"] = {
            "trial_id": best["trial_id"], "test_accuracy": refit["test_accuracy"],
            "trial_epochs": trial_epochs + extra + refit["epochs"] * len(refit["seeds"]),
            "seconds": seconds, "rank": finalists[0]["rank_by_validation"],
            "seed": refit["seed"]}
        found["fewer_seeds"] = _fewer_seeds(found["cross_validated"], refit)
        cross_validated = next(row for row in trials if row["trial_id"] == best["trial_id"])
        found["no_refit"] = {"trial_id": best["trial_id"],
                             "test_accuracy": cross_validated["test_accuracy"],
                             "trial_epochs": trial_epochs + extra, "seconds": seconds}
    return found


def _fewer_seeds(cross_validated: dict, refit: dict) -> dict:
    """What ``refit_seeds = k`` keeps, for k = 1, 2, 4, … below the seeds ``refit`` tried:
    its first k seeds, the lowest training loss among them; by ``b<k>``."""
    tried = refit["seeds"]
    found = {}
    for count in [2 ** power for power in range(len(tried).bit_length())
                  if 2 ** power < len(tried)]:
        kept = tried[keep_restart([seed["train_loss"] for seed in tried[:count]])]
        found[f"b{count}"] = cross_validated | {
            "test_accuracy": kept["test_accuracy"], "seed": kept["seed"],
            "trial_epochs": cross_validated["trial_epochs"] - refit["epochs"] * (
                len(tried) - count)}
    return found


def _order(results: dict) -> list[str]:
    """Methods in the order the report lists them: a, b, then b with fewer seeds, c, d."""
    fewer = sorted((key for key in results if key[1:].isdigit()), key=lambda key: int(key[1:]),
                   reverse=True)
    return [key for key in ("a", "b", *fewer, "c", "d") if key in results]


def _line(result: dict) -> str:
    seed = f", seed {result['seed']}" if "seed" in result else ""
    return (f"{result['trial_id']} test {result['test_accuracy']:.4f} "
            f"({result['trial_epochs']:,} trial-epochs{seed})")


def _report(results: dict, args, dataset: str) -> None:
    names = {"a": "one validation split",
             "b": f"CV finalists + refit, {args.refit_seeds} seeds",
             "c": "TPE, one split", "d": "CV finalists, no refit"}
    names |= {key: f"… refit from {key[1:]} seed{'s' if key != 'b1' else ''}"
              for key in results if key[1:].isdigit()}
    print(f"\n{args.seeds} search seeds, {args.samples} settings (a, b) on {dataset}, "
          f"halving from {args.min_epochs} to {args.epochs} epochs; {args.finalists} "
          f"finalists, 5 folds (b); refit from {args.refit_seeds} seeds (b):")
    print(f"{'method':<36} {'test accuracy (mean ± std)':>28} {'trial-epochs':>14} "
          f"{'wall s':>8}")
    for key in _order(results):
        name = names[key]
        tests = [result["test_accuracy"] for result in results[key]]
        spread = statistics.pstdev(tests) if len(tests) > 1 else 0.0
        epochs = statistics.fmean(result["trial_epochs"] for result in results[key])
        seconds = statistics.fmean(result["seconds"] for result in results[key])
        label = f"({key}) {name}"
        print(f"{label:<36} {statistics.fmean(tests):>19.4f} ± {spread:.4f} "
              f"{epochs:>14,.0f} {seconds:>8.0f}")
    print("(a), (b) and (d) are one sweep per seed (fewer seeds: (b)'s first ones): wall "
          "time is the whole sweep's.")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="search seeds")
    parser.add_argument("--samples", type=int, default=1000, help="settings per search")
    parser.add_argument("--finalists", type=int, default=8, help="finalists of (b)")
    parser.add_argument("--epochs", type=int, default=9, help="each setting's epochs")
    parser.add_argument("--min-epochs", type=int, default=1, help="halving's first rung")
    parser.add_argument("--refit-seeds", type=int, default=8, help="the refit's seeds (b)")
    parser.add_argument("--skip-tpe", action="store_true", help="leave (c) out")
    parser.add_argument("--dataset", default="", help="default: fashion_mnist if installed")
    return parser.parse_args()


if __name__ == "__main__":
    main()
