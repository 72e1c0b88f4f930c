"""Choosing the setting: seed means, refit, and TPE proposals."""

import json
from pathlib import Path

import numpy as np
import pytest

from jobs.sweep import main
from mnist_core import storage
from mnist_core.config import DataConfig
from mnist_core.data import load_dataset
from mnist_core.evaluation import evaluate
from mnist_core.prediction import load_model
from mnist_core.sweep.config import parse_sweep_config
from mnist_core.sweep.ranking import ranked_settings, seed_means
from mnist_core.sweep.reading import read_sweep


def _row(trial_id, learning_rate, seed, val, test=0.5, loss=0.1):
    return {"trial_id": trial_id, "status": "ok", "hidden_units": [10], "activation": "sigmoid",
            "optimizer": "sgd", "learning_rate": learning_rate, "batch_size": 32, "epochs": 3,
            "seed": seed, "momentum": 0.0, "nesterov": False, "l2": 0.0,
            "schedule": "constant", "decay_rate": 0.9, "restore_best": False, "patience": 0,
            "val_accuracy": val, "val_loss": loss, "test_accuracy": test, "best_epoch": 3}


def test_seed_means_rank_settings_by_their_mean_not_their_luckiest_seed():
    rows = [_row("t0", 0.1, 0, 0.99), _row("t1", 0.1, 1, 0.70),  # one lucky seed
            _row("t2", 0.5, 0, 0.90), _row("t3", 0.5, 1, 0.88),
            {**_row("t4", 0.9, 0, 0.95), "status": "failed"}]
    means = seed_means(rows)
    assert [record["trial_id"] for record in means] == ["t2", "t0"]
    assert means[0]["val_accuracy_mean"] == pytest.approx(0.89)
    assert means[0]["val_accuracy_std"] == pytest.approx(0.01)
    assert means[0]["seeds"] == 2 and means[0]["learning_rate"] == 0.5
    assert [row["trial_id"] for row in ranked_settings(rows, "seed_mean")] == ["t2", "t0"]
    assert [row["trial_id"] for row in ranked_settings(rows, "trial")] == ["t0", "t2"]


SEARCH = """
[sweep]
name = "{name}"
dataset = "digits"
validation_split = 0.1
seeds = [0, 1]
samples = {samples}
search_seed = 3

[grid]
hidden_units = [[10]]
batch_size = [32]
epochs = [4]
learning_rate = {{loguniform = [0.05, 2.0]}}
{extra}
"""


def _write(tmp_path: Path, name: str, samples: int, extra: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(SEARCH.format(name=name, samples=samples, extra=extra))
    return path


def _folder(out: Path) -> Path:
    (folder,) = [path for path in out.iterdir() if path.is_dir()]
    return folder


@pytest.mark.slow
def test_seed_mean_chooses_and_refits_and_a_resume_keeps_the_choice(ray_session, tmp_path,
                                                                   capsys):
    extra = '[selection]\nby = "seed_mean"\nrefit = true\n'
    out = tmp_path / "runs"
    assert main(["--config", str(_write(tmp_path, "means", 3, extra)), "--out", str(out),
                 "--no-progress"]) == 0
    folder = _folder(out)
    trials = read_sweep(str(folder))["trials"].to_pylist()
    record = json.loads((folder / "best" / "best.json").read_text())
    choice = record["choice"]
    assert choice["chosen_by"] == "seed_mean"
    assert choice["trial_id"] == record["trial_id"] == seed_means(trials)[0]["trial_id"]
    # best/ holds the chosen trial: its validation-time model scores what its row says.
    splits = load_dataset(DataConfig(dataset="digits", validation_split=0.1))
    chosen = next(row for row in trials if row["trial_id"] == choice["trial_id"])
    model = load_model(folder / "best" / "model_validation.keras")
    assert evaluate(model, splits.x_test, splits.y_test).accuracy == pytest.approx(
        chosen["test_accuracy"], abs=2 / 360)
    assert record["refit"]["trial_id"] == choice["trial_id"]
    assert record["refit"]["epochs"] == chosen["best_epoch"]
    printed = capsys.readouterr().out
    assert "chosen by mean over seeds" in printed
    assert "top 3 settings by mean validation accuracy over seeds" in printed
    page = (folder / "report.html").read_text()
    assert "The choice" in page and "Settings over seeds" in page
    # The page's summary and its confusion matrix and curves are the chosen trial's.
    assert f"Best trial {choice['trial_id']}" in page
    assert f"<b>{choice['trial_id']}</b> — validation" in page
    # Resumed: nothing is trained again, the choice stands.
    written = (folder / "best" / "model.keras").stat().st_mtime_ns
    assert main(["--resume", folder.name, "--out", str(out), "--no-progress"]) == 0
    assert (folder / "best" / "model.keras").stat().st_mtime_ns == written
    assert json.loads((folder / "best" / "best.json").read_text())["choice"] == choice


@pytest.mark.slow
def test_tpe_proposals_are_reproducible_and_a_resume_rederives_them(ray_session, tmp_path):
    extra = '[search]\nsampler = "tpe"\nround_size = 3\n[selection]\nrefit = false\n'
    path = _write(tmp_path, "tpe", 9, extra)
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["--config", str(path), "--out", str(first), "--no-progress"]) == 0
    tables = read_sweep(str(_folder(first)))
    ids = sorted(tables["trials"].column("trial_id").to_pylist())
    assert len(ids) == 18 and len({trial_id[6:] for trial_id in ids}) == 18
    rates = tables["trials"].column("learning_rate").to_pylist()
    assert all(0.05 <= rate <= 2.0 for rate in rates)
    # A sweep cut off after its first round (3 proposals × 2 seeds) is resumed: it re-derives
    # the same proposals from the recorded results and trains only the later rounds.
    cut = second / "tpe-cut"
    cut.mkdir(parents=True)
    (cut / "sweep.toml").write_text(path.read_text())
    import pyarrow as pa
    import pyarrow.compute as pc

    kept = pa.array([trial_id for trial_id in ids if int(trial_id[1:5]) < 6])
    for name, table in tables.items():
        storage.write_table(str(cut / f"{name}.parquet"),
                            table.filter(pc.is_in(table.column("trial_id"), value_set=kept)))
    assert main(["--resume", "tpe-cut", "--out", str(second), "--no-progress"]) == 0
    resumed = read_sweep(str(cut))["trials"]
    assert sorted(resumed.column("trial_id").to_pylist()) == ids
    assert set(resumed.filter(pc.is_in(resumed.column("trial_id"), value_set=kept))
               .column("pack_id").to_pylist()).isdisjoint(
        resumed.filter(pc.invert(pc.is_in(resumed.column("trial_id"), value_set=kept)))
        .column("pack_id").to_pylist())


