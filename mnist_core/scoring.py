"""Batch scoring on Ray Data: shards in, one prediction row per image out, exactly once.

The pipeline maps over shards: ``from_items`` (one block per pending shard) →
``map_batches(ShardScorer)`` on an actor pool (``ActorPoolStrategy``, ``num_gpus`` per actor) →
results streamed back to the driver. Each actor reads a whole shard, runs the ``Predictor``
over it in batches of ``batch_size`` images, and writes the shard's predictions atomically to
``predictions/shard=<key>/part-0.parquet`` (temporary file, then rename). The driver commits
each shard to ``manifest.parquet`` the moment its result arrives, so a crash costs only the
shards in flight: they are missing from the manifest, the rerun scores them again, and their
output file is replaced whole. Nothing is lost and nothing is duplicated.

Why not ``Dataset.write_parquet``: it writes per block, with no point at which one shard's
output is known complete, and re-grouping rows by shard (``partition_cols``) cost more than the
prediction itself (see docs/benchmarks.md). The image pixels never leave the actor that read
them; only a small summary per shard travels back.

The driver loads the model once, with ``safe_mode=True``, and ships its weights (numpy) to the
actors: a CPU actor never imports TensorFlow, whose start-up would dominate a short job.
A GPU actor runs the same forward pass as a TensorFlow graph on its GPU.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from mnist_core import storage
from mnist_core.errors import ConfigError
from mnist_core.manifest import Manifest
from mnist_core.prediction import DenseForward, load_model
from mnist_core.shards import Shard, discover, read_shard

PREDICTIONS_SCHEMA = pa.schema([
    pa.field("id", pa.string()),
    pa.field("predicted_label", pa.int32()),
    pa.field("probability", pa.float32()),
    pa.field("probabilities", pa.list_(pa.float32(), 10)),
    pa.field("model_id", pa.string()),
    pa.field("source", pa.string()),
])
_SCALE = np.float32(1 / 255)


@dataclass(frozen=True)
class ScoreConfig:
    """A scoring job: model, inputs, output folder and the Ray Data knobs."""

    model: str
    input: str
    out: str
    batch_size: int = 8192
    actors: int = 1
    num_gpus: float = 0.0

    def __post_init__(self) -> None:
        for name in ("batch_size", "actors"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.num_gpus < 0:
            raise ConfigError(f"num_gpus must be >= 0, got {self.num_gpus}")


@dataclass(frozen=True)
class ScoreSummary:
    """What a scoring run did."""

    shards: int
    scored_shards: int
    images: int
    failed_rows: int
    model_id: str


@dataclass(frozen=True, eq=False)
class ScorePlan:
    """What a scoring run will do, worked out before Ray is needed: the model, its image
    side, every input shard and the ones the manifest says are still pending."""

    config: ScoreConfig
    forward: DenseForward
    model_id: str
    side: int
    shards: list[Shard]
    pending: list[Shard]
    manifest: Manifest


class Predictor:
    """The batch function: uint8 images in, prediction columns out.

    ``__init__`` readies the model once (the 1/255 scaling is folded into the first layer's
    weights, so preprocessing costs one dtype conversion); ``__call__`` maps a batch
    ``{"id", "pixels"}`` to a table of id, predicted_label, probability and probabilities.
    """

    def __init__(self, forward: DenseForward, use_gpu: bool = False):
        scaled = (forward.weights[0] * _SCALE, *forward.weights[1:])
        self.forward = replace(forward, weights=scaled)
        self._gpu = _gpu_forward(self.forward) if use_gpu else None

    def __call__(self, batch: dict) -> pa.Table:
        """Predict every row of ``batch``."""
        probabilities = self.probabilities(np.asarray(batch["pixels"]))
        labels = probabilities.argmax(axis=1).astype(np.int32)
        return pa.table({
            "id": pa.array(batch["id"], pa.string()),
            "predicted_label": labels,
            "probability": np.take_along_axis(probabilities, labels[:, None], axis=1)[:, 0],
            "probabilities": pa.FixedSizeListArray.from_arrays(probabilities.reshape(-1), 10),
        })

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Softmax rows (float32) for uint8 pixels (n, input_dim)."""
        if self._gpu is not None:
            return self._gpu(pixels).numpy()
        return self.forward.probabilities(pixels.astype(np.float32))


