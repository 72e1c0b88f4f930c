"""Benchmark: what the sweep driver costs per trial, with training taken out of the picture.

    .venv/bin/python bench/scale.py [--trials 10000,100000] [--tune-trials 1000]

Each size runs ``sweep.run_sweep`` in a fresh process on a local Ray (2 CPUs) with a stand-in
pack task that trains nothing but returns what a real pack returns for every member: a
5-epoch history, a 10×10 confusion matrix, 10 per-class rows, validation and test figures,
and the pack's best model (a real ``.keras`` file of the tutorial network, ~20 KB). The grid
samples learning rate and momentum; packs of 128. Measured in that process: peak RSS, CPU time
per trial (everything the driver does: expanding the trials, submitting and collecting packs,
writing parts, the live page, compaction, selection statistics, the final page), the
compaction's wall time, and, in another fresh process, the time to read back what a resume
needs. Beside it, Ray Tune's own overhead on this machine: a trivial function trainable,
``--tune-trials`` trials (about 1.3 s each on 2 cores), its driver's CPU time per trial.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SWEEP = """
[sweep]
name = "scale"
dataset = "digits"
validation_split = 0.1
samples = {trials}
[grid]
hidden_units = [[10]]
epochs = [5]
learning_rate = {{loguniform = [0.01, 3.0]}}
momentum = {{uniform = [0.0, 0.9]}}
[selection]
refit = false
[resources]
num_cpus = 1
pack_size = 128
"""


def main() -> None:
    """Measure each size in a fresh process, then Ray Tune, and print the table."""
    args = _parse()
    if args.child:
        print(json.dumps(_child(args.child, Path(args.out), args.phases)))
        return
    if args.resume_scan:
        print(json.dumps(_resume_scan(Path(args.resume_scan))))
        return
    rows = []
    for trials in [int(value) for value in args.trials.split(",")]:
        with tempfile.TemporaryDirectory() as folder:
            found = _run_json([sys.executable, __file__, "--child", str(trials), "--out", folder,
                               *(["--phases"] if args.phases else [])])
            found |= _run_json([sys.executable, __file__, "--resume-scan",
                                str(Path(folder) / "scale")])
        rows.append({"trials": trials, **found})
        print(json.dumps(rows[-1]), flush=True)
    tune = _ray_tune(args.tune_trials) if args.tune_trials else None
    _report(rows, tune)


def _child(trials: int, out: Path, phases: bool = False) -> dict:
    """Run one stand-in sweep in this process; its driver's costs (``phases``: and its peak
    RSS in each phase of the run)."""
    import ray

    from mnist_core.config import DataConfig
    from mnist_core.data import load_dataset
    from mnist_core.sweep import driver, recording
    from mnist_core.sweep.config import parse_sweep_config

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    splits = load_dataset(DataConfig(dataset="digits", validation_split=0.1))
    compaction = []
    compact = recording.PartStore.compact

    def timed_compact(self, *how) -> None:
        started = time.perf_counter()
        compact(self, *how)
        compaction.append(time.perf_counter() - started)

    recording.PartStore.compact = timed_compact  # a stopwatch around the real compaction
    watch = _PhaseWatch() if phases else None
    started_cpu, started = time.process_time(), time.perf_counter()
    config = parse_sweep_config(SWEEP.format(trials=trials))
    summary = driver.run_sweep(config, str(out), "scale", show_progress=False,
                               task=_stand_in_task(), splits=splits)
    cpu = time.process_time() - started_cpu
    assert summary.total == trials, summary
    phase_peaks = {} if watch is None else {"phase_peak_rss_mb": watch.peaks()}
    sizes = {name: (out / "scale" / f"{name}.parquet").stat().st_size
             for name in ("trials", "epochs", "confusion", "per_class")}
    return {"wall_s": round(time.perf_counter() - started, 1),
            "report_mb": {name: round(size / 2**20, 1) for name, size in sizes.items()},
            "driver_cpu_ms_per_trial": round(1000 * cpu / trials, 3),
            "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                        / 1024),
            "compaction_s": round(sum(compaction), 2), **phase_peaks}


class _PhaseWatch:
    """The driver's RSS sampled every 0.2 s, and the phases of its run marked by stopwatches
    around the functions that make them (training is what comes before compaction)."""

    PHASES = {"compaction": ("mnist_core.sweep.recording", "PartStore.compact"),
              "summary": ("mnist_core.sweep.driver", "_summarise"),
              "choice": ("mnist_core.sweep.refit", "choose"),
              "selection statistics": ("mnist_core.sweep.recording",
                                       "BestCheckpoint.record_selection"),
              "pages on the driver": ("mnist_core.sweep.driver", "write_sweep_report")}

    def __init__(self):
        import importlib
        import threading

        self.samples: list[tuple[float, int]] = []
        self.spans: list[tuple[str, float, float]] = []
        for phase, (module, name) in self.PHASES.items():
            owner = importlib.import_module(module)
            *path, attribute = name.split(".")
            for part in path:
                owner = getattr(owner, part)
            setattr(owner, attribute, self._timed(phase, getattr(owner, attribute)))
        threading.Thread(target=self._sample, daemon=True).start()

    def _timed(self, phase: str, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.spans.append((phase, started, time.perf_counter()))
        return timed

    def _sample(self) -> None:
        while True:
            with open("/proc/self/status") as status:
                rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
            self.samples.append((time.perf_counter(), rss // 1024))
            time.sleep(0.2)

    def peaks(self) -> dict[str, int]:
        """Each phase's peak RSS in MB."""
        first = min((start for phase, start, _ in self.spans if phase == "compaction"),
                    default=float("inf"))
        spans = [("training", 0.0, first), *self.spans]
        peaks: dict[str, int] = {}
        for phase, start, end in spans:
            inside = ([rss for at, rss in self.samples if start <= at <= end]  # or, shorter
                      or [rss for at, rss in self.samples if at >= start][:1])  # than a sample
            if inside:
                peaks[phase] = max(peaks.get(phase, 0), *inside)
        return peaks


