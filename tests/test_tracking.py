"""Tracking against a real MLflow server started here on 127.0.0.1 (and a SQLite store) and
real TensorBoard event files: runs, params, per-epoch metrics, statuses, the best model
registered and loaded back."""

import contextlib
import io
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.sweep import main
from mnist_core.reports import best_trial

pytestmark = pytest.mark.slow
mlflow = pytest.importorskip("mlflow", reason="the tracking extra is not installed")

SWEEP = """
[sweep]
name = "tracked"
dataset = "digits"
[grid]
learning_rate = [0.1, 0.5, 1.0]
epochs = [3]
[tracking]
experiment = "tracked-test"
"""


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` on a free loopback port, with its own SQLite store and artifacts."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
         "--port", str(port), "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
         "--artifacts-destination", str(folder / "artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT)
    address = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{address}/health", timeout=2)
            break
        except OSError:
            assert server.poll() is None, (folder / "server.log").read_text()[-2000:]
            time.sleep(0.5)
    yield address
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="module", params=["server", "sqlite"])
def tracked(request, ray_session, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracked")
    config = folder / "sweep.toml"
    config.write_text(SWEEP)
    store = (request.getfixturevalue("mlflow_server") if request.param == "server"
             else f"sqlite:///{folder / 'mlruns.db'}")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["--config", str(config), "--out", str(folder / "runs"), "--no-progress",
                     "--mlflow", store, "--tensorboard", str(folder / "tb")]) == 0
    (sweep,) = [path for path in (folder / "runs").iterdir() if path.is_dir()]
    trials = pq.read_table(sweep / "trials.parquet").to_pylist()
    return {"folder": folder, "store": store, "sweep": sweep, "trials": trials,
            "printed": printed.getvalue()}


def test_the_console_says_where_the_sweep_was_tracked(tracked):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracked["store"])
    experiment = client.get_experiment_by_name("tracked-test").experiment_id
    (parent,) = client.search_runs([experiment], "tags.kind = 'sweep'")
    lines = tracked["printed"].splitlines()
    assert f"mlflow: run {parent.info.run_id} ({tracked['sweep'].name}) in {tracked['store']} " \
           f"(open with: mlflow ui --backend-store-uri {tracked['store']})" in lines
    tensorboard = tracked["folder"] / "tb"
    assert f"tensorboard: {tensorboard / tracked['sweep'].name} (open with: tensorboard " \
           f"--logdir {tensorboard})" in lines


def test_mlflow_holds_a_parent_run_and_a_child_per_trial(tracked):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracked["store"])
    experiment = client.get_experiment_by_name("tracked-test").experiment_id
    (parent,) = client.search_runs([experiment], "tags.kind = 'sweep'")
    children = client.search_runs([experiment], "tags.kind = 'trial'")
    assert parent.data.tags["sweep_id"] == tracked["sweep"].name
    assert sorted(run.data.tags["trial_id"] for run in children) == sorted(
        row["trial_id"] for row in tracked["trials"])
    best = best_trial(tracked["trials"])
    assert parent.data.tags["best_trial_id"] == best["trial_id"]
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(best["val_accuracy"])
    assert parent.info.status == "FINISHED" and parent.info.end_time is not None
    assert parent.data.params["sweep.name"] == '"tracked"'
    assert parent.data.params["grid.learning_rate"] == "[0.1, 0.5, 1.0]"
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.info.end_time - run.info.start_time >= 0
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        row = next(r for r in tracked["trials"] if r["trial_id"] == run.data.tags["trial_id"])
        assert float(run.data.params["learning_rate"]) == row["learning_rate"]
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [metric.step for metric in history] == [1, 2, 3]
        stamps = [metric.timestamp for metric in history]
        assert stamps == sorted(stamps) and run.info.start_time <= stamps[0]
        assert run.data.metrics["final_test_accuracy"] == pytest.approx(row["test_accuracy"])
        confusion = client.download_artifacts(run.info.run_id, "confusion.csv",
                                              str(tracked["folder"]))
        lines = Path(confusion).read_text().strip().splitlines()
        assert lines[0] == "true_label,predicted_label,count" and len(lines) == 101


def test_a_resumed_sweep_logs_nothing_twice(tracked):
    from mlflow.tracking import MlflowClient

    assert main(["--resume", tracked["sweep"].name, "--out", str(tracked["folder"] / "runs"),
                 "--no-progress", "--mlflow", tracked["store"]]) == 0
    client = MlflowClient(tracking_uri=tracked["store"])
    experiment = client.get_experiment_by_name("tracked-test").experiment_id
    assert len(client.search_runs([experiment], "tags.kind = 'trial'")) == 3
    assert len(client.search_runs([experiment], "tags.kind = 'sweep'")) == 1


def test_tensorboard_event_files_hold_every_epoch(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for row in tracked["trials"]:
        events = EventAccumulator(str(tracked["folder"] / "tb" / tracked["sweep"].name
                                      / row["trial_id"]))
        events.Reload()
        assert set(events.Tags()["scalars"]) == {"loss", "accuracy", "val_loss", "val_accuracy",
                                                 "test_accuracy"}
        values = [event.value for event in events.Scalars("val_accuracy")]
        assert len(values) == 3 and values[-1] == pytest.approx(row["val_accuracy"])


def test_the_best_model_registers_and_loads_back_with_equal_predictions(tracked):
    import mlflow
    from mlflow.tracking import MlflowClient

    from mnist_core.config import DataConfig
    from mnist_core.data import load_dataset
    from mnist_core.prediction import load_model

    client = MlflowClient(tracking_uri=tracked["store"])
    experiment = client.get_experiment_by_name("tracked-test").experiment_id
    (parent,) = client.search_runs([experiment], "tags.kind = 'sweep'")
    mlflow.set_tracking_uri(tracked["store"])
    version = mlflow.register_model(f"runs:/{parent.info.run_id}/best_model", "mnist-best")
    loaded = mlflow.pyfunc.load_model(f"models:/mnist-best/{version.version}")
    images = load_dataset(DataConfig(dataset="digits")).x_test[:50].astype(np.float32)
    expected = load_model(tracked["sweep"] / "best" / "model.keras").predict(images, verbose=0)
    np.testing.assert_allclose(np.asarray(loaded.predict(images)), expected, atol=1e-6)


def test_tensorboards_hparams_tab_lists_every_trial_with_its_settings(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    root = tracked["folder"] / "tb" / tracked["sweep"].name
    experiment = EventAccumulator(str(root / "_hparams_experiment"))
    experiment.Reload()
    content = experiment.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.EXPERIMENT_TAG]
    info = metadata.parse_experiment_plugin_data(content)
    assert {hparam.name for hparam in info.hparam_infos} >= {"learning_rate", "epochs",
                                                             "hidden_units", "activation"}
    assert {metric.name.tag for metric in info.metric_infos} >= {"val_accuracy",
                                                                 "test_accuracy"}
    for row in tracked["trials"]:
        events = EventAccumulator(str(root / row["trial_id"]))
        events.Reload()
        tags = events.PluginTagToContent(metadata.PLUGIN_NAME)
        start = metadata.parse_session_start_info_plugin_data(
            tags[metadata.SESSION_START_INFO_TAG])
        assert start.hparams["learning_rate"].number_value == pytest.approx(row["learning_rate"])
        assert start.hparams["activation"].string_value == row["activation"]
        end = metadata.parse_session_end_info_plugin_data(tags[metadata.SESSION_END_INFO_TAG])
        assert end.status == 1  # STATUS_SUCCESS
        test = [event.value for event in events.Scalars("test_accuracy")]
        assert test == [pytest.approx(row["test_accuracy"])]
