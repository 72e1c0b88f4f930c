"""Benchmark: the cost of writing a sweep's reports per trial, from 100 to 10,000 trials.

    .venv/bin/python bench/reports.py [--trials 100,1000,10000] [--pack 100]

Records N finished trials (real report rows: 5 epochs, a 10×10 confusion matrix and 10
per-class rows each) through ``PackRecorder`` in packs of --pack (the best model's files left
out: they are written once per new best, not per trial), then compacts, and prints the
milliseconds per trial of each. In the same run it measures the plain alternative the sweep
used before packs — rewrite every table after every trial — at the sizes where that finishes
in reasonable time, and prints both per-trial costs: flat for part files, growing with N for
rewriting. No Ray, no training: the rows are made up, the files are real.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

REWRITE_LIMIT = 1000


def main() -> None:
    """Measure both ways of writing reports and print the per-trial costs."""
    args = _parse()
    print(f"{'trials':>7} {'parts ms/trial':>15} {'compact ms/trial':>17} "
          f"{'rewrite-all ms/trial':>21}")
    for count in args.trials:
        parts, compact = _parts(count, args.pack)
        rewrite = f"{_rewrite_all(count):>21.2f}" if count <= REWRITE_LIMIT else f"{'-':>21}"
        print(f"{count:>7} {parts:>15.2f} {compact:>17.2f} {rewrite}", flush=True)


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", default="100,1000,10000",
                        type=lambda text: [int(part) for part in text.split(",")])
    parser.add_argument("--pack", type=int, default=100)
    return parser.parse_args()


def _results(count: int) -> list:
    from mnist_core.config import TrialConfig
    from mnist_core.evaluation import evaluate_probabilities
    from mnist_core.trial import TrialResult

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 1000)
    evaluation = evaluate_probabilities(rng.dirichlet(np.ones(10), 1000), labels)
    history = {key: list(rng.random(5)) for key in ("loss", "accuracy", "val_loss")}
    return [TrialResult(TrialConfig(learning_rate=0.01 + index * 1e-4), 7960,
                        history | {"val_accuracy": [0.5 - index * 1e-6] * 5}, 5, evaluation,
                        1.0, b"model", 144) for index in range(count)]


def _parts(count: int, pack: int) -> tuple[float, float]:
    from mnist_core.sweep.recording import MemberRecord, PackRecorder, PartStore, SweepRows

    results = _results(count)
    with tempfile.TemporaryDirectory() as folder:
        # No BestCheckpoint: the best model and its plots are written once per new best, not per
        # trial, and would only add a one-off second to the smallest sweep.
        store = PartStore(folder)
        recorder = PackRecorder(store, SweepRows("bench", "fashion_mnist", 0.1))
        start = time.perf_counter()
        for first in range(0, count, pack):
            members = [MemberRecord(f"t{index:05d}", result.config.as_record(), result, None, 1)
                       for index, result in enumerate(results[first:first + pack], first)]
            recorder.add_pack(f"p{first:05d}", members, {})
        parts = time.perf_counter() - start
        start = time.perf_counter()
        store.compact()
        compact = time.perf_counter() - start
    return 1000 * parts / count, 1000 * compact / count


def _rewrite_all(count: int) -> float:
    """The pre-pack way: after every trial, rewrite all four tables from memory."""
    from mnist_core import reports, storage

    results = _results(count)
    tables = {"trials": [], "epochs": [], "confusion": [], "per_class": []}
    schemas = {"trials": reports.METRICS_SCHEMA, "epochs": reports.EPOCHS_SCHEMA,
               "confusion": reports.CONFUSION_SCHEMA, "per_class": reports.PER_CLASS_SCHEMA}
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        for index, result in enumerate(results):
            trial_id = f"t{index:05d}"
            tables["trials"].append(reports.metrics_row(trial_id, result, "fashion_mnist", 0.1))
            tables["epochs"] += reports.epoch_rows(trial_id, result.history)
            tables["confusion"] += reports.confusion_rows(trial_id, result.evaluation.confusion)
            tables["per_class"] += reports.per_class_rows(trial_id, result)
            for name, rows in tables.items():
                storage.write_rows(storage.join(folder, f"{name}.parquet"), rows, schemas[name])
        return 1000 * (time.perf_counter() - start) / count


if __name__ == "__main__":
    main()
