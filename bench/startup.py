"""Benchmark: what a user waits for at the small end — the first console line and the whole
command — beside the floor measured in the same run.

    .venv/bin/python bench/startup.py [--repeats 2]

Measures, as separate processes (each repeat in turn, so a busy machine slows all alike):
- the floor: ``python -c "import tensorflow"`` and a local Ray started and stopped without the
  dashboard (``ray.init`` + ``ray.shutdown``), the two costs no sweep can avoid;
- ``jobs.sweep --config configs/quick.toml`` (what ``make sweep`` runs): seconds to its first
  console line and to its end;
- ``jobs.score`` of 20,000 digits (4 shards) with a digits model: the same two figures;
- Ray Tune running the same 16 trials as the quick sweep (``tune.Tuner`` over the same grid,
  each trial the single-trial Keras path, ``training.train``, on the same digits splits, one
  CPU each), the whole command: the plain alternative to our packs at this size.
Prints medians, the ratio of each command to the floor (TensorFlow import + Ray start/stop),
and the quick sweep's wall time in parts (stopwatches around the driver's steps, in a run of
its own): interpreter and imports, Ray start, data, workers and training, compaction, the
choice with the page and tracking (the page alone beside it), Ray stop.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def main() -> None:
    """Run the measurements and print them beside the floor."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        _prepare_scoring(work)
        times: dict[str, list[tuple[float, float]]] = {}
        for repeat in range(args.repeats):
            for name, command in _commands(work, repeat).items():
                times.setdefault(name, []).append(_timed(command))
        parts = _parts(work)
    _print(times)
    _print_parts(parts)


def _commands(work: Path, repeat: int) -> dict[str, list[str]]:
    ray = "import ray; ray.init(include_dashboard=False, log_to_driver=False); ray.shutdown()"
    return {
        "import tensorflow": [PYTHON, "-c", "import tensorflow"],
        "Ray start + stop": [PYTHON, "-c", ray],
        "quick sweep": [PYTHON, "-m", "jobs.sweep", "--config", "configs/quick.toml", "--out",
                        str(work / f"runs-{repeat}"), "--no-progress"],
        "score 20,000 images": [PYTHON, "-m", "jobs.score", "--model",
                                str(work / "model.keras"), "--input", str(work / "images"),
                                "--out", str(work / f"scores-{repeat}"), "--no-progress"],
        "Ray Tune, same 16 trials": [PYTHON, "-c", TUNE.format(root=str(ROOT),
                                                               out=str(work / f"tune-{repeat}"))],
    }


# The quick sweep's 16 trials through Ray Tune, each trained alone by the single-trial path.
TUNE = """
import sys, dataclasses, itertools, logging
sys.path.insert(0, {root!r})
import ray
from ray import tune
from mnist_core.config import DataConfig, ModelConfig, TrialConfig
from mnist_core.data import load_dataset
from mnist_core.sweep.config import load_sweep_config

config = load_sweep_config({root!r} + "/configs/quick.toml")
trials = [trial.config for trial in config.trials]

def trainable(params):
    from mnist_core import devices
    from mnist_core.training import train
    devices.configure(num_cpus=1)
    splits = load_dataset(config.data)
    result = train(trials[params["index"]], splits)
    return {{"val_accuracy": result.history["val_accuracy"][-1]}}

print("Ray Tune: 16 trials", flush=True)
ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
tuner = tune.Tuner(tune.with_resources(trainable, {{"cpu": 1}}),
                   param_space={{"index": tune.grid_search(list(range(len(trials))))}},
                   run_config=tune.RunConfig(storage_path={out!r}, verbose=0))
results = tuner.fit()
assert len(results) == len(trials) and not results.errors, results.errors
ray.shutdown()
"""

