"""The cluster configs parse, and say what users rely on: loopback, token auth, excludes."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import _cluster
import pytest
import yaml

from jobs.submit import absolute_paths, runtime_env

CLUSTER = Path(__file__).resolve().parent.parent / "cluster"


@pytest.mark.parametrize(
    ("name", "kind"),
    [("kuberay/raycluster.yaml", "RayCluster"), ("kuberay/rayjob-sweep.yaml", "RayJob"),
     ("kuberay/raycronjob-score.yaml", "RayCronJob")],
)
def test_kuberay_manifests_parse_with_token_auth(name, kind):
    manifest = yaml.safe_load((CLUSTER / name).read_text())
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == kind
    spec = manifest["spec"]
    cluster = spec.get("rayClusterSpec") or spec.get("jobTemplate", {}).get("rayClusterSpec") \
        or spec
    assert cluster["authOptions"] == {"mode": "token"}
    assert cluster["headGroupSpec"]["serviceType"] == "ClusterIP"


def test_raycronjob_schedules_scoring():
    spec = yaml.safe_load((CLUSTER / "kuberay/raycronjob-score.yaml").read_text())["spec"]
    assert len(spec["schedule"].split()) == 5
    assert "jobs.score" in spec["jobTemplate"]["entrypoint"]


def test_launcher_config_keeps_the_dashboard_on_loopback():
    config = yaml.safe_load((CLUSTER / "cluster.yaml").read_text())
    assert set(config["available_node_types"]) == {"head", "gpu_worker"}
    assert config["available_node_types"]["gpu_worker"]["min_workers"] == 0
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "RAY_AUTH_MODE=token" in head_start


def test_runtime_env_ships_the_project_without_venv_or_data():
    environment = runtime_env()
    assert Path(environment["working_dir"]) == CLUSTER.parent
    assert {".venv/", "runs/", "data/"} <= set(environment["excludes"])
    assert environment["env_vars"]["KERAS_BACKEND"] == "tensorflow"


def test_relative_paths_are_made_absolute_and_uris_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = absolute_paths(["--config", "c.toml", "--out=s3://bucket/runs", "--epochs", "3",
                           "--input", "/abs/*.parquet"])
    assert args == ["--config", str(tmp_path / "c.toml"), "--out=s3://bucket/runs",
                    "--epochs", "3", "--input", "/abs/*.parquet"]


def _cron_command() -> str:
    lines = (CLUSTER / "crontab.example").read_text().splitlines()
    (line,) = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return line.split(maxsplit=5)[5]


@pytest.mark.slow
def test_the_cron_line_scores_with_the_latest_sweep_as_written(ray_session, tmp_path):
    """Runs the crontab example's command, only its paths moved into tmp_path."""
    import subprocess
    import sys

    import numpy as np
    import pyarrow.parquet as pq

    from mnist_core.data import held_out_images
    from mnist_core.scoring.shards import write_shards
    from mnist_core.sweep.config import parse_sweep_config
    from mnist_core.sweep.driver import run_sweep

    project, incoming, scores = tmp_path / "project", tmp_path / "incoming", tmp_path / "scores"
    project.mkdir()
    (project / ".venv").symlink_to(Path(sys.prefix))
    config = parse_sweep_config('[sweep]\nname = "cron"\ndataset = "digits"\n'
                                '[grid]\nepochs = [2]\n')
    summary = run_sweep(config, str(project / "runs"), "cron-1", show_progress=False)
    pixels, labels = held_out_images("digits")
    write_shards(str(incoming), "digits", pixels, labels, 2000, 1000)
    command = (_cron_command().replace("/srv/mnist-ray", str(project))
               .replace("/data/incoming", str(incoming)).replace("/data/scores", str(scores))
               .replace("/var/log/mnist-score.log", str(tmp_path / "score.log")))
    result = subprocess.run(["bash", "-c", command], env={**os.environ, "RAY_ADDRESS": ""},
                            timeout=300)
    log = (tmp_path / "score.log").read_text()
    assert result.returncode == 0, log
    assert "runs/cron-1/best/model.keras" in log
    predictions = pq.read_table(scores / "predictions").to_pandas()
    assert len(predictions) == 2000 and predictions["id"].is_unique
    best = summary.top[0]
    assert best["status"] == "ok"
    counts = np.bincount(predictions["predicted_label"], minlength=10)
    assert (counts > 0).sum() >= 8, "a trained digits model predicts most classes"


