"""Batch scoring on Ray Data: shards in, one prediction row per image out, exactly once.

``plan`` works out, before Ray is needed, what a run will do: the model (loaded once, with
``safe_mode=True``, from a file, a sweep folder or a ``latest`` pointer, local or a URI), every
input shard, and the ones the manifest says are pending — new, changed, or scored by another
model. ``execute`` maps the pending shards through a Ray Data pipeline, ``from_items`` (one
block per shard) → ``map_batches(ShardScorer)`` on an actor pool (``ActorPoolStrategy``,
``num_gpus`` per actor), and commits each shard to ``manifest.parquet`` the moment its result
arrives. A crash costs only the shards in flight: they are missing from the manifest (or still
bound to the old model), the rerun scores them again, and their output is replaced whole.

Why not ``Dataset.write_parquet``: it writes per block, with no point at which one shard's
output is known complete, and re-grouping rows by shard (``partition_cols``) cost more than the
prediction itself (see docs/benchmarks.md).

The driver ships the model's weights (numpy) to the actors: a CPU actor never imports
TensorFlow, whose start-up would dominate a short job. A GPU actor runs the same forward pass
as a TensorFlow graph on its GPU.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from mnist_core import storage
from mnist_core.errors import ConfigError
from mnist_core.manifest import Manifest
from mnist_core.model_ref import resolve_model
from mnist_core.prediction import DenseForward, load_model_bytes
from mnist_core.score_config import ScoreConfig
from mnist_core.shard_scorer import ShardScorer, shard_items
from mnist_core.shards import Shard, discover

ShardCallback = Callable[[Shard, int, int], None]


@dataclass(frozen=True)
class ScoreSummary:
    """What a scoring run did, and which models the output folder held before and after."""

    shards: int
    scored_shards: int
    images: int
    failed_rows: int
    model_id: str
    models_before: dict[str, int]
    models_after: dict[str, int]


@dataclass(frozen=True, eq=False)
class ScorePlan:
    """What a scoring run will do: the model, its image side, every input shard and the ones
    that are still pending for this model."""

    config: ScoreConfig
    model: str
    forward: DenseForward
    model_id: str
    side: int
    shards: list[Shard]
    pending: list[Shard]
    manifest: Manifest
    models_before: Counter


def model_id(model_bytes: bytes) -> str:
    """A content hash of the model file: the same file always gets the same id."""
    return hashlib.sha256(model_bytes).hexdigest()[:16]


def plan(config: ScoreConfig) -> ScorePlan:
    """Load the model (safe mode), find the shards and compare them with the manifest."""
    model = resolve_model(config.model)
    model_bytes = storage.read_bytes(model)
    forward = DenseForward.from_model(load_model_bytes(model_bytes, model))
    shards = discover(config.input)
    manifest = Manifest(config.out)
    identity = model_id(model_bytes)
    return ScorePlan(config, model, forward, identity, _side(forward, model), shards,
                     manifest.pending(shards, identity), manifest, manifest.models())


def execute(work: ScorePlan, on_shard: ShardCallback | None = None) -> ScoreSummary:
    """Score the plan's pending shards on the connected Ray, committing each as it lands."""
    images = failed = 0
    if work.pending:
        by_path = {shard.path: shard for shard in work.pending}
        for batch in _pipeline(work).iter_batches(batch_size=1, batch_format="numpy"):
            summary = {key: value[0] for key, value in batch.items()}
            failures = json.loads(summary["failures"])
            shard = by_path[summary["path"]]
            work.manifest.commit(shard, summary["content_hash"], summary["output"],
                                 int(summary["rows"]), _failure_rows(shard, failures),
                                 work.model_id, work.model)
            images, failed = images + int(summary["rows"]), failed + len(failures)
            if on_shard is not None:
                on_shard(shard, int(summary["rows"]), len(failures))
    return ScoreSummary(len(work.shards), len(work.pending), images, failed, work.model_id,
                        dict(work.models_before), dict(work.manifest.models()))


def _pipeline(work: ScorePlan):
    import ray

    config = work.config
    items = shard_items(work.pending)
    resources = {"num_gpus": config.num_gpus} if config.num_gpus else {"num_cpus": 1}
    return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        ShardScorer, batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=min(config.actors, len(items))),
        fn_constructor_kwargs={"forward": work.forward, "model_id": work.model_id,
                               "side": work.side, "batch_size": config.batch_size,
                               "out": config.out, "use_gpu": config.num_gpus > 0},
        **resources,
    )


def _failure_rows(shard: Shard, failures: list[dict]) -> list[dict]:
    return [{"source": shard.path, "shard": shard.key, "id": failure["id"],
             "reason": failure["reason"]} for failure in failures]


def _side(forward: DenseForward, model: str) -> int:
    side = math.isqrt(forward.input_dim)
    if side * side != forward.input_dim:
        raise ConfigError(f"{model}: model input of {forward.input_dim} features is not a "
                          "square image")
    return side
