"""The scoring actor: scores whole shards and writes each one's predictions atomically.

Each actor reads a whole shard, runs the ``Predictor`` over it in batches of ``batch_size``
images, and writes the shard's predictions to a staging file, ``_staging/<key>-<random>.parquet``
(written atomically), where no dataset reader looks: pyarrow, DuckDB, Polars and Spark read
``predictions/``, and skip names that start with ``_`` besides. Only a small ``ShardResult`` per
shard travels back to the driver, which moves the file into ``predictions/`` as it commits the
shard (``manifest``). A shard with no image to predict (unreadable, or every row rejected)
writes no file at all. The image pixels never leave the actor that read them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mnist_core import storage
from mnist_core.config import NUM_CLASSES
from mnist_core.prediction import DenseForward, Predictor
from mnist_core.scoring.shards import Shard, read_shard

PREDICTIONS, STAGING = "predictions", "_staging"
PREDICTIONS_SCHEMA = pa.schema([
    pa.field("id", pa.string()),
    pa.field("predicted_label", pa.int32()),
    pa.field("probability", pa.float32()),
    pa.field("probabilities", pa.list_(pa.float32(), NUM_CLASSES)),
    pa.field("model_id", pa.string()),
    pa.field("source", pa.string()),
    pa.field("label", pa.int32()),  # the input's own label, when it carries one
])


@dataclass(frozen=True)
class RejectedRow:
    """An image that was not scored (its id as text, None when it had none), and why."""

    id: str | None
    reason: str


@dataclass(frozen=True)
class ShardResult:
    """What scoring one shard produced: the content hash of the bytes read, the staged
    predictions file ("" when no image was predicted), the ids it holds (strings or int64, one
    each), the rows rejected, and whether the shard could be read at all."""

    path: str
    content_hash: str
    staged: str
    ids: pa.Array
    rejected: tuple[RejectedRow, ...]
    readable: bool = True

    @property
    def rows(self) -> int:
        """How many predictions the output file holds."""
        return len(self.ids)


class ShardScorer:
    """Scores one shard per ``score`` call and returns its ``ShardResult``. Plain class;
    ``scoring.driver`` runs it as a Ray actor."""

    def __init__(self, forward: DenseForward, model_id: str, side: int, batch_size: int,
                 out: str, use_gpu: bool = False):
        self.predictor = Predictor(forward, use_gpu)
        self.pixel_max, self.classes = forward.pixel_max, forward.classes
        self.model_id, self.side, self.batch_size, self.out = model_id, side, batch_size, out

    def score(self, shard: Shard) -> ShardResult:
        """Score one shard, stage its predictions, and return what it did."""
        rows = read_shard(shard, self.side, self.pixel_max, self.classes)
        ok = rows.errors == ""
        good = np.flatnonzero(ok)
        table = self._predict(rows.ids.take(good), rows.pixels[good])
        constant = np.zeros(table.num_rows, np.int32)
        table = table.append_column("model_id", pa.array([self.model_id]).take(constant))
        table = table.append_column("source", pa.array([shard.path]).take(constant))
        table = table.append_column("label", rows.labels.take(good) if rows.labels is not None
                                    else pa.nulls(len(good), pa.int32()))
        staged = ""
        if table.num_rows:
            staged = staging_path(self.out, shard)
            storage.write_table(staged, table.cast(predictions_schema(table.field("id").type)))
        rejected = tuple(RejectedRow(_text(rows.ids[int(i)].as_py()), str(rows.errors[i]))
                         for i in np.flatnonzero(~ok))
        return ShardResult(shard.path, rows.content_hash, staged,
                           table.column("id").combine_chunks(), rejected, rows.readable)

    def _predict(self, ids: pa.Array, pixels: np.ndarray) -> pa.Table:
        parts = [self.predictor(ids[start:start + self.batch_size],
                                pixels[start:start + self.batch_size])
                 for start in range(0, len(ids), self.batch_size)]
        return pa.concat_tables(parts) if parts else _empty_predictions(ids.type)


def predictions_schema(id_type: pa.DataType) -> pa.Schema:
    """``PREDICTIONS_SCHEMA`` with the ids' own type (string or int64)."""
    return PREDICTIONS_SCHEMA.set(0, pa.field("id", id_type))


def _text(value) -> str | None:
    return None if value is None else str(value)


def output_path(out: str, shard: Shard) -> str:
    """Where a committed shard's predictions are (hive-style, so the folder reads as one
    dataset)."""
    return storage.join(out, PREDICTIONS, f"shard={shard.key}", "part-0.parquet")


def staging_path(out: str, shard: Shard) -> str:
    """A new name for one attempt at ``shard``'s predictions, where no reader looks: two
    attempts (a retried actor, a straggler of a killed run) never write the same file."""
    return storage.join(out, STAGING, f"{shard.key}-{uuid.uuid4().hex}.parquet")


def _empty_predictions(id_type: pa.DataType) -> pa.Table:
    schema = predictions_schema(id_type)
    return pa.table({name: pa.array([], schema.field(name).type)
                     for name in ("id", "predicted_label", "probability", "probabilities")})
