"""One run per output folder, shown with real processes: a second run is turned away with the
holder named, or waits with --wait; a dead holder's lock is gone with it."""

import os
import subprocess
import sys

import numpy as np
import pytest

from mnist_core.config import ModelConfig
from mnist_core.model import build_model
from mnist_core.scoring.shards import write_shards

HOLDER = """
import sys
from mnist_core import lock
with lock.hold(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def job(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (200, 64), dtype=np.uint8)
    write_shards(str(tmp_path / "in"), "lock", images, np.zeros(200, np.int32), 200, 100)
    build_model(ModelConfig(), 64).save(tmp_path / "model.keras")
    out = tmp_path / "out"
    out.mkdir()
    return [sys.executable, "-m", "jobs.score", "--model", str(tmp_path / "model.keras"),
            "--input", str(tmp_path / "in"), "--out", str(out)]


def _hold(out):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_exits_2_naming_the_folder_and_the_holder(job):
    out = job[-1]
    holder = _hold(out)
    try:
        result = subprocess.run(job, capture_output=True, text=True, timeout=120)
    finally:
        holder.communicate("")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: --out {out} is in use by another run (pid {holder.pid} on ")
    assert not os.path.exists(os.path.join(out, "manifest.parquet"))


@pytest.mark.slow
def test_wait_queues_behind_the_holder_then_scores(job):
    out = job[-1]
    holder = _hold(out)
    waiting = subprocess.Popen([*job, "--wait"], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "RAY_ADDRESS": ""})
    try:
        assert waiting.stdout.readline().startswith(f"waiting for the run that holds {out}")
        assert waiting.poll() is None
    finally:
        holder.communicate("")
    rest, _ = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, rest
    assert "2 of 2 shards scored" in rest


def test_the_lock_dies_with_its_holder(job):
    from mnist_core import lock

    out = job[-1]
    holder = _hold(out)
    holder.kill()
    holder.wait()
    with lock.hold(out):  # raises OutputError if the dead holder's lock survived
        assert "held" not in os.listdir(out)
