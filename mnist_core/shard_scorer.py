"""The scoring actor: scores whole shards and writes each one's predictions atomically.

Each actor reads a whole shard, runs the ``Predictor`` over it in batches of ``batch_size``
images, and writes the shard's predictions to ``predictions/shard=<key>/part-0.parquet``
(temporary file, then rename; on object stores a temporary key copied into place). Only a small
summary per shard travels back to the driver, which commits it to the manifest. The image
pixels never leave the actor that read them.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from mnist_core import storage
from mnist_core.prediction import DenseForward, Predictor
from mnist_core.shards import Shard, read_shard

NUM_CLASSES = 10
PREDICTIONS_SCHEMA = pa.schema([
    pa.field("id", pa.string()),
    pa.field("predicted_label", pa.int32()),
    pa.field("probability", pa.float32()),
    pa.field("probabilities", pa.list_(pa.float32(), NUM_CLASSES)),
    pa.field("model_id", pa.string()),
    pa.field("source", pa.string()),
])


class ShardScorer:
    """Scores one shard per ``score`` call and returns its summary (content hash, output file,
    rows scored, and rejected rows with reasons). Plain class; ``scoring`` runs it as a Ray
    actor."""

    def __init__(self, forward: DenseForward, model_id: str, side: int, batch_size: int,
                 out: str, use_gpu: bool = False):
        self.predictor = Predictor(forward, use_gpu)
        self.pixel_max = forward.pixel_max
        self.model_id, self.side, self.batch_size, self.out = model_id, side, batch_size, out

    def score(self, shard: Shard) -> dict:
        """Score one shard, write its predictions, and return its summary."""
        rows = read_shard(shard, self.side, self.pixel_max)
        ok = rows.errors == ""
        good = np.flatnonzero(ok)
        ids, pixels = rows.ids.take(good), rows.pixels[good]
        parts = [self.predictor({"id": ids[start:start + self.batch_size],
                                 "pixels": pixels[start:start + self.batch_size]})
                 for start in range(0, len(good), self.batch_size)]
        table = pa.concat_tables(parts) if parts else _empty_predictions()
        constant = np.zeros(table.num_rows, np.int32)
        table = table.append_column("model_id", pa.array([self.model_id]).take(constant))
        table = table.append_column("source", pa.array([shard.path]).take(constant))
        output = output_path(self.out, shard)
        storage.write_table(output, table.cast(PREDICTIONS_SCHEMA))
        failures = [{"id": rows.ids[int(i)].as_py(), "reason": rows.errors[i]}
                    for i in np.flatnonzero(~ok)]
        return {"path": shard.path, "content_hash": rows.content_hash, "output": output,
                "rows": len(good), "failures": json.dumps(failures)}


def output_path(out: str, shard: Shard) -> str:
    """Where a shard's predictions go (hive-style, so the folder reads as one dataset)."""
    return storage.join(out, "predictions", f"shard={shard.key}", "part-0.parquet")


def _empty_predictions() -> pa.Table:
    return pa.table({name: pa.array([], PREDICTIONS_SCHEMA.field(name).type)
                     for name in ("id", "predicted_label", "probability", "probabilities")})
