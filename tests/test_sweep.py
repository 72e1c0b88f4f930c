"""Sweeps on a real local Ray: reports, faults, retries and resume after a killed driver."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from _processes import crash_when, hold_lock

from jobs.sweep import main
from mnist_core import sweep
from mnist_core.prediction import load_model
from mnist_core.reports import best_trial
from mnist_core.sweep.config import load_sweep_config
from mnist_core.sweep.reading import read_sweep

pytestmark = pytest.mark.slow

GRID = """
[sweep]
name = "{name}"
dataset = "digits"
validation_split = 0.1
seeds = [0]

[grid]
hidden_units = [[10]]
activation = ["sigmoid", "relu"]
optimizer = ["sgd", "adam"]
learning_rate = [0.1]
batch_size = [64]
epochs = [{epochs}]

[resources]
num_cpus = 1
num_gpus = 0
max_retries = {retries}
pack_size = {pack_size}
"""


def _config(tmp_path, name="grid", epochs=3, retries=1, pack_size='"auto"') -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(GRID.format(name=name, epochs=epochs, retries=retries, pack_size=pack_size))
    return path


def _sweep_folder(out: Path) -> Path:
    (folder,) = [path for path in out.iterdir() if path.is_dir()]
    return folder


def _tables(folder: Path) -> dict:
    return {name: pq.read_table(folder / f"{name}.parquet").to_pylist()
            for name in ("trials", "epochs", "confusion", "per_class")}


def _assert_reports_consistent(folder: Path, trials: int, epochs: int) -> dict:
    tables = _tables(folder)
    ids = [row["trial_id"] for row in tables["trials"]]
    assert len(ids) == len(set(ids)) == trials
    ok = {row["trial_id"]: row for row in tables["trials"] if row["status"] == "ok"}
    assert len(tables["epochs"]) == len(ok) * epochs
    assert len(tables["per_class"]) == len(ok) * 10
    assert len(tables["confusion"]) == len(ok) * 100
    for trial_id, row in ok.items():
        counts = np.zeros((10, 10), int)
        for cell in tables["confusion"]:
            if cell["trial_id"] == trial_id:
                counts[cell["true_label"], cell["predicted_label"]] = cell["count"]
        assert counts.sum() == 360
        assert np.trace(counts) / counts.sum() == pytest.approx(row["test_accuracy"])
    return tables


def test_sweep_writes_every_report(ray_session, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["--config", str(_config(tmp_path)), "--out", str(out), "--no-progress"]) == 0
    folder = _sweep_folder(out)
    tables = _assert_reports_consistent(folder, trials=4, epochs=3)
    trials = tables["trials"]
    assert {row["status"] for row in trials} == {"ok"}
    assert all(row["attempts"] == 1 and row["params"] == 760 for row in trials)
    assert {(row["activation"], row["optimizer"]) for row in trials} == {
        ("sigmoid", "sgd"), ("sigmoid", "adam"), ("relu", "sgd"), ("relu", "adam")}
    best = best_trial(trials)
    model = load_model(folder / "best" / "model.keras")
    assert model.count_params() == 760
    assert {path.name for path in (folder / "best").iterdir()} == {"model.keras", "best.json"}
    assert "js-plotly" not in (folder / "report.html").read_text()  # drawn in the browser
    record = json.loads((folder / "best" / "best.json").read_text())
    assert record["trial_id"] == best_trial(trials)["trial_id"]
    assert record["selection"]["val_images"] == 144 == best_trial(trials)["val_images"]
    printed = capsys.readouterr().out
    assert "best chosen on 144 validation images: " in printed
    assert "top 4 by validation accuracy" in printed and best["trial_id"] in printed


def test_a_big_sweep_is_compacted_and_paged_by_worker_tasks(ray_session, tmp_path,
                                                             monkeypatch):
    from mnist_core.sweep import driver, recording, worker

    assert worker.compact_folder is recording.compact_folder  # bound before the patch below

    def not_here(*args):
        raise AssertionError("compacted by the driver, not a worker task")

    def live_only(folder, live=False):
        assert live, "the final page written by the driver, not a worker task"
        return write_sweep_report(folder, live)

    write_sweep_report = driver.write_sweep_report
    monkeypatch.setattr(driver, "WORKER_FINISH_PACKS", 2)  # four packs: "big"
    # The driver's copy only: the tasks' code is the worker module's (patching what it calls
    # would travel with it, pickled by value).
    monkeypatch.setattr(recording, "compact_folder", not_here)
    monkeypatch.setattr(driver, "write_sweep_report", live_only)
    out = tmp_path / "runs"
    config = _config(tmp_path, pack_size=1)
    assert main(["--config", str(config), "--out", str(out), "--no-progress"]) == 0
    folder = _sweep_folder(out)
    _assert_reports_consistent(folder, trials=4, epochs=3)
    assert not (folder / "parts").exists()  # its parts removed, and their folders
    final = (folder / "report.html").read_text()
    assert "Best trial" in final and "http-equiv=\"refresh\"" not in final


def test_workers_are_reused_across_trials(ray_session, tmp_path):
    config = _config(tmp_path, epochs=1)
    config.write_text(config.read_text().replace("seeds = [0]", "seeds = [0, 1, 2]"))
    out = tmp_path / "runs"
    main(["--config", str(config), "--out", str(out), "--no-progress"])
    trials = pq.read_table(_sweep_folder(out) / "trials.parquet").to_pylist()
    pids = [row["worker_pid"] for row in trials]
    # 12 trials on 2 CPUs: Ray's pool may hold a few idle workers, but far fewer than 12.
    assert len(pids) == 12 and len(set(pids)) <= 6
    # TensorFlow's start-up is paid once per worker process: later trials report none.
    for pid in set(pids):
        assert sum(row["worker_setup_seconds"] > 0 for row in trials
                   if row["worker_pid"] == pid) <= 1


def _faulty_task(folder: Path):
    """A pack task that, for a trial named by a file in ``folder``, raises (``<id>.raise``) or
    kills its worker process once (``<id>.crash``, removed first so the retry succeeds)."""
    import ray

    from mnist_core.sweep.worker import train_pack_on_worker

    @ray.remote(max_calls=0)
    def faulty(pack, splits, num_cpus, log_dir):
        for trial in pack.trials:
            crash = folder / f"{trial.trial_id}.crash"
            if crash.exists():
                crash.unlink()
                os._exit(1)
            if (folder / f"{trial.trial_id}.raise").exists():
                raise RuntimeError(f"injected fault in trial {trial.trial_id}")
        return train_pack_on_worker(pack, splits, num_cpus, log_dir)

    return faulty


def test_a_pack_that_raises_is_recorded_and_the_sweep_goes_on(ray_session, tmp_path):
    config = load_sweep_config(_config(tmp_path, name="raises", pack_size=1))
    victim = config.trials[1].trial_id
    (tmp_path / f"{victim}.raise").touch()
    summary = sweep.run_sweep(config, str(tmp_path / "runs"), "raises-1", show_progress=False,
                              task=_faulty_task(tmp_path))
    assert (summary.ok, summary.failed) == (3, 1)
    tables = _assert_reports_consistent(tmp_path / "runs" / "raises-1", trials=4, epochs=3)
    (failed,) = [row for row in tables["trials"] if row["status"] == "failed"]
    assert failed["trial_id"] == victim
    assert "RuntimeError: injected fault" in failed["error"]
    assert failed["attempts"] == 1 and failed["test_accuracy"] is None
    log = failed["error"].split("(traceback in ", 1)[1].rstrip(")")
    traceback = (tmp_path / "runs" / "raises-1" / log).read_text()
    assert 'File "' in traceback and "raise RuntimeError" in traceback
    assert "\x1b[" not in traceback


@pytest.mark.parametrize(("retries", "status", "attempts"), [(1, "ok", 2), (0, "failed", 1)])
def test_a_killed_worker_is_retried(ray_session, tmp_path, retries, status, attempts):
    config = load_sweep_config(_config(tmp_path, name="crash", retries=retries))
    victim = config.trials[2].trial_id
    (tmp_path / f"{victim}.crash").touch()
    sweep.run_sweep(config, str(tmp_path), "crash", show_progress=False,
                    task=_faulty_task(tmp_path))
    tables = _assert_reports_consistent(tmp_path / "crash", trials=4, epochs=3)
    pack_of_victim = next(row for row in tables["trials"] if row["trial_id"] == victim)
    packmates = [row for row in tables["trials"] if row["pack_id"] == pack_of_victim["pack_id"]]
    for row in packmates:
        assert (row["status"], row["attempts"]) == (status, attempts)
        if status == "failed":
            assert "WorkerCrashedError" in row["error"] or "died" in row["error"].lower()
    others = [row for row in tables["trials"] if row not in packmates]
    assert all(row["attempts"] == 1 and row["status"] == "ok" for row in others)


def _dies_mid_write_task(markers: Path):
    """A pack task that, on its first try, writes part of its pack's detail parts as the real
    worker would (a whole but wrong epochs part, a confusion part cut off mid-write) and then
    kills its worker process; later tries train and write as usual."""
    import ray

    from mnist_core import storage
    from mnist_core.reports import EPOCHS_SCHEMA
    from mnist_core.sweep.reading import part_location
    from mnist_core.sweep.worker import train_pack_on_worker

    @ray.remote(max_calls=0)
    def dies_mid_write(pack, splits, num_cpus, log_dir):
        assert pack.details_to is not None, "a local Ray's workers reach the sweep's folder"
        marker = markers / f"{pack.trials[0].trial_id}.died"
        if not marker.exists():
            marker.touch()
            wrong = [{"trial_id": trial.trial_id, "epoch": 99} for trial in pack.trials]
            storage.write_rows(part_location(pack.details_to, "epochs", pack.pack_id), wrong,
                               EPOCHS_SCHEMA)
            half = Path(part_location(pack.details_to, "confusion", pack.pack_id))
            half.parent.mkdir(parents=True, exist_ok=True)
            (half.parent / f".{half.name}.cut").write_bytes(b"PAR1\x15\x04")
            os._exit(1)
        return train_pack_on_worker(pack, splits, num_cpus, log_dir)

    return dies_mid_write


@pytest.mark.parametrize(("retries", "ok"), [(1, 4), (0, 0)])
def test_a_worker_dying_mid_write_leaves_every_trial_exactly_once(ray_session, tmp_path,
                                                                   retries, ok):
    config = load_sweep_config(_config(tmp_path, name="midwrite", retries=retries))
    summary = sweep.run_sweep(config, str(tmp_path / "runs"), "midwrite", show_progress=False,
                              task=_dies_mid_write_task(tmp_path))
    assert (summary.total, summary.ok) == (4, ok)
    folder = tmp_path / "runs" / "midwrite"
    tables = _assert_reports_consistent(folder, trials=4, epochs=3)
    assert all(row["epoch"] in (1, 2, 3) for row in tables["epochs"])  # the wrong part is gone
    assert not [path for path in (folder / "parts").rglob("*") if path.is_file()]
    # a resume finds nothing owed and changes no row
    again = sweep.run_sweep(config, str(tmp_path / "runs"), "midwrite", show_progress=False)
    assert again.ran_now == 0 and _tables(folder) == tables


def test_resume_after_the_driver_is_killed(ray_session, tmp_path):
    config_path = _config(tmp_path, name="resume", epochs=30)
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "jobs.sweep", "--config", str(config_path), "--out",
               str(out), "--no-progress"]
    part = crash_when(command, "*/parts/trials/*.parquet", out, rows=1)
    folder = part.parent.parent.parent
    done_before = read_sweep(str(folder))["trials"].num_rows
    assert 1 <= done_before < 4, "the driver should be killed mid-sweep"
    assert not (folder / "trials.parquet").exists()
    sweep_id = folder.name
    assert main(["--resume", sweep_id, "--out", str(out), "--no-progress"]) == 0
    tables = _assert_reports_consistent(out / sweep_id, trials=4, epochs=30)
    assert {row["status"] for row in tables["trials"]} == {"ok"}
    assert main(["--resume", sweep_id, "--out", str(out), "--no-progress"]) == 0
    _assert_reports_consistent(out / sweep_id, trials=4, epochs=30)


PACKED = """
[sweep]
name = "packed"
dataset = "digits"
validation_split = 0.1

