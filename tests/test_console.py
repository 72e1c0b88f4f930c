"""What a user's console shows: our output only — no TensorFlow C++ lines, no Ray notices."""

import importlib.util
import os
import subprocess
import sys
import time

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
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "RAY_ADDRESS": ""}, cwd=cwd)


def test_a_tracked_sweep_prints_only_its_own_lines_and_its_page_is_live_while_it_runs(
        tmp_path):
    """One sweep, its progress bar shown, tracked where the tracking extra is installed (what
    ``make install`` installs): its first lines come at once and name the page, which reloads
    itself while the sweep runs and is final after; every console line is ours, TensorFlow's
    start-up lines go to the sweep's logs, and MLflow's default store goes in ``--out``."""
    tracked = importlib.util.find_spec("mlflow") is not None
    config = tmp_path / "console.toml"
    config.write_text(SWEEP)
    out = tmp_path / "runs"
    flags = ["--mlflow", "--tensorboard", str(tmp_path / "tb")] if tracked else []
    with (tmp_path / "stderr.txt").open("w") as stderr:
        job = subprocess.Popen([sys.executable, "-m", "jobs.sweep", "--config", str(config),
                                "--out", str(out), *flags], stdout=subprocess.PIPE,
                               stderr=stderr, text=True, cwd=tmp_path,
                               env={**os.environ, "RAY_ADDRESS": ""})
        first = [job.stdout.readline(), job.stdout.readline()]
        assert first[0].startswith("sweep console: ")  # at once, before the data and Ray
        assert first[1].startswith("folder: ") and "report.html" in first[1]
        page = tmp_path / first[1].split("(page: ", 1)[1].split(",", 1)[0]
        live = False
        while job.poll() is None and not live:
            live = page.is_file() and 'http-equiv="refresh"' in page.read_text()
            time.sleep(0.2)
        rest, _ = job.communicate(timeout=300)
    printed, errors = "".join(first) + rest, (tmp_path / "stderr.txt").read_text()
    assert job.returncode == 0, errors[-2000:]
    assert live, "the page reloads itself while the sweep runs"
    final = page.read_text()
    assert 'http-equiv="refresh"' not in final and "4 ok" in final
    assert noise(printed + errors) == [] and "Creating initial MLflow database" not in errors
    assert "top 4 by validation accuracy" in printed
    (folder,) = out.glob("console-*")
    worker_logs = "".join(path.read_text() for path in (folder / "logs").glob("worker-*.log"))
    assert "absl::InitializeLog" in worker_logs or "oneDNN" in worker_logs, \
        "TensorFlow's start-up lines belong in the sweep's logs"
    if tracked:
        assert (out / "mlflow.db").is_file() and not (tmp_path / "mlruns.db").exists()


def test_scoring_prints_only_its_own_lines_and_starts_no_tensorflow(tmp_path):
    """Every console line is ours, the progress bar shows, and for a model this project saved
    the driver never starts TensorFlow (it reads the model from its archive; the actors score
    with numpy): the job runs under ``-X importtime``, whose lines list every module imported,
    on stderr and in ``logs/score.log`` (where loading a model writes)."""
    images = np.random.default_rng(0).integers(0, 256, (3000, 784), dtype=np.uint8)
    write_shards(str(tmp_path / "in"), "console", images, np.zeros(3000, np.int32), 3000, 1000)
    build_model(ModelConfig(), 784).save(tmp_path / "model.keras")
    result = _run("-X", "importtime", "-m", "jobs.score", "--model",
                  str(tmp_path / "model.keras"), "--input", str(tmp_path / "in"), "--out",
                  str(tmp_path / "out"), "--actors", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert noise(result.stdout + result.stderr) == []
    assert "3 of 3 shards scored" in result.stdout
    assert "scoring: 100%" in result.stderr  # the progress bar
    printed = result.stderr + (tmp_path / "out" / "logs" / "score.log").read_text()
    imported = {line.rsplit("|", 1)[-1].strip() for line in printed.splitlines()
                if line.startswith("import time:")}
    assert "numpy" in imported and not {"tensorflow", "keras"} & imported