def test_tpe_proposes_from_what_it_was_told():
    from mnist_core.sweep.proposals import Proposer

    config = parse_sweep_config(SEARCH.format(
        name="p", samples=40, extra='activation = ["sigmoid", "relu"]\n'
        '[search]\nsampler = "tpe"\nround_size = 10\n'))

    def run(told_best: float) -> list[float]:
        proposer = Proposer(config.space)
        for _ in range(3):  # rounds told that rates near told_best score best
            for handle, values in proposer.ask(10):
                score = 1.0 - abs(np.log(values["learning_rate"] / told_best))
                proposer.tell(handle, [{"status": "ok", "val_accuracy": score}])
        return [values["learning_rate"] for _, values in proposer.ask(10)]

    low, again = run(0.06), run(0.06)
    assert low == again  # seeded: the same results give the same proposals
    high = run(1.8)
    assert np.median(low) < 0.3 < np.median(high)
    assert {values["activation"] for _, values in Proposer(config.space).ask(10)} <= {
        "sigmoid", "relu"}


def test_a_chosen_trial_not_in_best_is_trained_again_beside_its_refit(ray_session, tmp_path,
                                                                     capsys):
    out = tmp_path / "runs"
    path = _write(tmp_path, "held", 2, "[selection]\nrefit = true\n")
    assert main(["--config", str(path), "--out", str(out), "--no-progress"]) == 0
    folder = _folder(out)
    location = folder / "best" / "best.json"
    record = json.loads(location.read_text())
    chosen, refit = record["trial_id"], record["refit"]
    # best/ as a sweep leaves it when the chosen trial's model was not kept: another's, no refit.
    location.write_text(json.dumps({key: value for key, value in record.items()
                                    if key != "refit"} | {"trial_id": "t9999-00000000"}))
    (folder / "best" / "model_validation.keras").unlink()
    capsys.readouterr()
    assert main(["--resume", folder.name, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"training the chosen trial {chosen} again" in printed
    assert f"refitting {chosen}" in printed
    again = json.loads(location.read_text())
    assert again["trial_id"] == chosen and again["refit"]["trial_id"] == chosen
    assert again["refit"]["test_accuracy"] == pytest.approx(refit["test_accuracy"], abs=1e-6)
    # The validation-time model is the chosen trial trained again, kept before the refit.
    row = next(row for row in read_sweep(str(folder))["trials"].to_pylist()
               if row["trial_id"] == chosen)
    splits = load_dataset(DataConfig(dataset="digits", validation_split=0.1))
    model = load_model(folder / "best" / "model_validation.keras")
    assert evaluate(model, splits.x_test, splits.y_test).accuracy == pytest.approx(
        row["test_accuracy"], abs=2 / 360)
