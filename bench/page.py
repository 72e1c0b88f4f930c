"""How big ``report.html`` is and how long headless Chromium takes to draw it, for sweeps of
1,000, 20,000 and 100,000 synthetic trials (no training: realistic rows written straight to the
four report tables), against an empty page in the same browser.

    .venv/bin/python bench/page.py [--trials 1000 20000 100000]

Prints, per size: the page's bytes (plotly.js, written once beside it, apart), the seconds to
build it from the Parquet files, and Chromium's wall time to load it and draw the charts of
the first view (what a user opening it waits for; the others draw as they scroll into view),
then to draw every chart at once (``#all``), each minus the same for an empty page. Headless
Chromium here draws WebGL (the parallel coordinates) in software. Results in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from mnist_core import storage
from mnist_core.sweep.page import write_sweep_report
from mnist_core.sweep.reading import SCHEMAS

SWEEP = """
[sweep]
name = "bench"
dataset = "digits"
samples = {samples}
[grid]
learning_rate = {{loguniform = [0.01, 3.0]}}
momentum = {{uniform = [0.0, 0.95]}}
epochs = [5]
"""
EPOCHS = 5


def synthetic_sweep(folder: Path, trials: int, seed: int = 0) -> None:
    """A finished sweep's four tables for ``trials`` trials, with plausible values."""
    rng = np.random.default_rng(seed)
    ids = [f"t{index:06d}-{index:08x}" for index in range(trials)]
    rate = 10 ** rng.uniform(-2, np.log10(3), trials)
    accuracy = np.clip(0.97 - 0.1 * (np.log10(rate) + 0.5) ** 2 + rng.normal(0, 0.01, trials),
                       0.05, 1)
    columns = {
        "sweep_id": ["bench"] * trials, "trial_id": ids, "status": ["ok"] * trials,
        "attempts": np.ones(trials, np.int32), "hidden_units": [[10]] * trials,
        "activation": ["sigmoid"] * trials, "optimizer": ["sgd"] * trials,
        "learning_rate": rate, "batch_size": np.full(trials, 100, np.int32),
        "epochs": np.full(trials, EPOCHS, np.int32), "seed": np.zeros(trials, np.int64),
        "momentum": rng.uniform(0, 0.95, trials), "dataset": ["digits"] * trials,
        "validation_split": np.full(trials, 0.1), "best_epoch": np.full(trials, EPOCHS,
                                                                         np.int32),
        "val_accuracy": accuracy, "val_loss": 1 - accuracy, "test_accuracy": accuracy - 0.01,
        "test_loss": 1.01 - accuracy, "train_seconds": rng.uniform(0.5, 2, trials),
        "pack_id": [f"p{index // 128:05d}" for index in range(trials)],
        "pack_size": np.full(trials, 128, np.int32),
        "finished_at": [datetime(2026, 11, 29, tzinfo=UTC)] * trials,
    }
    _write(folder, "trials", columns, trials)
    epoch = np.tile(np.arange(1, EPOCHS + 1, dtype=np.int32), trials)
    curve = np.repeat(accuracy, EPOCHS) * (1 - 0.3 / epoch)
    _write(folder, "epochs", {"trial_id": np.repeat(ids, EPOCHS), "epoch": epoch,
                              "loss": 1 - curve, "accuracy": curve, "val_loss": 1 - curve,
                              "val_accuracy": curve}, trials * EPOCHS)
    cells = np.arange(100)
    _write(folder, "confusion", {"trial_id": np.repeat(ids, 100),
                                 "true_label": np.tile(cells // 10, trials).astype(np.int32),
                                 "predicted_label": np.tile(cells % 10, trials).astype(np.int32),
                                 "count": np.tile(np.where(cells // 10 == cells % 10, 35, 0),
                                                  trials)}, trials * 100)
    labels = np.tile(np.arange(10, dtype=np.int32), trials)
    _write(folder, "per_class", {"trial_id": np.repeat(ids, 10), "label": labels,
                                 "precision": np.full(trials * 10, 0.95),
                                 "recall": np.full(trials * 10, 0.95),
                                 "f1": np.full(trials * 10, 0.95),
                                 "support": np.full(trials * 10, 36)}, trials * 10)
    (folder / "sweep.toml").write_text(SWEEP.format(samples=trials))


def _write(folder: Path, name: str, columns: dict, rows: int) -> None:
    schema = SCHEMAS[name]
    arrays = [pa.array(columns[field.name], field.type) if field.name in columns
              else pa.nulls(rows, field.type) for field in schema]
    storage.write_table(str(folder / f"{name}.parquet"), pa.Table.from_arrays(arrays,
                                                                             schema=schema))


def chromium_seconds(page: Path, profile: Path, every_chart: bool = False) -> float:
    """Wall time of headless Chromium loading ``page`` and running its scripts: the charts
    in the first view (as a user opening it), or ``every_chart`` (the page's ``#all``)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    start = time.perf_counter()
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic", f"--user-data-dir={profile}",
                    "--dump-dom", page.as_uri() + ("#all" if every_chart else "")],
                   capture_output=True, check=True, timeout=600)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[1000, 20000, 100000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        empty = Path(root) / "empty.html"
        empty.write_text("<!DOCTYPE html><html><body>empty</body></html>")
        baseline = min(chromium_seconds(empty, Path(root) / "p0") for _ in range(2))
        print(f"{'trials':>8} {'page MB':>8} {'build s':>8} {'first view s':>13} "
              f"{'every chart s':>14}")
        for trials in args.trials:
            folder = Path(root) / f"bench-{trials}"
            folder.mkdir()
            synthetic_sweep(folder, trials)
            start = time.perf_counter()
            location = Path(write_sweep_report(str(folder)))
            build = time.perf_counter() - start
            first = min(chromium_seconds(location, Path(root) / f"p{trials}-{attempt}")
                        for attempt in range(2)) - baseline
            every = min(chromium_seconds(location, Path(root) / f"a{trials}-{attempt}", True)
                        for attempt in range(2)) - baseline
            print(f"{trials:>8,} {location.stat().st_size / 1e6:>8.2f} {build:>8.1f} "
                  f"{first:>13.2f} {every:>14.2f}", flush=True)


if __name__ == "__main__":
    main()
