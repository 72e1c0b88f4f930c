"""A real two-node local Ray cluster: jobs through the Jobs API, and losing a node mid-sweep.

The fixture runs ``python -m cluster.local up`` (what ``make cluster-up`` runs) on free ports,
with token authentication, and ``down`` at the end.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import _cluster
import numpy as np
import pyarrow.parquet as pq
import pytest
from _console import noise

from cluster import local
from mnist_core import storage

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

SWEEP = """
[sweep]
name = "{name}"
dataset = "digits"
validation_split = 0.1
seeds = [0, 1]
[grid]
activation = ["sigmoid", "relu"]
optimizer = ["sgd"]
learning_rate = [0.5]
batch_size = [{batch}]
epochs = [{epochs}]
[resources]
num_cpus = 1
max_retries = 2
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    port, dashboard = _cluster.free_ports(1), _cluster.free_ports(4)
    subprocess.run([sys.executable, "-m", "cluster.local", "up", "--dir", str(folder),
                    "--port", str(port), "--dashboard-port", str(dashboard)],
                   check=True, timeout=180)
    yield {"folder": folder, "address": f"http://127.0.0.1:{dashboard}",
           "env": {**os.environ, **local.auth_env(folder)}, "ports": {port, dashboard}}
    local.down(folder)


def _submit(cluster, *args, timeout=300, cwd=None):
    return subprocess.run([sys.executable, "-m", "jobs.submit", *args,
                           "--address", cluster["address"]], cwd=cwd,
                          env=cluster["env"], capture_output=True, text=True, timeout=timeout)


def test_services_listen_on_loopback_and_require_the_token(cluster):
    state = json.loads((cluster["folder"] / "cluster.json").read_text())
    assert state["dashboard"].startswith("http://127.0.0.1:")
    from urllib.error import HTTPError
    from urllib.request import urlopen

    with pytest.raises(HTTPError) as refused:
        urlopen(f"{cluster['address']}/api/jobs/", timeout=10)
    assert refused.value.code == 401
    assert oct((cluster["folder"] / "auth_token").stat().st_mode)[-3:] == "600"


