"""Batch scoring on real Ray: predictions match Keras, every image exactly once, resume."""

import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _processes import crash_when

from jobs.score import main
from mnist_core.config import ModelConfig
from mnist_core.model import build_model
from mnist_core.prediction import DenseForward, Predictor, load_model
from mnist_core.scoring.shards import write_shards

IMAGES = np.random.default_rng(11).integers(0, 256, (2400, 784), dtype=np.uint8)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_model(ModelConfig((16,), "relu"), 784).save(path)
    return path


def _shards(folder, count=2400, shard_size=600):
    write_shards(str(folder), "test", IMAGES, np.zeros(len(IMAGES), np.int32), count, shard_size)
    return str(folder / "*.parquet")


def _predictions(out):
    return pq.read_table(out / "predictions").to_pandas()


def _expected(model_path, images):
    return load_model(model_path).predict(images.astype(np.float32), verbose=0)


def test_predictor_on_a_hand_made_batch(model_path):
    predictor = Predictor(DenseForward.from_model(load_model(model_path)))
    table = predictor(pa.array(["a", "b", "c"]), IMAGES[:3]).to_pylist()
    expected = _expected(model_path, IMAGES[:3])
    assert [row["id"] for row in table] == ["a", "b", "c"]
    for row, want in zip(table, expected):
        np.testing.assert_allclose(row["probabilities"], want, atol=1e-5)
        assert row["predicted_label"] == want.argmax()
        assert row["probability"] == pytest.approx(want.max(), abs=1e-5)
        assert sum(row["probabilities"]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_scoring_matches_keras_and_covers_every_image_once(ray_session, tmp_path, model_path):
    pattern = _shards(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["--model", str(model_path), "--input", pattern, "--out", str(out),
                 "--batch-size", "256"]) == 0
    predictions = _predictions(out).sort_values("id")
    assert len(predictions) == 2400 and predictions["id"].is_unique
    expected = _expected(model_path, IMAGES)
    np.testing.assert_array_equal(predictions["predicted_label"], expected.argmax(axis=1))
    np.testing.assert_allclose(np.stack(predictions["probabilities"]), expected, atol=1e-5)
    manifest = pq.read_table(out / "manifest.parquet").to_pylist()
    assert len(manifest) == 4 and {row["rows"] for row in manifest} == {600}
    assert main(["--model", str(model_path), "--input", pattern, "--out", str(out)]) == 0
    assert len(_predictions(out)) == 2400


@pytest.mark.slow
def test_changed_shard_is_rescored_and_replaced(ray_session, tmp_path, model_path):
    folder = tmp_path / "in"
    pattern = _shards(folder, count=1200)
    out = tmp_path / "out"
    main(["--model", str(model_path), "--input", pattern, "--out", str(out)])
    flipped = 255 - IMAGES
    write_shards(str(folder), "test", flipped, np.zeros(len(IMAGES), np.int32), 600, 600)
    main(["--model", str(model_path), "--input", pattern, "--out", str(out)])
    predictions = _predictions(out).sort_values("id")
    assert len(predictions) == 1200 and predictions["id"].is_unique
    expected = np.concatenate([_expected(model_path, flipped[:600]),
                               _expected(model_path, IMAGES[600:1200])])
    np.testing.assert_array_equal(predictions["predicted_label"], expected.argmax(axis=1))


@pytest.mark.slow
def test_bad_shards_land_in_failures_and_the_rest_complete(ray_session, tmp_path, model_path):
    folder = tmp_path / "in"
    _shards(folder, count=1200)
    (folder / "corrupt.parquet").write_bytes(b"PAR1 not really parquet")
    np.save(folder / "floats.npy", np.zeros((5, 28, 28), np.float32))
    out = tmp_path / "out"
    assert main(["--model", str(model_path), "--input", str(folder), "--out", str(out)]) == 1
    assert len(_predictions(out)) == 1200
    failures = pq.read_table(out / "failures.parquet").to_pylist()
    reasons = {os.path.basename(row["source"]): row["reason"] for row in failures}
    assert set(reasons) == {"corrupt.parquet", "floats.npy"}
    assert "unreadable shard" in reasons["corrupt.parquet"]
    assert "expected uint8 images of 28x28" in reasons["floats.npy"]
    statuses = {os.path.basename(r["path"]): r["status"]
                for r in pq.read_table(out / "manifest.parquet").to_pylist()}
    assert statuses["corrupt.parquet"] == "failed" and statuses["part-00000.parquet"] == "ok"


@pytest.mark.slow
def test_png_folder_is_scored(ray_session, tmp_path, model_path):
    from PIL import Image

    folder = tmp_path / "pngs"
    folder.mkdir()
    for index in range(6):
        Image.fromarray(IMAGES[index].reshape(28, 28)).save(folder / f"{index}.png")
    out = tmp_path / "out"
    assert main(["--model", str(model_path), "--input", str(folder), "--out", str(out)]) == 0
    predictions = _predictions(out).sort_values("id")
    assert list(predictions["id"]) == [f"{index}.png" for index in range(6)]
    expected = _expected(model_path, IMAGES[:6])
    np.testing.assert_array_equal(predictions["predicted_label"], expected.argmax(axis=1))




@pytest.mark.parametrize("missing", ["model", "input"])
def test_missing_model_or_input_exits_2_with_one_line(tmp_path, model_path, missing):
    pattern = _shards(tmp_path / "in", count=10, shard_size=10)
    model = tmp_path / "absent.keras" if missing == "model" else model_path
    source = str(tmp_path / "nothing" / "*.parquet") if missing == "input" else pattern
    result = subprocess.run([sys.executable, "-m", "jobs.score", "--model", str(model),
                             "--input", source, "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error:")
    assert missing in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists(), "a refused run leaves no --out behind"


def test_tensorflow_forward_pass_matches_numpy(model_path):
    """The GPU actors' graph (run here on the CPU) computes what the numpy path computes."""
    forward = DenseForward.from_model(load_model(model_path))
    on_numpy = Predictor(forward).probabilities(IMAGES[:50])
    on_graph = Predictor(forward, use_gpu=True).probabilities(IMAGES[:50])
    np.testing.assert_allclose(on_graph, on_numpy, atol=1e-6)


def _other_model(tmp_path):
    import keras

    keras.utils.set_random_seed(1)
    path = tmp_path / "model-b.keras"
    build_model(ModelConfig((8,), "tanh"), 784).save(path)
    return path


def _model_ids(out):
    return set(_predictions(out)["model_id"])


@pytest.mark.slow
def test_a_new_model_rescores_every_shard(ray_session, tmp_path, model_path, capsys):
    pattern = _shards(tmp_path / "in", count=1200)
    out = tmp_path / "out"
    assert main(["--model", str(model_path), "--input", pattern, "--out", str(out)]) == 0
    (first,) = _model_ids(out)
    other = _other_model(tmp_path)
    capsys.readouterr()
    assert main(["--model", str(other), "--input", pattern, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    (second,) = _model_ids(out)
    assert second != first
    assert "2 of 2 shards to score" in printed
    assert f"before model {first} (2 shards); now model {second} (2 shards)" in printed
    predictions = _predictions(out).sort_values("id")
    assert len(predictions) == 1200 and predictions["id"].is_unique
    np.testing.assert_array_equal(predictions["predicted_label"],
                                  _expected(other, IMAGES[:1200]).argmax(axis=1))
    manifest = pq.read_table(out / "manifest.parquet").to_pylist()
    assert {(row["model_id"], row["model"]) for row in manifest} == {(second, str(other))}


@pytest.mark.slow
def test_a_crash_while_rescoring_with_a_new_model_resumes(ray_session, tmp_path, model_path):
    pattern = _shards(tmp_path / "in", count=6000, shard_size=100)
    out = tmp_path / "out"
    assert main(["--model", str(model_path), "--input", pattern, "--out", str(out)]) == 0
    (first,) = _model_ids(out)
    other = str(_other_model(tmp_path))
    command = [sys.executable, "-m", "jobs.score", "--model", other, "--input", pattern,
               "--out", str(out)]
    manifest = crash_when(command, "manifest.parquet", out, ready=lambda table: sum(
        model != first for model in table.column("model_id").to_pylist()) >= 2)
    models = pq.read_table(manifest).column("model_id").to_pylist()
    assert {first} < set(models), "the kill should land midway through the rescoring"
    assert main(["--model", other, "--input", pattern, "--out", str(out)]) == 0
    predictions = _predictions(out)
    assert len(predictions) == 6000 and predictions["id"].is_unique
    assert _model_ids(out) == set(models) - {first}


@pytest.mark.slow
def test_raw_digits_pixels_are_scored_in_the_models_units(ray_session, tmp_path):
    import keras

    from mnist_core.data import held_out_images

    keras.utils.set_random_seed(0)
    model = tmp_path / "digits.keras"
    build_model(ModelConfig(), 64, pixel_max=16).save(model)
    pixels, _ = held_out_images("digits")
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "raw.npy", pixels[:50])
    np.save(folder / "bright.npy", np.full((3, 64), 200, np.uint8))
    out = tmp_path / "out"
    assert main(["--model", str(model), "--input", str(folder), "--out", str(out)]) == 1
    predictions = _predictions(out).sort_values("id", key=lambda ids: ids.map(
        lambda text: int(text.rsplit(":", 1)[1])))
    assert list(predictions["source"].map(os.path.basename).unique()) == ["raw.npy"]
    expected = load_model(model).predict(pixels[:50].astype(np.float32), verbose=0)
    np.testing.assert_allclose(np.stack(predictions["probabilities"]), expected, atol=1e-5)
    failures = pq.read_table(out / "failures.parquet").to_pylist()
    assert len(failures) == 3
    assert {row["reason"] for row in failures} == {
        "pixel value 200 outside the model's range [0, 16]"}


@pytest.mark.slow
def test_inputs_model_and_outputs_on_an_s3_server(s3_server, tmp_path, model_path):
    from mnist_core import storage

    write_shards("s3://mnist/incoming", "s3", IMAGES, np.zeros(len(IMAGES), np.int32),
                 1200, 400)
    storage.write_bytes("s3://mnist/models/model.keras", model_path.read_bytes())
    command = [sys.executable, "-m", "jobs.score", "--model", "s3://mnist/models/model.keras",
               "--input", "s3://mnist/incoming/*.parquet", "--out", "s3://mnist/scores"]
    environment = {**os.environ, **s3_server, "RAY_ADDRESS": ""}
    first = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "3 of 3 shards to score" in first.stdout
    manifest = storage.read_table("s3://mnist/scores/manifest.parquet").to_pylist()
    assert len(manifest) == 3 and all(row["output"].startswith("s3://mnist/scores/predictions/")
                                      for row in manifest)
    predictions = pa.concat_tables([storage.read_table(row["output"]) for row in manifest])
    assert predictions.num_rows == 1200 and len(set(predictions["id"].to_pylist())) == 1200
    by_id = dict(zip(predictions["id"].to_pylist(), predictions["predicted_label"].to_pylist()))
    expected = _expected(model_path, IMAGES[:1200]).argmax(axis=1)
    assert [by_id[f"s3-{index:09d}"] for index in range(1200)] == list(expected)
    again = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 of 3 shards to score" in again.stdout
    leftovers = [entry.location for entry in storage.list_files("s3://mnist/scores")
                 if ".tmp" in entry.location or ".write-probe" in entry.location]
    assert leftovers == []


@pytest.mark.parametrize("job", [
    ["jobs.train", "--epochs", "1", "--out", "/proc/nope/x"],
    ["jobs.score", "--model", "{model}", "--input", "{input}", "--out", "/proc/nope"],
    ["jobs.sweep", "--config", "configs/quick.toml", "--out", "/proc/nope"],
    ["jobs.make_images", "--count", "10", "--out", "/proc/nope"],
])
def test_an_unwritable_out_is_one_line_and_exit_2_before_any_work(tmp_path, model_path, job):
    pattern = _shards(tmp_path / "in", count=10, shard_size=10)
    command = [part.format(model=model_path, input=pattern) for part in job]
    result = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True,
                            timeout=120, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: --out /proc/nope") and "cannot write there" in line
    assert "Traceback" not in result.stdout


def _id_shard(path, ids, id_type=None):
    """A Parquet shard of ``len(ids)`` images with exactly these ids."""
    images = IMAGES[:len(ids)]
    table = pa.table({"id": pa.array(ids, id_type),
                      "image": pa.array([row.tobytes() for row in images], pa.binary())})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _failures(out):
    return pq.read_table(out / "failures.parquet").to_pylist()


@pytest.mark.slow
def test_one_prediction_per_id_within_and_across_shards(ray_session, tmp_path, model_path):
    ids = [f"x{index}" for index in range(10)]
    _id_shard(tmp_path / "in" / "a.parquet", ids)
    _id_shard(tmp_path / "in" / "b.parquet", ids)
    _id_shard(tmp_path / "in" / "c.parquet", ["same"] * 5 + [None, "y"])
    out = tmp_path / "out"
    assert main(["--model", str(model_path), "--input", str(tmp_path / "in"),
                 "--out", str(out), "--actors", "2"]) == 1
    predictions = _predictions(out)
    assert sorted(predictions["id"]) == sorted([*ids, "same", "y"])
    reasons = [row["reason"] for row in _failures(out)]
    assert sum("another shard of this output already has a prediction" in r
               for r in reasons) == 10
    assert sum("appears earlier in this shard" in r for r in reasons) == 4
    assert reasons.count("null id") == 1


@pytest.mark.slow
def test_ids_committed_by_an_earlier_run_are_not_predicted_again(ray_session, tmp_path,
                                                                  model_path):
    _id_shard(tmp_path / "in" / "a.parquet", ["p", "q"])
    out, argv = tmp_path / "out", ["--model", str(model_path), "--out", str(tmp_path / "out")]
    assert main([*argv, "--input", str(tmp_path / "in")]) == 0
    _id_shard(tmp_path / "in" / "b.parquet", ["q", "r"])
    assert main([*argv, "--input", str(tmp_path / "in")]) == 1
    assert sorted(_predictions(out)["id"]) == ["p", "q", "r"]
    assert [row["id"] for row in _failures(out)] == ["q"]


@pytest.mark.slow
def test_ids_keep_their_type_and_a_run_never_mixes_types(ray_session, tmp_path, model_path):
    _id_shard(tmp_path / "in" / "a.parquet", [1, 2, 3], pa.int32())
    _id_shard(tmp_path / "in" / "b.parquet", ["1", "4"])
    _id_shard(tmp_path / "in" / "c.parquet", [1.0, 5.0], pa.float64())
    out = tmp_path / "out"
    assert main(["--model", str(model_path), "--input", str(tmp_path / "in"),
                 "--out", str(out)]) == 1
    table = pq.read_table(out / "predictions")
    assert table.schema.field("id").type == pa.int64()
    assert sorted(table.column("id").to_pylist()) == [1, 2, 3]
    reasons = {row["id"]: row["reason"] for row in _failures(out)}
    assert "ids are string but this output folder's ids are int64" in reasons["1"]
    assert "ids must be strings or integers" in reasons[None]