[grid]
activation = ["{activation}"]
learning_rate = {rates}
epochs = [2, 4]
"""


def test_trials_sharing_a_pack_key_train_as_packs(ray_session, tmp_path):
    config = tmp_path / "packed.toml"
    config.write_text(PACKED.format(activation="sigmoid", rates="[0.05, 0.1, 0.2, 0.5, 1.0, 2.0]"))
    out = tmp_path / "runs"
    assert main(["--config", str(config), "--out", str(out), "--no-progress"]) == 0
    folder = _sweep_folder(out)
    trials = pq.read_table(folder / "trials.parquet").to_pylist()
    assert len(trials) == 12 and {row["status"] for row in trials} == {"ok"}
    packs = {row["pack_id"] for row in trials}
    assert len(packs) == 2 and {row["pack_size"] for row in trials} == {6}
    epochs = pq.read_table(folder / "epochs.parquet").to_pylist()
    for row in trials:
        assert sum(cell["trial_id"] == row["trial_id"] for cell in epochs) == row["epochs"]
    assert not (folder / "parts").exists() or not any((folder / "parts").rglob("*.parquet"))
    assert load_model(folder / "best" / "model.keras").count_params() == 760


def test_a_diverging_member_is_failed_while_its_pack_finishes(ray_session, tmp_path):
    config = tmp_path / "nan.toml"
    config.write_text(PACKED.format(activation="relu", rates="[0.1, 1e20]").replace(
        "epochs = [2, 4]", "epochs = [3]\n[resources]\npack_size = 2"))
    out = tmp_path / "runs"
    assert main(["--config", str(config), "--out", str(out), "--no-progress"]) == 1
    trials = pq.read_table(_sweep_folder(out) / "trials.parquet").to_pylist()
    by_rate = {row["learning_rate"]: row for row in trials}
    assert by_rate[1e20]["status"] == "failed"
    assert by_rate[1e20]["error"].startswith("loss became nan in epoch")
    assert by_rate[0.1]["status"] == "ok" and by_rate[0.1]["pack_id"] == by_rate[1e20]["pack_id"]


def test_resources_no_local_node_has_are_one_line_and_exit_2(ray_session, tmp_path, capsys):
    from jobs._cli import run

    config = _config(tmp_path, name="gpu")
    config.write_text(config.read_text().replace("num_gpus = 0", "num_gpus = 1"))
    assert run(main, ["--config", str(config), "--out", str(tmp_path / "runs"),
                      "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: [resources] no node of this local Ray can run a pack")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 150 KB tmpfs: a disk that fills up mid-sweep (needs root, as CI has)."""
    import subprocess

    folder = tmp_path / "tiny"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=150k", "tmpfs", str(folder)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    # lazily: a reused Ray worker may still hold its log file there (its first sweep's logs)
    subprocess.run(["umount", "--lazy", str(folder)], check=True)


