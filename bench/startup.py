"""Benchmark: what a user waits for at the small end — the first console line and the whole
command — beside the floor measured in the same run.

    .venv/bin/python bench/startup.py [--repeats 2]

Measures, as separate processes (each repeat in turn, so a busy machine slows all alike):
- the floor: ``python -c "import tensorflow"`` and a local Ray started and stopped without the
  dashboard (``ray.init`` + ``ray.shutdown``), the two costs no sweep can avoid;
- ``jobs.sweep --config configs/quick.toml`` (what ``make sweep`` runs): seconds to its first
  console line and to its end;
- ``jobs.score`` of 20,000 digits (4 shards) with a digits model: the same two figures.
Prints medians and the ratio of each command to the floor (TensorFlow import + Ray start/stop).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    _print(times)


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
    }


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
    for name in ("quick sweep", "score 20,000 images"):
        print(f"ratio {name} / floor   {median[name][1] / floor:.2f}x   (target <= 1.1)")


if __name__ == "__main__":
    main()