@pytest.mark.parametrize(("status", "driver", "expected"), [
    ("SUCCEEDED", 0, 0), ("FAILED", 1, 1), ("FAILED", 2, 2), ("FAILED", 3, 3),
    ("STOPPED", None, 1), ("FAILED", -9, 1), ("SUCCEEDED", None, 0),
])
def test_submit_exit_code_is_the_jobs_own(status, driver, expected):
    from jobs.submit import job_exit_code

    assert job_exit_code(status, driver) == expected


def test_a_sweeps_default_out_and_tracking_stores_are_made_absolute(tmp_path, monkeypatch):
    from jobs.submit import ROOT, with_default_out

    monkeypatch.chdir(tmp_path)
    args = absolute_paths(with_default_out("sweep", ["--config", str(ROOT / "configs/quick.toml"),
                                                     "--mlflow", "sqlite:///mlruns.db",
                                                     "--tensorboard", "tb"]))
    assert args == ["--config", "configs/quick.toml", "--mlflow",
                    f"sqlite:///{tmp_path}/mlruns.db", "--tensorboard", str(tmp_path / "tb"),
                    "--out", str(tmp_path / "runs")]
    assert with_default_out("score", ["--out", "x"]) == ["--out", "x"]


@pytest.mark.parametrize(("address", "local"), [
    ("http://127.0.0.1:8265", True), ("http://localhost:8265", True),
    ("127.0.0.1:8265", True), ("http://10.0.0.5:8265", False),
    ("https://ray.example.com", False)])
def test_which_clusters_share_this_machines_disks(address, local):
    from jobs.submit import is_local_cluster

    assert is_local_cluster(address) is local


@pytest.mark.parametrize(("args", "named"), [
    (["sweep", "--config", "configs/quick.toml"], "--out /"),
    (["sweep", "--config", "configs/quick.toml", "--out", "s3://b/runs", "--tensorboard", "tb"],
     "--tensorboard /"),
    (["score", "--model", "s3://b/m.keras", "--input", "s3://b/in", "--out", "scores"],
     "--out /"),
])
def test_a_remote_cluster_refuses_local_outputs_in_one_line(capsys, args, named):
    from jobs._cli import run
    from jobs.submit import main

    assert run(main, [*args, "--address", "http://10.9.8.7:8265"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {named}") and "s3://" in line and "--shared-mount" in line


def test_submit_help_lists_the_jobs_own_flags():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "jobs.submit", "sweep", "--help"],
                            capture_output=True, text=True, timeout=60, check=True)
    assert "passed through" in result.stdout and "--resume SWEEP_ID" in result.stdout
    assert "(default: runs)" in result.stdout  # defaults shown


@pytest.mark.parametrize(("flag", "offset", "variable"), [
    ("--port", 0, "RAY_PORT"), ("--dashboard-port", 0, "DASHBOARD_PORT"),
    ("--dashboard-port", 3, "DASHBOARD_PORT"),
])
def test_cluster_up_names_a_taken_port_and_the_variable_to_change(tmp_path, flag, offset,
                                                                   variable):
    base = _cluster.free_ports(4)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + offset))
        ports = {"--port": _cluster.free_ports(1),
                 "--dashboard-port": _cluster.free_ports(4)} | {flag: base}
        result = subprocess.run([sys.executable, "-m", "cluster.local", "up", "--dir",
                                 str(tmp_path / "c"), *(f"{key}={value}" for key, value in
                                                        ports.items())],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: port {base + offset} (")
    assert f"choose another {variable}, e.g. make cluster-up {variable}=" in line
    assert not (tmp_path / "c").exists()
