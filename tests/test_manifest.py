"""What a scoring output folder holds, told truly on every run, on real Ray and real files.

Run with ``.venv/bin/python -m pytest tests/test_manifest.py``. Each case is one that lost or
hid users' images before: a rerun that went green with nothing scored, a corrupt shard fixing
the folder's id type, array files of one name in two folders, uncommitted rows seen by
readers after a kill, labels that broke a shard or disagreed with the confusion matrix,
requests refused only after minutes (or never).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from _processes import crash_when

from jobs._cli import run
from jobs.score import main
from mnist_core.config import ModelConfig
from mnist_core.model import build_model

ROOT = Path(__file__).resolve().parent.parent
IMAGES = np.random.default_rng(5).integers(0, 256, (600, 784), dtype=np.uint8)
DIGITS = np.random.default_rng(6).integers(0, 17, (40, 64), dtype=np.uint8)


@pytest.fixture(scope="module")
def fashion_model(tmp_path_factory):
    """A 28x28 model (what a Fashion-MNIST sweep makes)."""
    import keras

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("fashion") / "model.keras"
    build_model(ModelConfig((16,), "relu"), 784).save(path)
    return path


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """An 8x8 model taking pixels 0-16 (what a digits sweep makes)."""
    import keras

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("digits") / "model.keras"
    build_model(ModelConfig(), 64, pixel_max=16).save(path)
    return path


def _shard(path, ids, images, labels=None):
    columns = {"id": ids, "image": pa.array([row.tobytes() for row in images], pa.binary())}
    if labels is not None:
        columns["label"] = labels
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def _score(model, source, out, *flags):
    return main(["--model", str(model), "--input", str(source), "--out", str(out), *flags])


def _ids(out):
    return pq.read_table(out / "predictions").column("id").to_pylist()


def _job(*argv, timeout=120):
    return subprocess.run([sys.executable, "-m", "jobs.score", *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "RAY_ADDRESS": ""})


def test_images_of_another_size_are_refused_before_ray_and_before_out(tmp_path,
                                                                       fashion_model):
    _shard(tmp_path / "in" / "a.parquet", ["x", "y"], DIGITS[:2])
    np.save(tmp_path / "in" / "b.npy", DIGITS[:3].reshape(3, 8, 8))
    result = _job("--model", fashion_model, "--input", tmp_path / "in",
                  "--out", tmp_path / "out")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: --input {tmp_path / 'in' / 'a.parquet'}: its images have "
                           "64 pixels (8x8) but the model")
    assert "takes 784 pixels (28x28)" in line
    assert "Ray" not in result.stdout and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_rejected_images_keep_every_rerun_at_exit_1_until_scored(ray_session, tmp_path,
                                                                  digits_model, capsys):
    bright = DIGITS.copy()
    bright[:3] = 200
    shard, out = tmp_path / "in" / "a.parquet", tmp_path / "out"
    _shard(shard, [f"d{i}" for i in range(40)], bright)
    assert _score(digits_model, shard, out) == 1
    capsys.readouterr()
    assert _score(digits_model, shard, out) == 1
    printed = capsys.readouterr().out
    assert "0 of 1 shards to score" in printed
    assert "holds 37 predictions from this model for 1 of the input's shards; 3 rejected" \
        in printed
    assert "3 rejected: pixel value 200 outside the model's range [0, 16]" in printed
    assert _score(digits_model, shard, out, "--retry-failed") == 1
    assert "1 of 1 shards to score" in capsys.readouterr().out
    _shard(shard, [f"d{i}" for i in range(40)], DIGITS)
    assert _score(digits_model, shard, out) == 0
    assert "40 predictions from this model for 1 of the input's shards; 0 rejected" in \
        capsys.readouterr().out
    assert sorted(_ids(out)) == sorted(f"d{i}" for i in range(40))


@pytest.mark.slow
def test_an_unreadable_shard_sets_no_id_type_and_leaves_no_file(ray_session, tmp_path,
                                                                  fashion_model, capsys):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    (folder / "a0_corrupt.parquet").write_bytes(os.urandom(2000))
    _shard(folder / "b.parquet", pa.array(range(10, 15), pa.int64()), IMAGES[:5])
    assert _score(fashion_model, folder, out) == 1
    table = pq.read_table(out / "predictions")
    assert table.schema.field("id").type == pa.int64()
    assert sorted(table.column("id").to_pylist()) == [10, 11, 12, 13, 14]
    assert len(list((out / "predictions").rglob("*.parquet"))) == 1
    (folder / "a0_corrupt.parquet").unlink()
    capsys.readouterr()
    assert _score(fashion_model, folder, out) == 0
    assert "0 of 1 shards to score" in capsys.readouterr().out


@pytest.mark.slow
def test_array_files_of_one_name_in_two_folders_are_two_sets_of_ids(ray_session, tmp_path,
                                                                     fashion_model):
    for day in ("day1", "day2"):
        (tmp_path / "in" / day).mkdir(parents=True)
        np.save(tmp_path / "in" / day / "batch.npy", IMAGES[:4].reshape(4, 28, 28))
    out = tmp_path / "out"
    assert _score(fashion_model, tmp_path / "in" / "*" / "batch.npy", out) == 0
    assert sorted(_ids(out)) == sorted(f"{day}/batch.npy:{i}" for day in ("day1", "day2")
                                       for i in range(4))


def _read_with_duckdb(out) -> list:
    duckdb = pytest.importorskip("duckdb")
    pattern = str(out / "predictions" / "**" / "*.parquet")
    if not list((out / "predictions").rglob("*.parquet")):
        return []
    return [row[0] for row in duckdb.sql(f"select id from read_parquet('{pattern}')").fetchall()]


@pytest.mark.slow
def test_readers_never_see_a_row_twice_after_a_kill(ray_session, tmp_path, fashion_model):
    # 60 shards whose ids overlap their neighbour's by half: every shard but the first has
    # rows the driver must reject before they may be seen.
    folder, out = tmp_path / "in", tmp_path / "out"
    for index in range(60):
        ids = [f"i{value:05d}" for value in range(index * 5, index * 5 + 10)]
        _shard(folder / f"s{index:03d}.parquet", ids, IMAGES[index * 5:index * 5 + 10])
    command = [sys.executable, "-m", "jobs.score", "--model", str(fashion_model), "--input",
               str(folder), "--out", str(out), "--actors", "2", "--no-progress"]
    manifest = crash_when(command, "manifest.parquet", out, rows=3)
    assert pq.read_table(manifest).num_rows < 60, "the kill should land midway"
    seen = ds.dataset(out / "predictions", format="parquet", partitioning="hive")
    by_arrow = seen.to_table(columns=["id"]).column("id").to_pylist()
    assert len(by_arrow) == len(set(by_arrow)) > 0
    by_duckdb = _read_with_duckdb(out)
    assert sorted(by_duckdb) == sorted(by_arrow)
    assert _score(fashion_model, folder, out, "--actors", "2") == 1  # overlaps: rejected rows
    every = ds.dataset(out / "predictions", format="parquet").to_table().column("id")
    assert sorted(every.to_pylist()) == [f"i{value:05d}" for value in range(305)]
    assert pq.read_table(manifest).num_rows == 60  # every shard committed once
    assert not (out / "_staging").exists()


@pytest.mark.slow
def test_labels_outside_the_models_classes_are_rejected_rows(ray_session, tmp_path,
                                                             fashion_model):
    labels = pa.array([3, 99, -5, 2**40, None, 7], pa.int64())
    shard, out = tmp_path / "in" / "a.parquet", tmp_path / "out"
    _shard(shard, [f"l{i}" for i in range(6)], IMAGES[:6], labels)
    assert _score(fashion_model, shard, out) == 1
    table = pq.read_table(out / "predictions").sort_by("id")
    assert table.column("id").to_pylist() == ["l0", "l4", "l5"]
    assert table.column("label").to_pylist() == [3, None, 7]
    reasons = sorted(row["reason"] for row in pq.read_table(out / "failures.parquet")
                     .to_pylist())
    assert reasons == [f"label {value} outside the model's classes 0-9"
                       for value in sorted(["-5", "1099511627776", "99"])]
    page = (out / "report.html").read_text()
    assert "on the 2 images whose input carries a label" in page


@pytest.mark.slow
def test_a_gpu_the_local_ray_lacks_is_refused_before_any_actor(ray_session, tmp_path,
                                                                fashion_model, capsys):
    _shard(tmp_path / "in" / "a.parquet", ["a"], IMAGES[:1])
    code = run(main, ["--model", str(fashion_model), "--input", str(tmp_path / "in"),
                      "--out", str(tmp_path / "out"), "--num-gpus", "1"])
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == ("error: --num-gpus each scoring actor asks for 1 GPU and the cluster has 0:"
                    " lower --num-gpus, or score on a cluster that has them")
    assert not (tmp_path / "out" / "predictions").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_a_numeric_flag_that_is_not_a_finite_positive_number_is_one_line(tmp_path,
                                                                          fashion_model, value):
    _shard(tmp_path / "in" / "a.parquet", ["a"], IMAGES[:1])
    result = _job("--model", fashion_model, "--input", tmp_path / "in", "--out",
                  tmp_path / "out", "--num-gpus", value)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: --num-gpus must be")
    assert not (tmp_path / "out").exists()
