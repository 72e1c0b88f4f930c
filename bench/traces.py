"""Benchmark: how many graphs a sweep traces, and what reusing them across packs could save.

    .venv/bin/python bench/traces.py [--config configs/quick.toml ...]

Runs each config's sweep as ``jobs.sweep`` does (a local Ray, 2 worker slots on this machine),
with the pack task wrapped so that each worker counts the ``tf.function`` traces of the packed
trainer (``packed_training``: one epoch function and one validation function per pack) and
times each call. Prints per config: packs, traces, the seconds their first calls took beyond
a later call of the same function (tracing and graph optimisation: what reuse would save per
trace), the traces a worker would need if it kept one graph per pack shape (member count,
widths, activation, optimizer, batch, the data's shape), and that saving as a share of the
sweep's wall time (spread over the worker slots).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ray

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobs.sweep import _load_data  # noqa: E402
from mnist_core import session  # noqa: E402
from mnist_core.sweep.config import load_sweep_config  # noqa: E402
from mnist_core.sweep.driver import run_sweep  # noqa: E402


def main() -> None:
    """Run each config with counting workers and print what tracing cost."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", action="append",
                        help="sweep TOML (repeatable; default: quick and fashion_search)")
    args = parser.parse_args()
    configs = args.config or ["configs/quick.toml", "configs/fashion_search.toml"]
    session.connect()
    slots = int(ray.cluster_resources().get("CPU", 1))
    with tempfile.TemporaryDirectory() as folder:
        for number, path in enumerate(configs):
            record = Path(folder) / f"traces-{number}.jsonl"
            record.touch()
            config = load_sweep_config(str(ROOT / path))
            splits = _load_data(config)
            started = time.perf_counter()
            summary = run_sweep(config, str(Path(folder) / "runs"), f"bench-{number}",
                                show_progress=False, task=counting_task(str(record)),
                                splits=splits)
            wall = time.perf_counter() - started
            packs = [json.loads(line) for line in record.read_text().splitlines()]
            _print(path, summary, packs, wall, slots)


def counting_task(record: str):
    """``worker.run_pack_task`` with the packed trainer's traces counted and its calls timed;
    a line per pack appended to ``record``."""

    @ray.remote(max_calls=0)
    def run_pack_counting(pack, splits, num_cpus, log_dir=None):
        from mnist_core import packed_training
        from mnist_core.sweep.worker import train_pack_on_worker

        made = _counting(packed_training)
        made.clear()
        outcome = train_pack_on_worker(pack, splits, num_cpus, log_dir)
        config = pack.configs[0]
        shape = [len(pack.configs), list(config.model.hidden_units), config.model.activation,
                 config.optimizer, config.batch_size, repr(pack.view), len(splits.x_train)]
        firsts = [timed.calls[0] - statistics.median(timed.calls[1:])
                  for timed in made if len(timed.calls) > 1]
        line = {"pid": outcome.worker_pid, "shape": json.dumps(shape),
                "traces": sum(timed.function.experimental_get_tracing_count()
                              for timed in made),
                "first_call_extra": sum(firsts)}
        with open(record, "a") as out:
            out.write(json.dumps(line) + "\n")
        return outcome

    return run_pack_counting


class _Timed:
    """A traced function, each call's seconds kept."""

    def __init__(self, function):
        self.function, self.calls = function, []

    def __call__(self, *args):
        began = time.perf_counter()
        values = self.function(*args)
        [value.numpy() for value in values]
        self.calls.append(time.perf_counter() - began)
        return values


def _counting(packed_training) -> list[_Timed]:
    """Wrap the packed trainer's two graph makers once per worker process; the list of the
    functions made since it was last cleared."""
    if not hasattr(packed_training, "_bench_made"):
        packed_training._bench_made = []
        for name in ("_epoch_function", "_metrics_function"):
            setattr(packed_training, name,
                    _counted(getattr(packed_training, name), packed_training._bench_made))
    return packed_training._bench_made


def _counted(make, made: list[_Timed]):
    def counted(*args):
        timed = _Timed(make(*args))
        made.append(timed)
        return timed

    return counted


def _print(path: str, summary, packs: list[dict], wall: float, slots: int) -> None:
    traces = sum(pack["traces"] for pack in packs)
    extra = sum(pack["first_call_extra"] for pack in packs)
    per_trace = extra / max(traces, 1)
    graphs = len({(pack["pid"], pack["shape"]) for pack in packs})  # one per shape, per worker
    reusing = traces / max(len(packs), 1) * graphs  # each graph traced once, its functions all
    saving = (traces - reusing) * per_trace / slots
    print(f"== {path}: {summary.total} trials, {len(packs)} packs, {wall:.1f} s on {slots} "
          "worker slots")
    print(f"traces now                  {traces}  (first calls {extra:.2f} s beyond a later "
          f"call: {per_trace:.3f} s a trace)")
    print(f"traces with one graph per pack shape and worker   {reusing:.0f}")
    print(f"most that reuse could save  {saving:.2f} s of {wall:.1f} s "
          f"({saving / wall:.1%} of the sweep's wall time)")


if __name__ == "__main__":
    main()
