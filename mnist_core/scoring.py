"""Batch scoring on Ray Data: shards in, one prediction row per image out, exactly once.

Pipeline, per wave of pending shards: ``from_items`` (one block per shard) → ``map_batches``
reading each shard into rows (tasks, in parallel) → ``map_batches(Predictor)`` on an actor pool
→ ``write_parquet`` to a staging folder partitioned by shard. Then each shard of the wave is
committed: its predictions are written atomically to ``predictions/shard=<key>/part-0.parquet``,
its rejected rows to ``failures.parquet``, and only then the shard to ``manifest.parquet``.
A crash at any point leaves uncommitted shards out of the manifest, so the rerun scores them
again and overwrites their partial output: nothing lost, nothing duplicated. Waves bound how
much work a crash can cost.

The driver loads the model once, with ``safe_mode=True``, and ships its weights (numpy) to the
actors: a CPU actor then never imports TensorFlow, whose start-up would dominate a short job.
A GPU actor builds the same forward pass as a TensorFlow graph on its GPU.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
    shards_per_wave: int = 16

    def __post_init__(self) -> None:
        for name in ("batch_size", "actors", "shards_per_wave"):
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


class Predictor:
    """Ray Data batch predictor: ``__init__`` readies the model once per actor, ``__call__``
    maps a batch of rows (id, pixels, source, shard, error) to prediction rows."""

    def __init__(self, forward: DenseForward, model_id: str, use_gpu: bool = False):
        self.forward = forward
        self.model_id = model_id
        self._gpu = _gpu_forward(forward) if use_gpu else None

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        """Predict every row whose ``error`` is empty; rows with an error keep nulls."""
        errors = np.asarray(batch["error"], dtype=object)
        ok = errors == ""
        probabilities = np.zeros((len(errors), 10), np.float32)
        if ok.any():
            probabilities[ok] = self.probabilities(np.asarray(batch["pixels"])[ok])
        labels = probabilities.argmax(axis=1).astype(np.int32)
        picked = probabilities[np.arange(len(labels)), labels]
        return pa.table({
            "id": pa.array(batch["id"], pa.string()),
            "predicted_label": pa.array(labels, mask=~ok),
            "probability": pa.array(picked, mask=~ok),
            "probabilities": pa.FixedSizeListArray.from_arrays(
                pa.array(probabilities.reshape(-1)), 10, mask=pa.array(~ok)),
            "model_id": pa.array(np.full(len(labels), self.model_id, dtype=object), pa.string()),
            "source": pa.array(batch["source"], pa.string()),
            "shard": pa.array(batch["shard"], pa.string()),
            "error": pa.array(np.where(ok, None, errors), pa.string()),
        })

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Softmax rows for uint8 pixels (n, input_dim), scaled to [0, 1] as in training."""
        if self._gpu is not None:
            return self._gpu(pixels).numpy()
        return self.forward.probabilities(pixels.astype(np.float32) * _SCALE)


def model_id(model_bytes: bytes) -> str:
    """A content hash of the model file: the same file always gets the same id."""
    return hashlib.sha256(model_bytes).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class ScorePlan:
    """What a scoring run will do, worked out before Ray is needed: the model, its image
    side, every input shard and the ones the manifest says are still pending."""

    config: ScoreConfig
    forward: DenseForward
    model_id: str
    side: int
    shards: list[Shard]
    pending: list[tuple[Shard, str]]
    manifest: Manifest


def plan(config: ScoreConfig) -> ScorePlan:
    """Load the model (safe mode), find the shards and compare them with the manifest."""
    shards = discover(config.input)
    forward = DenseForward.from_model(load_model(config.model))
    manifest = Manifest(config.out)
    return ScorePlan(config, forward, model_id(storage.read_bytes(config.model)),
                     _side(forward, config.model), shards, manifest.pending(shards), manifest)