# Stopwatches around the quick sweep's steps, run in-process as ``jobs.sweep`` runs.
PARTS = """
import json, sys, time
started = time.perf_counter()
sys.path.insert(0, {root!r})
import jobs.sweep as job
from jobs._cli import run
from mnist_core import session
from mnist_core.sweep import driver, recording
imported = time.perf_counter() - started
spans = {{}}

def timed(owner, name, part):
    function = getattr(owner, name)
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spans[part] = spans.get(part, 0.0) + time.perf_counter() - began
    setattr(owner, name, wrapper)

timed(session, "connect", "Ray start")
timed(job, "_load_data", "data")
timed(driver, "_train_all", "workers and training")
timed(recording.PartStore, "compact", "compaction")
timed(driver, "_finish", "choice, page, tracking")
timed(driver, "write_sweep_report", "  of which the page")
timed(session, "disconnect", "Ray stop")
code = run(job.main, ["--config", "configs/quick.toml", "--out", {out!r}, "--no-progress"])
with open({report!r}, "w") as report:
    json.dump({{"imports": imported, **spans}}, report)
sys.exit(code)
"""


def _parts(work: Path) -> dict[str, float]:
    """The quick sweep's wall time in parts; the rest (interpreter start, Ray's stop at exit)
    is the whole command's time less their sum."""
    report = work / "parts.json"
    script = PARTS.format(root=str(ROOT), out=str(work / "runs-parts"), report=str(report))
    _, whole = _timed([PYTHON, "-c", script])
    parts = json.loads(report.read_text())
    counted = sum(value for name, value in parts.items() if not name.startswith(" "))
    (trials,) = (work / "runs-parts").glob("quick-*/trials.parquet")
    setup = pq.read_table(trials, columns=["worker_setup_seconds"]).column(0).to_pylist()
    return parts | {"  worker TensorFlow start (max)": max(setup),
                    "the rest (interpreter start, Ray's stop at exit)": whole - counted,
                    "whole": whole}


def _timed(command: list[str]) -> tuple[float, float]:
    """Seconds to the command's first line of output, and to its end."""
    start = time.perf_counter()
    job = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True)
    first = job.stdout.readline()
    first_at = time.perf_counter() - start if first else float("nan")
    job.communicate()
    if job.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {job.returncode}")
    return first_at, time.perf_counter() - start


def _prepare_scoring(work: Path) -> None:
    """A digits model and the demo's 20,000 images, made once outside the timings."""
    script = (
        "import sys, numpy as np; sys.path.insert(0, {!r})\n"
        "from mnist_core import devices; devices.configure()\n"
        "from mnist_core.config import ModelConfig\n"
        "from mnist_core.data import held_out_images\n"
        "from mnist_core.model import build_model\n"
        "from mnist_core.scoring.shards import write_shards\n"
        "pixels, labels = held_out_images('digits')\n"
        "write_shards({!r}, 'digits', pixels, labels, 20000, 5000)\n"
        "build_model(ModelConfig(), 64, pixel_max=16).save({!r})\n"
    ).format(str(ROOT), str(work / "images"), str(work / "model.keras"))
    subprocess.run([PYTHON, "-c", script], check=True, capture_output=True)


def _print(times: dict[str, list[tuple[float, float]]]) -> None:
    median = {name: (statistics.median(t[0] for t in runs), statistics.median(t[1] for t in runs))
              for name, runs in times.items()}
    floor = median["import tensorflow"][1] + median["Ray start + stop"][1]
    print(f"== start-up costs, medians of {len(times['quick sweep'])} runs")
    for name, (first, whole) in median.items():
        shown = "   — " if first != first else f"{first:5.2f}"  # NaN: printed no line
        print(f"{name:<22} first line {shown} s   whole {whole:6.2f} s")
    print(f"floor (TensorFlow import + Ray start/stop)   {floor:6.2f} s")
    for name in ("quick sweep", "score 20,000 images", "Ray Tune, same 16 trials"):
        print(f"ratio {name} / floor   {median[name][1] / floor:.2f}x")


def _print_parts(parts: dict[str, float]) -> None:
    print("== the quick sweep in parts (one run)")
    for name, seconds in parts.items():
        print(f"{name:<36} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