class ShardScorer:
    """Ray Data actor: scores whole shards and writes each one's predictions atomically.

    ``__call__`` takes a batch of shard descriptors and returns one summary row per shard
    (its content hash, rows scored, rejected rows with reasons), which the driver commits.
    """

    def __init__(self, forward: DenseForward, model_id: str, side: int, batch_size: int,
                 out: str, use_gpu: bool = False):
        self.predictor = Predictor(forward, use_gpu)
        self.model_id, self.side, self.batch_size, self.out = model_id, side, batch_size, out

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Score each shard in ``batch``; return their summaries."""
        summaries = [self._score(_shard_from(batch, index)) for index in range(len(batch["path"]))]
        return {key: np.array([summary[key] for summary in summaries], dtype=object)
                for key in summaries[0]}

    def _score(self, shard: Shard) -> dict:
        rows = read_shard(shard, self.side)
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
        bad = np.flatnonzero(~ok)
        failures = [{"id": rows.ids[int(i)].as_py(), "reason": rows.errors[i]} for i in bad]
        return {"path": shard.path, "content_hash": rows.content_hash, "output": output,
                "rows": len(good), "failures": json.dumps(failures)}


def model_id(model_bytes: bytes) -> str:
    """A content hash of the model file: the same file always gets the same id."""
    return hashlib.sha256(model_bytes).hexdigest()[:16]


def output_path(out: str, shard: Shard) -> str:
    """Where a shard's predictions go (hive-style, so the folder reads as one dataset)."""
    return storage.join(out, "predictions", f"shard={shard.key}", "part-0.parquet")


def plan(config: ScoreConfig) -> ScorePlan:
    """Load the model (safe mode), find the shards and compare them with the manifest."""
    shards = discover(config.input)
    forward = DenseForward.from_model(load_model(config.model))
    manifest = Manifest(config.out)
    return ScorePlan(config, forward, model_id(storage.read_bytes(config.model)),
                     _side(forward, config.model), shards, manifest.pending(shards), manifest)


def execute(work: ScorePlan, on_shard=None) -> ScoreSummary:
    """Score the plan's pending shards on the connected Ray, committing each as it lands."""
    images = failed = 0
    if work.pending:
        by_path = {shard.path: shard for shard in work.pending}
        for batch in _pipeline(work).iter_batches(batch_size=1, batch_format="numpy"):
            summary = {key: value[0] for key, value in batch.items()}
            summary["failures"] = json.loads(summary["failures"])
            shard = by_path[summary["path"]]
            work.manifest.commit(shard, summary["content_hash"], summary["output"],
                                 int(summary["rows"]), _failure_rows(shard, summary),
                                 work.model_id)
            images, failed = images + int(summary["rows"]), failed + len(summary["failures"])
            if on_shard is not None:
                on_shard(shard, int(summary["rows"]), len(summary["failures"]))
    return ScoreSummary(len(work.shards), len(work.pending), images, failed, work.model_id)


def _pipeline(work: ScorePlan):
    import ray

    config = work.config
    items = [{"path": s.path, "kind": s.kind, "root": s.root, "size": s.size,
              "mtime_ns": s.mtime_ns} for s in work.pending]
    resources = {"num_gpus": config.num_gpus} if config.num_gpus else {"num_cpus": 1}
    return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        ShardScorer, batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=min(config.actors, len(items))),
        fn_constructor_kwargs={"forward": work.forward, "model_id": work.model_id,
                               "side": work.side, "batch_size": config.batch_size,
                               "out": config.out, "use_gpu": config.num_gpus > 0},
        **resources,
    )


def _shard_from(batch: dict[str, np.ndarray], index: int) -> Shard:
    return Shard(str(batch["path"][index]), str(batch["kind"][index]), str(batch["root"][index]),
                 int(batch["size"][index]), int(batch["mtime_ns"][index]))


def _failure_rows(shard: Shard, summary: dict) -> list[dict]:
    return [{"source": shard.path, "shard": shard.key, "id": failure["id"],
             "reason": failure["reason"]} for failure in summary["failures"]]


def _empty_predictions() -> pa.Table:
    return pa.table({name: pa.array([], PREDICTIONS_SCHEMA.field(name).type)
                     for name in ("id", "predicted_label", "probability", "probabilities")})


def _side(forward: DenseForward, model_path: str) -> int:
    side = math.isqrt(forward.input_dim)
    if side * side != forward.input_dim:
        raise ConfigError(f"{model_path}: model input of {forward.input_dim} features is not a "
                          "square image")
    return side


def _gpu_forward(forward: DenseForward):
    """The forward pass as a TensorFlow graph on this actor's GPU (uint8 in, probabilities out)."""
    from mnist_core import devices

    devices.configure(use_gpu=True)
    import keras
    import tensorflow as tf

    layers = [(tf.constant(w), tf.constant(b), keras.activations.get(name))
              for w, b, name in zip(forward.weights, forward.biases, forward.activations)]

    @tf.function(reduce_retracing=True)
    def run(pixels):
        activations = tf.cast(pixels, tf.float32)
        for kernel, bias, activation in layers:
            activations = activation(tf.matmul(activations, kernel) + bias)
        return activations

    return run