def execute(work: ScorePlan, on_wave=None) -> ScoreSummary:
    """Score the plan's pending shards in waves on the connected Ray; return the summary."""
    size = work.config.shards_per_wave
    waves = math.ceil(len(work.pending) / size)
    images = failed = 0
    for number, start in enumerate(range(0, len(work.pending), size), start=1):
        wave = work.pending[start:start + size]
        scored, rejected = _run_wave(work, wave)
        images, failed = images + scored, failed + rejected
        if on_wave is not None:
            on_wave(number, waves, len(wave), scored, rejected)
    return ScoreSummary(len(work.shards), len(work.pending), images, failed, work.model_id)


def _side(forward: DenseForward, model_path: str) -> int:
    side = math.isqrt(forward.input_dim)
    if side * side != forward.input_dim:
        raise ConfigError(f"{model_path}: model input of {forward.input_dim} features is not a "
                          "square image")
    return side


def _run_wave(work: ScorePlan, wave: list[tuple[Shard, str]]) -> tuple[int, int]:
    staging = storage.join(work.config.out, "_staging")
    storage.delete_folder(staging)
    _pipeline(work, [shard for shard, _ in wave]).write_parquet(staging, partition_cols=["shard"])
    scored = rejected = 0
    for shard, digest in wave:
        rows, failures = _commit(work, staging, shard, digest)
        scored, rejected = scored + rows, rejected + failures
    storage.delete_folder(staging)
    return scored, rejected


def _pipeline(work: ScorePlan, shards: list[Shard]):
    import ray

    config = work.config
    items = [{"path": s.path, "kind": s.kind, "root": s.root, "size": s.size,
              "mtime_ns": s.mtime_ns} for s in shards]
    actor_resources = {"num_gpus": config.num_gpus} if config.num_gpus else {"num_cpus": 1}
    return (
        ray.data.from_items(items, override_num_blocks=len(items))
        .map_batches(_read_shards, batch_size=1, fn_kwargs={"side": work.side})
        .map_batches(
            Predictor, batch_size=config.batch_size,
            compute=ray.data.ActorPoolStrategy(size=config.actors),
            fn_constructor_kwargs={"forward": work.forward, "model_id": work.model_id,
                                   "use_gpu": config.num_gpus > 0},
            **actor_resources,
        )
    )


def _read_shards(batch: dict[str, np.ndarray], side: int) -> dict[str, np.ndarray]:
    """Ray Data task: read the shard(s) named in ``batch`` into image rows."""
    parts = []
    for index in range(len(batch["path"])):
        shard = Shard(str(batch["path"][index]), str(batch["kind"][index]),
                      str(batch["root"][index]), int(batch["size"][index]),
                      int(batch["mtime_ns"][index]))
        rows = read_shard(shard, side)
        rows["shard"] = np.full(len(rows["id"]), shard.key, dtype=object)
        parts.append(rows)
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _commit(work: ScorePlan, staging: str, shard: Shard, digest: str) -> tuple[int, int]:
    table = storage.read_folder(storage.join(staging, f"shard={shard.key}"))
    table = table if table is not None else PREDICTIONS_SCHEMA.empty_table().append_column(
        "error", pa.array([], pa.string()))
    failed_mask = table.column("error").is_valid()
    predictions = table.filter(pc.invert(failed_mask)).select(PREDICTIONS_SCHEMA.names)
    failures = table.filter(failed_mask).select(["source", "id", "error"]).to_pylist()
    output = storage.join(work.config.out, "predictions", f"shard={shard.key}",
                          "part-0.parquet")
    storage.write_table(output, predictions.cast(PREDICTIONS_SCHEMA))
    work.manifest.commit(shard, digest, output, predictions.num_rows,
                         [{"source": row["source"], "shard": shard.key, "id": row["id"],
                           "reason": row["error"]} for row in failures], work.model_id)
    return predictions.num_rows, len(failures)


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
        activations = tf.cast(pixels, tf.float32) * _SCALE
        for kernel, bias, activation in layers:
            activations = activation(tf.matmul(activations, kernel) + bias)
        return activations

    return run
