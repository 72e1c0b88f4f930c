"""Reading a sweep never drops rows it can see: after a kill or a lost or damaged file, a
resume either restores every row or stops with one line naming the file (exit 3)."""

import shutil

import pyarrow.parquet as pq
import pytest

from jobs._cli import run
from jobs.sweep import main
from mnist_core.sweep.config import parse_sweep_config
from mnist_core.sweep.driver import run_sweep

pytestmark = pytest.mark.slow
TABLES = ("trials", "epochs", "confusion", "per_class")
SWEEP = """
[sweep]
name = "store"
dataset = "digits"
validation_split = 0.1
[grid]
learning_rate = [0.1, 0.5]
epochs = [2]
"""


@pytest.fixture(scope="module")
def finished(ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    run_sweep(parse_sweep_config(SWEEP), str(out), "store-1", show_progress=False)
    return out / "store-1"


@pytest.fixture
def sweep(finished, tmp_path):
    """A copy of the finished sweep, to damage."""
    out = tmp_path / "runs"
    shutil.copytree(finished, out / "store-1")
    return out / "store-1"


def _as_parts(folder, pack="p1"):
    """The state a kill before the first compaction leaves: one pack's parts, no tables."""
    for name in TABLES:
        (folder / "parts" / name).mkdir(parents=True, exist_ok=True)
        shutil.move(folder / f"{name}.parquet", folder / "parts" / name / f"{pack}.parquet")


def _resume(folder, capsys) -> tuple[int, str]:
    code = run(main, ["--resume", folder.name, "--out", str(folder.parent), "--no-progress"])
    return code, capsys.readouterr().err


def _assert_every_row(folder):
    rows = {name: pq.read_table(folder / f"{name}.parquet").num_rows for name in TABLES}
    assert rows == {"trials": 2, "epochs": 4, "confusion": 200, "per_class": 20}


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("name", TABLES)
def test_a_truncated_table_is_one_line_naming_it(sweep, capsys, name):
    _truncate(sweep / f"{name}.parquet")
    code, err = _resume(sweep, capsys)
    assert code == 3 and err.count("\n") == 1
    assert f"{name}.parquet: not a readable Parquet file" in err


@pytest.mark.parametrize("name", TABLES[1:])
def test_a_lost_detail_table_is_one_line_naming_it(sweep, capsys, name):
    (sweep / f"{name}.parquet").unlink()
    code, err = _resume(sweep, capsys)
    assert code == 3 and err.count("\n") == 1 and f"{name}.parquet: missing" in err


def test_lost_trials_with_details_left_is_one_line_naming_it(sweep, capsys):
    (sweep / "trials.parquet").unlink()
    code, err = _resume(sweep, capsys)
    assert code == 3 and err.count("\n") == 1
    assert "trials.parquet: missing, but" in err and "epochs.parquet holds rows" in err


@pytest.mark.parametrize("name", TABLES)
def test_a_truncated_part_is_one_line_naming_it(sweep, capsys, name):
    _as_parts(sweep)
    _truncate(sweep / "parts" / name / "p1.parquet")
    code, err = _resume(sweep, capsys)
    assert code == 3 and f"parts/{name}/p1.parquet: not a readable Parquet file" in err


def test_a_lost_detail_part_of_a_recorded_pack_is_one_line_naming_it(sweep, capsys):
    _as_parts(sweep)
    (sweep / "parts" / "confusion" / "p1.parquet").unlink()
    code, err = _resume(sweep, capsys)
    assert code == 3 and "parts/confusion/p1.parquet: missing" in err


def test_an_unrecorded_pack_is_trained_again_and_every_row_restored(sweep, capsys):
    _as_parts(sweep)
    (sweep / "parts" / "trials" / "p1.parquet").unlink()  # killed before its commit
    assert _resume(sweep, capsys)[0] == 0
    _assert_every_row(sweep)


def test_a_part_killed_mid_write_is_trained_again_and_its_temporary_file_removed(sweep,
                                                                                capsys):
    """A writer killed mid-write leaves its temporary file (``.p1.parquet.<random>``) beside
    the parts: it is no part, and the pack it was for is trained again."""
    _as_parts(sweep)
    trials = sweep / "parts" / "trials" / "p1.parquet"
    left = trials.with_name(".p1.parquet.k3x9q2ab")
    left.write_bytes(trials.read_bytes()[:100])
    trials.unlink()
    assert _resume(sweep, capsys)[0] == 0
    _assert_every_row(sweep)
    assert not (sweep / "parts").exists()


def test_a_first_compaction_cut_short_resumes_with_every_row(sweep, capsys):
    _as_parts(sweep)
    shutil.copy(sweep / "parts" / "epochs" / "p1.parquet", sweep / "epochs.parquet")
    assert _resume(sweep, capsys)[0] == 0
    _assert_every_row(sweep)


def test_a_later_compaction_cut_short_after_its_detail_files_keeps_each_row_once(sweep, capsys):
    """Compacted trials.parquet records the first trial; the second is in parts; the detail
    files were already rewritten by a compaction killed before its trials file (their token
    differs): each trial's rows are read once, from one place, and a resume keeps them all."""
    import pyarrow as pa

    from mnist_core.sweep.reading import GENERATION, read_sweep

    tables = {name: pq.read_table(sweep / f"{name}.parquet") for name in TABLES}
    first, second = tables["trials"].column("trial_id").to_pylist()

    def rows_of(name, trial_id):
        table = tables[name]
        return table.filter(pa.compute.equal(table.column("trial_id"), trial_id))

    old, new = {GENERATION: b"old"}, {GENERATION: b"new"}
    pq.write_table(rows_of("trials", first).replace_schema_metadata(old),
                   sweep / "trials.parquet")
    for name in TABLES:
        (sweep / "parts" / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(rows_of(name, second), sweep / "parts" / name / "p2.parquet")
        if name != "trials":
            pq.write_table(tables[name].replace_schema_metadata(new), sweep / f"{name}.parquet")
    read = read_sweep(str(sweep))
    assert {name: read[name].num_rows for name in TABLES} == {
        "trials": 2, "epochs": 4, "confusion": 200, "per_class": 20}
    assert _resume(sweep, capsys)[0] == 0
    _assert_every_row(sweep)
    tokens = {pq.read_schema(sweep / f"{name}.parquet").metadata[GENERATION] for name in TABLES}
    assert len(tokens) == 1 and tokens != {b"new"}
