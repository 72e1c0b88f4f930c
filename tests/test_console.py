"""What a user's console shows: our output only — no TensorFlow C++ lines, no Ray notices."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from _console import noise

from mnist_core.config import ModelConfig
from mnist_core.model import build_model
from mnist_core.scoring.shards import write_shards

pytestmark = pytest.mark.slow

SWEEP = """
[sweep]
name = "console"
dataset = "digits"
[grid]
activation = ["sigmoid", "relu"]
learning_rate = [0.1, 0.5]
epochs = [2]
"""


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "RAY_ADDRESS": ""}, cwd=cwd)


def test_a_sweep_tracked_by_mlflow_and_tensorboard_prints_only_its_own_lines(tmp_path):
    """One sweep, its progress bar shown, tracked where the tracking extra is installed (what
    ``make install`` installs): every console line is ours, TensorFlow's start-up lines go to
    the sweep's logs, and MLflow's default store goes in ``--out``."""
    tracked = importlib.util.find_spec("mlflow") is not None
    config = tmp_path / "console.toml"
    config.write_text(SWEEP)
    out = tmp_path / "runs"
    flags = ["--mlflow", "--tensorboard", str(tmp_path / "tb")] if tracked else []
    result = _run("jobs.sweep", "--config", str(config), "--out", str(out), *flags, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert noise(output) == [] and "Creating initial MLflow database" not in output
    assert "sweep console-" in result.stdout and "top 4 by validation accuracy" in result.stdout
    (folder,) = out.glob("console-*")
    worker_logs = "".join(path.read_text() for path in (folder / "logs").glob("worker-*.log"))
    assert "absl::InitializeLog" in worker_logs or "oneDNN" in worker_logs, \
        "TensorFlow's start-up lines belong in the sweep's logs"
    if tracked:
        assert (out / "mlflow.db").is_file() and not (tmp_path / "mlruns.db").exists()


def test_scoring_prints_only_its_own_lines(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3000, 784), dtype=np.uint8)
    write_shards(str(tmp_path / "in"), "console", images, np.zeros(3000, np.int32), 3000, 1000)
    build_model(ModelConfig(), 784).save(tmp_path / "model.keras")
    result = _run("jobs.score", "--model", str(tmp_path / "model.keras"), "--input",
                  str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--actors", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert noise(result.stdout + result.stderr) == []
    assert "3 of 3 shards scored" in result.stdout
    assert "scoring: 100%" in result.stderr  # the progress bar
