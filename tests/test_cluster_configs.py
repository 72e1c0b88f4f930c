"""The cluster configs parse, and say what users rely on: loopback, token auth, excludes."""

from pathlib import Path

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