def _resume_scan(folder: Path) -> dict:
    """What a resume reads before it can tell which trials it owes."""
    from mnist_core.sweep.recording import PartStore

    started = time.perf_counter()
    PartStore(str(folder))
    return {"resume_scan_s": round(time.perf_counter() - started, 2)}


def _stand_in_task():
    import ray

    @ray.remote(max_calls=0)
    def stand_in(pack, splits, num_cpus, log_dir=None):
        return stand_in_outcome(pack)

    return stand_in


def stand_in_outcome(pack):
    """A real pack's outcome for ``pack``, made up without training (its best member carries
    a real model file)."""
    import dataclasses
    import os as system

    import numpy as np

    from mnist_core.evaluation import Evaluation
    from mnist_core.sweep.worker import PackOutcome
    from mnist_core.trial import TrialResult

    rng = np.random.default_rng(abs(hash(pack.pack_id)) % 2**32)
    results = []
    for trial in pack.trials:
        accuracy = rng.uniform(0.1, 0.97, 5)
        history = {"loss": rng.uniform(0.1, 2.3, 5).tolist(), "accuracy": accuracy.tolist(),
                   "val_loss": rng.uniform(0.1, 2.3, 5).tolist(),
                   "val_accuracy": accuracy.tolist()}
        confusion = rng.integers(0, 40, (10, 10))
        scores = rng.uniform(0, 1, (3, 10))
        evaluation = Evaluation(float(rng.uniform(0.1, 2)), float(accuracy[-1]), confusion,
                                *scores, confusion.sum(axis=1))
        results.append(TrialResult(trial.config, 760, history, 5, evaluation, 0.01, b"", 144))
    from mnist_core.sweep.worker import best_member

    for position in best_member(pack, results):  # as the real worker: its best's model only
        results[position] = dataclasses.replace(results[position], model_bytes=_model_bytes())
    outcome = PackOutcome(results, "stand-in", (), system.getpid(), 0.0, 0.01)
    if pack.rows is not None:  # as the real worker: it builds the pack's report tables
        from mnist_core.sweep.worker import as_tables

        outcome = as_tables(pack, outcome)
    return outcome


_MODEL: list[bytes] = []


def _model_bytes() -> bytes:
    if not _MODEL:
        from mnist_core.config import ModelConfig
        from mnist_core.model import build_model
        from mnist_core.trial import model_to_bytes

        _MODEL.append(model_to_bytes(build_model(ModelConfig(), 64, 16.0)))
    return _MODEL[0]


def _ray_tune(trials: int) -> dict:
    """Ray Tune's driver CPU per trial for a trivial function trainable, in a fresh process."""
    code = f"""
import json, time, ray
from ray import tune
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
def trainable(config):
    return {{"score": config["x"]}}
started_cpu, started = time.process_time(), time.perf_counter()
tune.Tuner(trainable, param_space={{"x": tune.uniform(0, 1)}},
           tune_config=tune.TuneConfig(num_samples={trials}, metric="score", mode="max"),
           run_config=tune.RunConfig(verbose=0, storage_path="{tempfile.mkdtemp()}")).fit()
print(json.dumps({{"wall_s": round(time.perf_counter() - started, 1),
                   "driver_cpu_ms_per_trial": round(1000 * (time.process_time() - started_cpu)
                                                    / {trials}, 3)}}))
"""
    return {"trials": trials, **_run_json([sys.executable, "-c", code])}


def _run_json(command: list[str]) -> dict:
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "RAY_ADDRESS": "", "TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.returncode != 0:
        raise SystemExit(f"{command[:3]} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _report(rows: list[dict], tune: dict | None) -> None:
    print(f"\n{'trials':>10} {'wall s':>8} {'driver CPU ms/trial':>20} {'peak RSS MB':>12} "
          f"{'compaction s':>13} {'resume scan s':>14}")
    for row in rows:
        print(f"{row['trials']:>10,} {row['wall_s']:>8} {row['driver_cpu_ms_per_trial']:>20} "
              f"{row['driver_peak_rss_mb']:>12,} {row['compaction_s']:>13} "
              f"{row['resume_scan_s']:>14}   reports (MB): {row['report_mb']}")
        if "phase_peak_rss_mb" in row:
            print(f"{'':>10} driver peak RSS by phase (MB): {row['phase_peak_rss_mb']}")
    if tune:
        theirs, ours = tune["driver_cpu_ms_per_trial"], rows[-1]["driver_cpu_ms_per_trial"]
        print(f"Ray Tune, {tune['trials']:,} trivial trials: {tune['wall_s']} s, driver CPU "
              f"{theirs} ms/trial ({theirs / ours:.0f}x ours at the largest size)")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", default="10000,100000,1000000",
                        help="comma-separated sizes")
    parser.add_argument("--tune-trials", type=int, default=200, help="0: skip Ray Tune")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    parser.add_argument("--resume-scan", default="", help=argparse.SUPPRESS)
    parser.add_argument("--phases", action="store_true",
                        help="also print the driver's peak RSS in each phase of the run")
    return parser.parse_args()


if __name__ == "__main__":
    main()
