"""What --model may name: a file, a sweep folder, a training folder or the latest pointer."""

import json

import pytest

from mnist_core.errors import DataFormatError, DataNotFoundError
from mnist_core.model_ref import move_latest, resolve_model, write_latest


@pytest.fixture
def runs(tmp_path):
    for sweep in ("old-1", "new-2"):
        (tmp_path / sweep / "best").mkdir(parents=True)
        (tmp_path / sweep / "best" / "model.keras").write_bytes(b"model " + sweep.encode())
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "model.keras").write_bytes(b"trained")
    return tmp_path


@pytest.mark.parametrize(("reference", "resolved"), [
    ("new-2/best/model.keras", "new-2/best/model.keras"),
    ("new-2", "new-2/best/model.keras"),
    ("new-2/", "new-2/best/model.keras"),
    ("train", "train/model.keras"),
])
def test_files_and_folders_resolve_to_a_model(runs, reference, resolved):
    assert resolve_model(str(runs / reference)) == str(runs / resolved)


def test_latest_points_at_the_sweep_it_was_given_and_moves_atomically(runs):
    write_latest(str(runs), "old-1")
    assert resolve_model(str(runs / "latest")) == str(runs / "old-1/best/model.keras")
    write_latest(str(runs), "new-2")
    assert resolve_model(str(runs / "latest")) == str(runs / "new-2/best/model.keras")
    assert json.loads((runs / "latest").read_text())["sweep_id"] == "new-2"
    assert sorted(path.name for path in runs.iterdir()) == ["latest", "new-2", "old-1", "train"]


def test_a_resumed_older_sweep_never_takes_latest_from_a_newer_one(runs):
    import os

    for age, sweep in enumerate(("new-2", "old-1")):  # old-1 started first (older mtime)
        (runs / sweep / "sweep.toml").write_text("[sweep]\n")
        os.utime(runs / sweep / "sweep.toml", ns=(10**18 - age * 10**12,) * 2)
    assert move_latest(str(runs), "new-2")
    assert not move_latest(str(runs), "old-1")  # --resume of the older one, finished again
    assert json.loads((runs / "latest").read_text())["sweep_id"] == "new-2"
    assert move_latest(str(runs), "new-2")  # the newest itself, resumed: stays


@pytest.mark.parametrize(("setup", "error", "message"), [
    (lambda runs: None, DataNotFoundError, "no sweep has completed there yet"),
    (lambda runs: (runs / "latest").write_text("{not json"), DataFormatError,
     "not a latest-sweep pointer"),
    (lambda runs: write_latest(str(runs), "gone-3"), DataNotFoundError, "does not exist"),
])
def test_a_bad_latest_pointer_is_one_clear_error(runs, setup, error, message):
    setup(runs)
    with pytest.raises(error, match=message):
        resolve_model(str(runs / "latest"))


def test_an_unknown_reference_says_what_is_accepted(runs):
    with pytest.raises(DataNotFoundError, match="expected a .keras file, a sweep folder"):
        resolve_model(str(runs / "nothing-here"))
