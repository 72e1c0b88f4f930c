"""Reading scoring inputs: every format, and every bad input recorded rather than raised."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mnist_core.errors import DataNotFoundError
from mnist_core.scoring.shards import content_hash, discover, image_sizes, read_shard

RNG = np.random.default_rng(3)


def _images(count: int, side: int = 28) -> np.ndarray:
    return RNG.integers(0, 256, (count, side, side), dtype=np.uint8)


def _parquet(path, images, ids=None, as_lists=False):
    flat = images.reshape(len(images), -1)
    column = pa.array([row.tolist() for row in flat]) if as_lists else pa.array(
        [row.tobytes() for row in flat], pa.binary())
    ids = ids if ids is not None else [f"img-{i}" for i in range(len(images))]
    pq.write_table(pa.table({"id": ids, "image": column}), path)
    return path


def _only(shards):
    (shard,) = shards
    return shard


@pytest.mark.parametrize("as_lists", [False, True])
def test_parquet_shard(tmp_path, as_lists):
    images = _images(5)
    shard = _only(discover(str(_parquet(tmp_path / "a.parquet", images, as_lists=as_lists))))
    rows = read_shard(shard, 28)
    np.testing.assert_array_equal(rows.pixels, images.reshape(5, -1))
    assert rows.ids.to_pylist() == [f"img-{i}" for i in range(5)]
    assert list(rows.errors) == [""] * 5
    assert len(rows.content_hash) == 64


def test_npy_and_npz_shards(tmp_path):
    images = _images(4)
    np.save(tmp_path / "a.npy", images)
    np.savez(tmp_path / "b.npz", first=images[:2], second=images[2:].reshape(2, -1))
    npy, npz = discover(str(tmp_path / "*.np[yz]"))
    assert read_shard(npy, 28).ids.to_pylist() == ["a.npy:0", "a.npy:1", "a.npy:2", "a.npy:3"]
    rows = read_shard(npz, 28)
    assert rows.ids.to_pylist() == ["b.npz:first:0", "b.npz:first:1", "b.npz:second:0",
                                "b.npz:second:1"]
    np.testing.assert_array_equal(rows.pixels, images.reshape(4, -1))


def test_image_folder_is_one_shard_converted_to_grayscale(tmp_path):
    folder = tmp_path / "pngs"
    folder.mkdir()
    Image.fromarray(np.full((56, 56, 3), 200, np.uint8)).save(folder / "big_rgb.png")
    Image.fromarray(_images(1)[0]).save(folder / "small.jpg")
    shard = _only(discover(str(tmp_path)))
    rows = read_shard(shard, 28)
    assert shard.kind == "images"
    assert rows.ids.to_pylist() == ["pngs/big_rgb.png", "pngs/small.jpg"]
    assert rows.pixels.shape == (2, 784) and (rows.pixels[0] == 200).all()


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        (lambda p: p.write_bytes(b"PAR1 garbage"), "unreadable shard"),
        (lambda p: pq.write_table(pa.table({"id": ["a"], "pixels": [b"x"]}), p),
         "missing column"),
    ],
)
def test_corrupt_parquet_is_one_error_row(tmp_path, write, reason):
    path = tmp_path / "bad.parquet"
    write(path)
    rows = read_shard(_only(discover(str(path))), 28)
    assert rows.ids.to_pylist() == [None]
    assert reason in rows.errors[0]


def test_wrong_size_array_is_one_error_row(tmp_path):
    np.save(tmp_path / "small.npy", _images(3, side=20))
    rows = read_shard(_only(discover(str(tmp_path / "small.npy"))), 28)
    assert "expected uint8 images of 28x28" in rows.errors[0]


def test_bad_rows_are_rejected_one_by_one(tmp_path):
    good = _images(1).reshape(-1).tolist()
    table = pa.table({
        "id": ["ok", "short", "nan", "big"],
        "image": pa.array([good, good[:700], [float("nan")] * 784, [300] * 784],
                          pa.list_(pa.float64())),
    })
    pq.write_table(table, tmp_path / "rows.parquet")
    rows = read_shard(_only(discover(str(tmp_path / "rows.parquet"))), 28)
    assert rows.errors[0] == ""
    assert "700 values" in rows.errors[1]
    assert "NaN" in rows.errors[2]
    assert "[0, 255]" in rows.errors[3]
    np.testing.assert_array_equal(rows.pixels[0], good)


def test_wrong_size_bytes_are_rejected(tmp_path):
    table = pa.table({"id": ["ok", "short"],
                      "image": [bytes(784), bytes(700)]})
    pq.write_table(table, tmp_path / "b.parquet")
    rows = read_shard(_only(discover(str(tmp_path / "b.parquet"))), 28)
    assert list(rows.errors) == ["", "image has 700 bytes, expected 784"]


def test_content_hash_changes_with_content(tmp_path):
    path = _parquet(tmp_path / "a.parquet", _images(2))
    shard = _only(discover(str(path)))
    before = content_hash(shard)
    assert read_shard(shard, 28).content_hash == before
    _parquet(path, _images(2))
    assert content_hash(_only(discover(str(path)))) != before


def test_nothing_to_score(tmp_path):
    with pytest.raises(DataNotFoundError, match="no Parquet"):
        discover(str(tmp_path / "*.parquet"))


def test_array_ids_carry_the_path_relative_to_the_input_root(tmp_path):
    for day in ("day1", "day2"):
        (tmp_path / day).mkdir()
        np.save(tmp_path / day / "batch.npy", _images(2))
    first, second = discover(str(tmp_path))
    assert read_shard(first, 28).ids.to_pylist() == ["day1/batch.npy:0", "day1/batch.npy:1"]
    assert read_shard(second, 28).ids.to_pylist() == ["day2/batch.npy:0", "day2/batch.npy:1"]


def test_labels_outside_the_classes_are_rejected_rows_not_a_broken_shard(tmp_path):
    images = _images(5).reshape(5, -1)
    pq.write_table(pa.table({
        "id": [f"x{i}" for i in range(5)],
        "image": pa.array([row.tobytes() for row in images], pa.binary()),
        "label": pa.array([1, 2**40, -1, None, 9], pa.int64()),
    }), tmp_path / "l.parquet")
    rows = read_shard(_only(discover(str(tmp_path / "l.parquet"))), 28)
    assert rows.readable
    assert list(rows.errors) == ["", "label 1099511627776 outside the model's classes 0-9",
                                 "label -1 outside the model's classes 0-9", "", ""]
    assert rows.labels.type == pa.int32()
    assert rows.labels.to_pylist() == [1, None, None, None, 9]


def test_a_label_column_of_another_type_makes_the_shard_unreadable(tmp_path):
    images = _images(1).reshape(1, -1)
    pq.write_table(pa.table({"id": ["x"], "image": [images[0].tobytes()], "label": ["cat"]}),
                   tmp_path / "l.parquet")
    rows = read_shard(_only(discover(str(tmp_path / "l.parquet"))), 28)
    assert not rows.readable and "labels must be integers" in rows.errors[0]


@pytest.mark.parametrize(("write", "sizes"), [
    (lambda p: np.save(p / "a.npy", _images(3, side=8)), {64}),
    (lambda p: np.savez(p / "a.npz", one=_images(2, 8), two=_images(2).reshape(2, -1)),
     {64, 784}),
    (lambda p: _parquet(p / "a.parquet", _images(3)), {784}),
    (lambda p: _parquet(p / "a.parquet", _images(3, side=8), as_lists=True), {64}),
    (lambda p: pq.write_table(pa.table({"id": ["a"], "image": pa.array(
        [bytes(64)], pa.binary(64))}), p / "a.parquet"), {64}),
    (lambda p: (p / "a.parquet").write_bytes(b"PAR1 garbage"), set()),
    (lambda p: Image.fromarray(_images(1)[0]).save(p / "a.png"), set()),
])
def test_image_sizes_come_from_headers_schemas_or_first_rows(tmp_path, write, sizes):
    write(tmp_path)
    assert image_sizes(_only(discover(str(tmp_path)))) == sizes