def test_sweep_submitted_without_out_lands_in_the_submitters_runs(cluster, tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(SWEEP.format(name="jobs-api", batch=64, epochs=3))
    result = _submit(cluster, "sweep", "--config", "sweep.toml", "--no-progress", cwd=tmp_path)
    assert noise(result.stdout + result.stderr) == []
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "SUCCEEDED" in result.stdout and "top 4 by validation accuracy" in result.stdout
    (folder,) = [path for path in (tmp_path / "runs").iterdir() if path.is_dir()]
    assert json.loads((tmp_path / "runs" / "latest").read_text())["sweep_id"] == folder.name
    trials = pq.read_table(folder / "trials.parquet").to_pylist()
    assert len(trials) == 4 and {row["status"] for row in trials} == {"ok"}
    assert (folder / "best" / "model.keras").is_file()


def test_scoring_submitted_through_the_jobs_api(cluster, tmp_path):
    from mnist_core.config import ModelConfig
    from mnist_core.data import held_out_images
    from mnist_core.model import build_model
    from mnist_core.scoring.shards import write_shards

    pixels, labels = held_out_images("digits")
    write_shards(str(tmp_path / "in"), "digits", pixels, labels, 3000, 1000)
    build_model(ModelConfig(), 64, pixel_max=16).save(tmp_path / "model.keras")
    result = _submit(cluster, "score", "--model", str(tmp_path / "model.keras"), "--input",
                     str(tmp_path / "in" / "*.parquet"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    predictions = pq.read_table(tmp_path / "out" / "predictions").to_pandas()
    assert len(predictions) == 3000 and predictions["id"].is_unique


def test_sweep_survives_losing_the_worker_node(cluster, tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(SWEEP.format(name="node-loss", batch=16, epochs=60))
    out = tmp_path / "runs"
    follower = subprocess.Popen(
        [sys.executable, "-m", "jobs.submit", "sweep", "--config", str(config), "--out",
         str(out), "--no-progress", "--address", cluster["address"]],
        env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for_first_trial(out)
    raylet = _cluster.raylet_pid(cluster["folder"], "worker")
    for pid in _cluster.node_pids(str(local.temp_root(cluster["folder"]) / "worker")):
        os.kill(pid, 9)
    _wait_gone(raylet)
    log, _ = follower.communicate(timeout=300)
    assert "job mnist-sweep-" in log, log[-3000:]
    (folder,) = [path for path in out.iterdir() if path.is_dir()]
    trials = pq.read_table(folder / "trials.parquet").to_pylist()
    ids = [row["trial_id"] for row in trials]
    assert len(ids) == len(set(ids)) == 4, log[-3000:]
    assert all(row["status"] == "ok" or row["error"] for row in trials)
    confusion = pq.read_table(folder / "confusion.parquet").to_pandas()
    ok = [row["trial_id"] for row in trials if row["status"] == "ok"]
    assert sorted(confusion["trial_id"].unique()) == sorted(ok)
    assert np.all(confusion.groupby("trial_id")["count"].sum() == 360)


def _wait_for_first_trial(out: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = list(out.glob("*/parts/trials/*.parquet"))
        if files and storage.read_table(str(files[0])).num_rows >= 1:  # one read: see crash_when
            return
        time.sleep(0.2)
    raise TimeoutError("no trial finished in time")


def _wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state == "Z":
            return
        time.sleep(0.1)
    raise TimeoutError(f"the worker node's raylet {pid} survived SIGKILL")


@pytest.mark.parametrize(("job", "expected"), [("sweep", 2), ("score", 3)])
def test_submit_passes_the_jobs_exit_code_through(cluster, tmp_path, job, expected):
    if job == "sweep":
        config = tmp_path / "bad.toml"
        config.write_text(SWEEP.format(name="bad", batch=64, epochs=0))
        args = ["--config", str(config), "--out", str(tmp_path / "runs")]
    else:
        (tmp_path / "in").mkdir()
        np.save(tmp_path / "in" / "images.npy", np.zeros((4, 8, 8), np.uint8))
        (tmp_path / "corrupt.keras").write_bytes(b"not a keras archive")
        args = ["--model", str(tmp_path / "corrupt.keras"), "--input", str(tmp_path / "in"),
                "--out", str(tmp_path / "out")]
    result = _submit(cluster, job, *args)
    assert result.returncode == expected, result.stdout[-3000:] + result.stderr[-3000:]


def _connections(process):
    import psutil

    try:
        return process.net_connections("inet")
    except psutil.Error:
        return []


def test_a_missing_token_is_one_line_and_exit_2(cluster, tmp_path):
    env = {key: value for key, value in cluster["env"].items()
           if not key.startswith("RAY_AUTH")}
    result = subprocess.run([sys.executable, "-m", "jobs.submit", "sweep", "--config",
                             "configs/quick.toml", "--address", cluster["address"],
                             "--out", str(tmp_path / "runs")],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "refused this client's token" in line and "RAY_AUTH_TOKEN_PATH" in line


def test_down_leaves_no_process_and_no_listening_port(cluster):
    """Last in this file: it stops the module's cluster (whose teardown then finds nothing)."""
    import psutil

    root = str(local.temp_root(cluster["folder"]))
    processes = local.cluster_processes(root)
    listening = {connection.laddr.port for process in processes
                 for connection in _connections(process) if connection.status == "LISTEN"}
    assert cluster["ports"] <= listening
    pids = {process.pid for process in processes}
    local.down(cluster["folder"])
    survivors = [pid for pid in pids if psutil.pid_exists(pid)
                 and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert survivors == [] and local.cluster_processes(root) == []
    still = {c.laddr.port for c in psutil.net_connections("inet") if c.status == "LISTEN"}
    assert listening & still == set()