def test_a_full_disk_is_one_line_and_resume_finishes_the_sweep(ray_session, tiny_disk, capsys):
    import subprocess

    from jobs._cli import run

    config = _config(tiny_disk.parent, name="full", pack_size=1)
    assert run(main, ["--config", str(config), "--out", str(tiny_disk), "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "No space left on device" in line and "python -m jobs.sweep --resume full-" in line
    sweep_id = line.split("--resume ", 1)[1].split()[0]
    subprocess.run(["mount", "-o", "remount,size=20m", str(tiny_disk)], check=True)
    assert main(["--resume", sweep_id, "--out", str(tiny_disk), "--no-progress"]) == 0
    tables = _assert_reports_consistent(tiny_disk / sweep_id, trials=4, epochs=3)
    assert {row["status"] for row in tables["trials"]} == {"ok"}


HALVING = """
[sweep]
name = "halving"
dataset = "digits"
validation_split = 0.1
[grid]
learning_rate = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 4.0]
epochs = [9]
[scheduler]
kind = "halving"
eta = 3
min_epochs = 1
[resources]
pack_size = {pack_size}
"""


def _assert_halving_reports(folder: Path) -> None:
    tables = _tables(folder)
    trials = tables["trials"]
    assert len({row["trial_id"] for row in trials}) == len(trials) == 9
    by_status = {(row["status"], row["rung"]) for row in trials}
    counts = {key: sum((row["status"], row["rung"]) == key for row in trials)
              for key in by_status}
    assert counts == {("pruned", 0): 6, ("pruned", 1): 2, ("ok", 2): 1}
    epochs = {}
    for cell in tables["epochs"]:
        epochs.setdefault(cell["trial_id"], []).append(cell)
    for row in trials:
        assert len(epochs[row["trial_id"]]) == {0: 1, 1: 3, 2: 9}[row["rung"]]
        assert row["val_accuracy"] == epochs[row["trial_id"]][-1]["val_accuracy"]
    first_epoch = {trial_id: cells[0]["val_accuracy"] for trial_id, cells in epochs.items()}
    went_on = [row["trial_id"] for row in trials if row["rung"] >= 1]
    stopped = [row["trial_id"] for row in trials if row["rung"] == 0]
    assert min(first_epoch[t] for t in went_on) >= max(first_epoch[t] for t in stopped)
    assert not (folder / "rungs").exists()  # the staging stores removed, folders and all
    _assert_as_if_trained_straight(folder, tables)


def _assert_as_if_trained_straight(folder: Path, tables: dict) -> None:
    """Promoted trials went on from their rung's state: every trial's history, and the
    best model's weights, equal those of the trials trained straight to their epochs."""
    from mnist_core.data import load_dataset
    from mnist_core.packed_training import train_pack

    config = load_sweep_config(folder / "sweep.toml")
    rung = {row["trial_id"]: row["rung"] for row in tables["trials"]}
    straight = train_pack([trial.config for trial in config.trials], load_dataset(config.data),
                          [{0: 1, 1: 3, 2: 9}[rung[trial.trial_id]] for trial in config.trials])
    best = json.loads((folder / "best" / "best.json").read_text())["trial_id"]
    for trial, member in zip(config.trials, straight.members):
        recorded = sorted((cell for cell in tables["epochs"] if cell["trial_id"] ==
                           trial.trial_id), key=lambda cell: cell["epoch"])
        assert [cell["val_accuracy"] for cell in recorded] == pytest.approx(
            member.history["val_accuracy"], rel=1e-5)
        assert [cell["loss"] for cell in recorded] == pytest.approx(member.history["loss"],
                                                                    rel=1e-5)
        if trial.trial_id == best:
            weights = load_model(folder / "best" / "model.keras").get_weights()
            for got, want in zip(weights, member.weights):
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_successive_halving_prunes_exactly_per_rung(ray_session, tmp_path, capsys):
    config = tmp_path / "halving.toml"
    config.write_text(HALVING.format(pack_size='"auto"'))
    out = tmp_path / "runs"
    assert main(["--config", str(config), "--out", str(out), "--no-progress"]) == 0
    _assert_halving_reports(_sweep_folder(out))
    # Promoted trials go on: 9 trials × 1 epoch, 3 × 2 more, 1 × 6 more (not 9 + 9 + 9).
    printed = capsys.readouterr().out
    assert "1 ok, 8 pruned, 0 failed of 9 trials" in printed and "21 trial-epochs" in printed


def test_a_halving_search_with_few_finishers_gets_importance_from_a_rung(ray_session,
                                                                          tmp_path):
    """36 settings, a third go on: 12 finish, too few to say what mattered; the page's
    importance is fit on all 36 at the rung they all reached, scored after its one epoch."""
    from mnist_core.importance import hyperparameter_importance

    config = tmp_path / "few.toml"
    config.write_text(HALVING.format(pack_size='"auto"').replace(
        'name = "halving"', 'name = "few"\nsamples = 36').replace(
        "learning_rate = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 4.0]",
        "learning_rate = {loguniform = [0.01, 3.0]}\nmomentum = {uniform = [0.0, 0.9]}").replace(
        "epochs = [9]", "epochs = [3]"))
    out = tmp_path / "runs"
    assert main(["--config", str(config), "--out", str(out), "--no-progress"]) == 0
    folder = _sweep_folder(out)
    tables = _tables(folder)
    assert sum(row["status"] == "ok" for row in tables["trials"]) == 12
    page = (folder / "report.html").read_text()
    assert "fit on val_accuracy at epoch 1 of the 36 trials that reached rung 0" in page
    first_epoch = {cell["trial_id"]: cell["val_accuracy"] for cell in tables["epochs"]
                   if cell["epoch"] == 1}
    rows = [row | {"status": "ok", "val_accuracy": first_epoch[row["trial_id"]]}
            for row in tables["trials"]]
    shares = hyperparameter_importance(rows, ["learning_rate", "momentum"],
                                       frozenset({"learning_rate"}))
    assert sum(shares.values()) == pytest.approx(1.0)
    assert all(json.dumps(share) in page for share in shares.values())


def test_halving_resumes_after_a_kill_mid_rung(ray_session, tmp_path):
    config = tmp_path / "halving.toml"
    config.write_text(HALVING.format(pack_size=1))
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "jobs.sweep", "--config", str(config), "--out", str(out),
               "--no-progress"]
    part = crash_when(command, "*/rungs/r1/parts/trials/*.parquet", out, rows=1)
    folder = part.parents[4]
    staged = read_sweep(str(folder / "rungs" / "r1"))["trials"].num_rows
    assert 1 <= staged < 3, "the driver should be killed in the middle of rung 1"
    assert main(["--resume", folder.name, "--out", str(out), "--no-progress"]) == 0
    _assert_halving_reports(folder)


def test_two_sweeps_started_in_the_same_second_never_share_a_folder(tmp_path):
    from mnist_core.sweep.recording import claim_sweep_folder

    ids = [claim_sweep_folder(str(tmp_path), "two-20261129-104027") for _ in range(3)]
    assert ids == ["two-20261129-104027", "two-20261129-104027-2", "two-20261129-104027-3"]


def test_a_second_driver_of_one_sweep_exits_2_naming_the_holder(tmp_path):
    import subprocess

    config_path = _config(tmp_path, name="held")
    folder = tmp_path / "runs" / "held-1"
    folder.mkdir(parents=True)
    (folder / "sweep.toml").write_text(config_path.read_text())
    holder = hold_lock(folder)
    try:
        result = subprocess.run([sys.executable, "-m", "jobs.sweep", "--resume", "held-1",
                                 "--out", str(tmp_path / "runs")],
                                capture_output=True, text=True, timeout=120)
    finally:
        holder.communicate("")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert f"sweep {folder} is in use by another run (pid {holder.pid}" in line
    assert "--wait" in line and not (folder / "trials.parquet").exists()


@pytest.mark.parametrize(("argv", "named"), [
    (["--resume", "../other/held-1"], "is not a sweep id"),
    (["--resume", "/abs/held-1"], "is not a sweep id"),
])
def test_resume_takes_an_id_not_a_path(tmp_path, capsys, argv, named):
    from jobs._cli import run

    with pytest.raises(SystemExit) as exited:
        run(main, [*argv, "--out", str(tmp_path)])
    assert exited.value.code == 2
    assert named in capsys.readouterr().err


@pytest.mark.parametrize(("replace", "by", "named"), [
    ('name = "grid"', 'name = "grid\\n"', "[sweep] name must be"),
    ('dataset = "digits"', 'dataset = "digits"\ndata_path = "nope.npz"', "data_path names a file"),
])
def test_bad_names_and_paths_are_refused_before_any_folder(tmp_path, capsys, replace, by,
                                                           named):
    from jobs._cli import run

    text = _config(tmp_path, name="grid").read_text()
    assert replace in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(replace, by, 1))
    assert run(main, ["--config", str(path), "--out", str(tmp_path / "runs")]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_bad_data_is_one_line_before_ray_and_leaves_no_folder(tmp_path, capsys):
    from jobs._cli import run

    data = tmp_path / "complex.npz"
    images = np.zeros((20, 28, 28), np.complex64)
    labels = np.arange(20) % 10
    np.savez(data, x_train=images, y_train=labels, x_test=images, y_test=labels)
    text = _config(tmp_path, name="cplx").read_text().replace(
        'dataset = "digits"', f'dataset = "mnist"\ndata_path = "{data}"')
    path = tmp_path / "cplx.toml"
    path.write_text(text)
    assert run(main, ["--config", str(path), "--out", str(tmp_path / "runs")]) == 3
    assert "x_train must be a non-empty array of real-valued images" in capsys.readouterr().err
    assert list((tmp_path / "runs").iterdir()) == []


def test_sigterm_stops_the_sweep_with_the_resume_command_and_no_ray_left(ray_session, tmp_path):
    from _processes import terminate_when

    config_path = _config(tmp_path, name="term", epochs=30, pack_size=1)
    out = tmp_path / "runs"
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code, stderr, left = terminate_when(
        [sys.executable, "-m", "jobs.sweep", "--config", str(config_path), "--out", str(out),
         "--no-progress", "--mlflow", store], "*/parts/trials/*.parquet", out)
    assert code == 143, stderr
    assert "SIGTERM received" not in stderr and "Traceback" not in stderr and left == []
    (hint,) = [line.strip() for line in stderr.splitlines() if "--resume" in line]
    folder = _sweep_folder(out)
    assert hint == f"{sys.executable} -m jobs.sweep --resume {folder.name} --out {out}"
    assert _sweep_run_status(store) == "KILLED"
    assert main(["--resume", folder.name, "--out", str(out), "--no-progress",
                 "--mlflow", store]) == 0
    _assert_reports_consistent(folder, trials=4, epochs=30)
    assert _sweep_run_status(store) == "FINISHED"


def _sweep_run_status(store: str) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("mnist-ray").experiment_id
    (run,) = client.search_runs([experiment], "tags.kind = 'sweep'")
    return run.info.status


TF_FAILURE = """
import dataclasses, sys
import ray
from mnist_core.sweep.config import parse_sweep_config
from mnist_core.sweep.driver import run_sweep
from mnist_core.sweep.worker import train_pack_on_worker

@ray.remote(max_calls=0)
def broken(pack, splits, num_cpus, log_dir=None):
    splits = dataclasses.replace(splits, y_train=splits.y_train + 100)  # labels TF refuses
    return train_pack_on_worker(pack, splits, num_cpus, log_dir)

ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
summary = run_sweep(parse_sweep_config(open(sys.argv[1]).read()), sys.argv[2], "tf-1",
                    show_progress=False, task=broken)
print("failed", summary.failed, "driver imported tensorflow:", "tensorflow" in sys.modules)
"""


def test_a_pack_failing_in_tensorflow_keeps_tensorflow_off_the_drivers_console(tmp_path):
    import subprocess

    config = tmp_path / "tf.toml"  # one pack of two: the packed trainer, TensorFlow's own ops
    config.write_text(GRID.format(name="tf", epochs=1, retries=0, pack_size='"auto"').replace(
        'activation = ["sigmoid", "relu"]', 'activation = ["relu"]').replace(
        'optimizer = ["sgd", "adam"]', 'optimizer = ["sgd"]').replace(
        "learning_rate = [0.1]", "learning_rate = [0.1, 0.5]"))
    result = subprocess.run([sys.executable, "-c", TF_FAILURE, str(config), str(tmp_path)],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "RAY_ADDRESS": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "failed 2 driver imported tensorflow: False" in result.stdout
    assert "cpu_feature_guard" not in result.stderr and "oneDNN" not in result.stderr
    trials = pq.read_table(tmp_path / "tf-1" / "trials.parquet").to_pylist()
    assert all(row["error"].startswith("InvalidArgumentError") for row in trials), trials[0]


def _one_model_per_pack_task():
    import ray

    from mnist_core.sweep.worker import train_pack_on_worker
    from mnist_core.trial import TrialResult

    @ray.remote(max_calls=0)
    def checked(pack, splits, num_cpus, log_dir=None):
        outcome = train_pack_on_worker(pack, splits, num_cpus, log_dir)
        sent = [r for r in outcome.results if isinstance(r, TrialResult) and r.model_bytes]
        if len(sent) != (len(pack.trials) if pack.keep_all_models else 1):
            raise RuntimeError(f"{len(sent)} models crossed to the driver")
        return outcome

    return checked


@pytest.mark.parametrize("keep", ["best", "all"])
def test_only_the_models_kept_cross_to_the_driver(ray_session, tmp_path, keep):
    text = _config(tmp_path, name="keep", pack_size=4).read_text().replace(
        'optimizer = ["sgd", "adam"]', 'optimizer = ["sgd"]').replace(
        "learning_rate = [0.1]", "learning_rate = [0.1, 0.5]").replace(
        "[sweep]", f'[sweep]\nkeep_models = "{keep}"')
    from mnist_core.sweep.config import parse_sweep_config

    summary = sweep.run_sweep(parse_sweep_config(text), str(tmp_path / "runs"), "keep-1",
                              show_progress=False, task=_one_model_per_pack_task())
    assert (summary.ok, summary.failed) == (4, 0)
    folder = tmp_path / "runs" / "keep-1"
    models = sorted(path.stem for path in (folder / "models").glob("*.keras")) \
        if (folder / "models").exists() else []
    assert len(models) == (4 if keep == "all" else 0)
    best = json.loads((folder / "best" / "best.json").read_text())["trial_id"]
    assert best == best_trial(read_sweep(str(folder))["trials"].to_pylist())["trial_id"]
    assert load_model(folder / "best" / "model.keras").count_params() == 760


def test_refit_trains_the_choice_on_training_and_validation_data(ray_session, tmp_path, capsys):
    """From three seeds (``refit_seeds``): each trained as that seed alone trains, the one
    with the lowest training loss kept."""
    from mnist_core.config import DataConfig, TrialConfig
    from mnist_core.data import load_dataset
    from mnist_core.evaluation import evaluate
    from mnist_core.sweep.views import pooled
    from mnist_core.trial import run_pack

    text = _config(tmp_path, name="refit", epochs=3).read_text() + (
        "\n[selection]\nrefit = true\nrefit_seeds = 3\n")
    path = tmp_path / "refit.toml"
    path.write_text(text)
    out = tmp_path / "runs"
    assert main(["--config", str(path), "--out", str(out), "--no-progress"]) == 0
    folder = _sweep_folder(out)
    record = json.loads((folder / "best" / "best.json").read_text())
    refit = record["refit"]
    assert refit["trial_id"] == record["trial_id"] and refit["train_images"] == 1437
    assert (folder / "best" / "model_validation.keras").is_file()
    splits = load_dataset(DataConfig(dataset="digits", validation_split=0.1))
    model = load_model(folder / "best" / "model.keras")
    assert evaluate(model, splits.x_test, splits.y_test).accuracy == pytest.approx(
        refit["test_accuracy"], abs=1e-9)
    assert [tried["seed"] for tried in refit["seeds"]] == [0, 1, 2]
    kept = min(refit["seeds"], key=lambda tried: tried["train_loss"])
    assert (refit["seed"], refit["train_loss"]) == (kept["seed"], kept["train_loss"])
    chosen = next(row for row in read_sweep(str(folder))["trials"].to_pylist()
                  if row["trial_id"] == record["trial_id"])
    for tried in refit["seeds"]:
        config = TrialConfig.from_record(chosen | {"seed": tried["seed"], "epochs": 3})
        (alone,) = run_pack([config], pooled(splits))
        assert alone.history["loss"][-1] == pytest.approx(tried["train_loss"], rel=1e-4)
        assert alone.evaluation.accuracy == pytest.approx(tried["test_accuracy"], abs=2 / 360)
    assert len({tried["train_loss"] for tried in refit["seeds"]}) == 3
    printed = capsys.readouterr().out
    assert f"seed {kept['seed']} of 3, kept for its lowest training loss" in printed
    assert main(["--resume", folder.name, "--out", str(out), "--no-progress"]) == 0
    assert json.loads((folder / "best" / "best.json").read_text())["refit"] == refit
