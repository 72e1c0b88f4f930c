"""One run per output folder, shown with real processes: a second run is turned away with the
holder named, or waits with --wait; a dead holder's lock is gone with it."""

import os
import subprocess
import sys

import numpy as np
import pytest
from _processes import hold_lock

from mnist_core.config import ModelConfig
from mnist_core.model import build_model
from mnist_core.scoring.shards import write_shards


@pytest.fixture
def job(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (200, 64), dtype=np.uint8)
    write_shards(str(tmp_path / "in"), "lock", images, np.zeros(200, np.int32), 200, 100)
    build_model(ModelConfig(), 64).save(tmp_path / "model.keras")
    out = tmp_path / "out"
    out.mkdir()
    return [sys.executable, "-m", "jobs.score", "--model", str(tmp_path / "model.keras"),
            "--input", str(tmp_path / "in"), "--out", str(out)]


def test_a_second_run_exits_2_naming_the_folder_and_the_holder(job):
    out = job[-1]
    holder = hold_lock(out)
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
    holder = hold_lock(out)
    waiting = subprocess.Popen([*job, "--wait"], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "RAY_ADDRESS": ""})
    try:
        assert waiting.stdout.readline().startswith("checking ")  # a first line at once
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
    holder = hold_lock(out)
    holder.kill()
    holder.wait()
    with lock.hold(out):  # raises OutputError if the dead holder's lock survived
        assert "held" not in os.listdir(out)




def _hold_elsewhere(out, tmp_path, environment):
    """Hold the lock from a process with a temporary folder of its own, as on another
    machine: only a lock in the object store itself can keep it apart from this one."""
    other = tmp_path / "other-machine-tmp"
    other.mkdir()
    return hold_lock(out, env={**os.environ, **environment, "TMPDIR": str(other)})


def test_an_s3_out_is_locked_across_machines(s3_server, tmp_path):
    from mnist_core import lock
    from mnist_core.errors import OutputBusy

    out = "s3://mnist/locked"
    holder = _hold_elsewhere(out, tmp_path, s3_server)
    try:
        with pytest.raises(OutputBusy, match=rf"{out} is in use by another run "
                                             rf"\(pid {holder.pid} on "), lock.hold(out):
            pass
    finally:
        holder.communicate("")
    with lock.hold(out):  # released by its holder: free again
        pass


def test_a_crashed_holders_expired_s3_lease_is_taken_over(s3_server):
    import json
    import time

    import boto3

    from mnist_core import lock

    client = boto3.client("s3")
    stale = {"holder": "pid 1 on gone since long ago", "expires": time.time() - 1}
    client.put_object(Bucket="mnist", Key="stale/.lock", Body=json.dumps(stale).encode())
    with lock.hold("s3://mnist/stale"):
        body = json.loads(client.get_object(Bucket="mnist", Key="stale/.lock")["Body"].read())
        assert f"pid {os.getpid()}" in body["holder"] and body["expires"] > time.time()
    assert client.list_objects_v2(Bucket="mnist", Prefix="stale/").get("KeyCount") == 0


def test_a_live_s3_lease_is_never_taken_over(s3_server):
    import json
    import time

    import boto3

    from mnist_core import lock
    from mnist_core.errors import OutputBusy

    live = {"holder": "pid 7 on elsewhere since now", "expires": time.time() + 60}
    boto3.client("s3").put_object(Bucket="mnist", Key="live/.lock",
                                  Body=json.dumps(live).encode())
    with pytest.raises(OutputBusy, match="pid 7 on elsewhere"), lock.hold("s3://mnist/live"):
        pass
