"""``python -m jobs.train`` end to end: every report file, the last line, and exit codes."""

import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.train import main

EXPECTED_FILES = {"model.keras", "metrics.parquet", "epochs.parquet", "confusion.parquet",
                  "per_class.parquet", "report.html", "plotly.min.js", "logs"}


@pytest.mark.slow
def test_train_writes_every_report(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["--dataset", "digits", "--epochs", "3", "--validation-split", "0.1",
                 "--out", str(out)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert {path.name for path in out.iterdir()} == EXPECTED_FILES
    assert sum(line.startswith("epoch ") for line in lines) == 3
    assert lines[-1].startswith("test_accuracy=") and " test_loss=" in lines[-1]
    metrics = pq.read_table(out / "metrics.parquet").to_pylist()
    assert len(metrics) == 1 and metrics[0]["params"] == 760
    assert f"test_accuracy={metrics[0]['test_accuracy']:.4f}" in lines[-1]
    assert pq.read_table(out / "epochs.parquet").num_rows == 3
    confusion = pq.read_table(out / "confusion.parquet").to_pydict()
    assert len(confusion["count"]) == 100 and sum(confusion["count"]) == 360
    assert pq.read_table(out / "per_class.parquet").num_rows == 10
    page = (out / "report.html").read_text()
    assert "Confusion matrix (test set)" in page and "Learning curves" in page


def _run(*args):
    return subprocess.run([sys.executable, "-m", "jobs.train", *args],
                          capture_output=True, text=True, timeout=120)


def test_missing_data_file_exits_2_with_one_line(tmp_path):
    result = _run("--dataset", "mnist", "--data-path", str(tmp_path / "absent.npz"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "absent.npz" in result.stderr


def test_corrupt_data_file_exits_3_with_one_line(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=np.zeros((2, 28, 28)), y_train=np.array([0, 12]),
             x_test=np.zeros((1, 28, 28)), y_test=np.array([0]))
    result = _run("--dataset", "mnist", "--data-path", str(path))
    assert result.returncode == 3
    assert result.stderr.strip().count("\n") == 0
    assert "outside 0-9" in result.stderr


@pytest.mark.parametrize("flags", [["--epochs", "0"], ["--optimizer", "lbfgs"],
                                   ["--hidden-units", "ten"], ["--validation-split", "1.5"],
                                   ["--momentum", "1.5"], ["--schedule", "step"],
                                   ["--optimizer", "adam", "--momentum", "0.9"],
                                   ["--restore-best"], ["--patience", "3"]])
def test_bad_flags_exit_2_with_one_line(flags):
    result = _run(*flags)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr


@pytest.mark.slow
def test_search_flags_train_and_report_the_kept_epoch(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["--dataset", "digits", "--epochs", "12", "--learning-rate", "0.5",
                 "--momentum", "0.9", "--nesterov", "--l2", "1e-4", "--schedule", "cosine",
                 "--validation-split", "0.1", "--patience", "2", "--out", str(out)])
    assert code == 0
    metrics = pq.read_table(out / "metrics.parquet").to_pylist()[0]
    assert (metrics["momentum"], metrics["nesterov"], metrics["l2"], metrics["schedule"],
            metrics["patience"]) == (0.9, True, 1e-4, "cosine", 2)
    epochs = pq.read_table(out / "epochs.parquet").to_pylist()
    best = max(range(len(epochs)), key=lambda i: (epochs[i]["val_accuracy"], -i))
    assert metrics["best_epoch"] == best + 1
    assert metrics["val_accuracy"] == epochs[best]["val_accuracy"]
    assert metrics["test_accuracy"] > 0.85
