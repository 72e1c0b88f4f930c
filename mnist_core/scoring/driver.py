"""Batch scoring on Ray actors: shards in, one prediction row per image out, exactly once.

``make_plan`` works out, before Ray is needed, what a run will do: the model (loaded once, with
``safe_mode=True``, from a file, a sweep folder or a ``latest`` pointer, local or a URI), every
input shard, and the ones the manifest says are pending — new, changed, or scored by another
model. ``execute`` hands the pending shards to a pool of ``ShardScorer`` actors (``--actors``
of them, ``num_gpus`` each), one shard per actor at a time, gathers results with ``ray.wait``
and commits each shard to ``manifest.parquet`` the moment it lands. A crash costs only the
shards in flight: they are missing from the manifest (or still bound to the old model), the
rerun scores them again, and their output is replaced whole. An actor whose process dies is
replaced by the driver and its shard scored again, up to ``max_retries`` times per shard
(the write is atomic, so a retry is harmless); Ray's own actor restarts stay off, as a
restartable actor with arguments in the object store makes Ray log an error line on the
user's console.

Why plain actors, not Ray Data: a shard is the unit of reading, writing and committing, so the
pipeline is a queue of shards over a pool of actors, which Ray Data ran with about 3 s more
start-up (its executor, and ``ray.data`` imported in every actor) before the first shard
landed: 4.1–4.7 s against 1.3 s (docs/benchmarks.md). ``Dataset.write_parquet`` was tried
before that: it writes per block, with no point at which one shard's output is known complete,
and re-grouping rows by shard (``partition_cols``) cost more than the prediction itself.

The driver ships the model's weights (numpy) to the actors: a CPU actor never imports
TensorFlow, whose start-up would dominate a short job. A GPU actor runs the same forward pass
as a TensorFlow graph on its GPU.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pyarrow import ArrowException

from mnist_core import storage
from mnist_core.errors import ConfigError, OutputError
from mnist_core.model_ref import resolve_model
from mnist_core.prediction import DenseForward, load_model_bytes
from mnist_core.scoring.config import ScoreConfig
from mnist_core.scoring.manifest import IdClaims, Manifest
from mnist_core.scoring.scorer import ShardResult, ShardScorer
from mnist_core.scoring.shards import Shard, discover

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
    """What a scoring run will do: the model, its image side, every input shard, the ones
    that are still pending for this model, and the ids other shards' predictions hold."""

    config: ScoreConfig
    model: str
    forward: DenseForward
    model_id: str
    side: int
    shards: list[Shard]
    pending: list[Shard]
    manifest: Manifest
    models_before: Counter
    claims: IdClaims


def model_id(model_bytes: bytes) -> str:
    """A content hash of the model file: the same file always gets the same id."""
    return hashlib.sha256(model_bytes).hexdigest()[:16]


def make_plan(config: ScoreConfig) -> ScorePlan:
    """Load the model (safe mode), find the shards and compare them with the manifest."""
    model = resolve_model(config.model)
    model_bytes = storage.read_bytes(model)
    forward = DenseForward.from_model(load_model_bytes(model_bytes, model))
    shards = discover(config.input)
    manifest = Manifest(config.out)
    identity = model_id(model_bytes)
    pending = manifest.pending(shards, identity)
    return ScorePlan(config, model, forward, identity, _side(forward, model), shards, pending,
                     manifest, manifest.models(), manifest.claims(pending))


def execute(plan: ScorePlan, on_shard: ShardCallback | None = None) -> ScoreSummary:
    """Score the plan's pending shards on the connected Ray, committing each as it lands."""
    images = failed = 0
    for shard, result in _score_on_actors(plan):
        result = plan.claims.settle(result)
        plan.manifest.commit(shard, result, plan.model_id, plan.model)
        images, failed = images + result.rows, failed + len(result.rejected)
        if on_shard is not None:
            on_shard(shard, result.rows, len(result.rejected))
    return ScoreSummary(len(plan.shards), len(plan.pending), images, failed, plan.model_id,
                        dict(plan.models_before), dict(plan.manifest.models()))


def _score_on_actors(plan: ScorePlan) -> Iterator[tuple[Shard, ShardResult]]:
    """Yield (shard, result) as actors finish shards; each actor has one shard at a time.
    An actor whose process died is replaced and its shard given to the new one, up to
    ``max_retries`` times per shard."""
    import ray
    from ray.exceptions import RayActorError

    if not plan.pending:
        return
    start_actor = _actor_starter(plan)
    queue = list(reversed(plan.pending))
    in_flight = {}
    for _ in range(min(plan.config.actors, len(queue))):
        actor, shard = start_actor(), queue.pop()
        in_flight[actor.score.remote(shard)] = (actor, shard, 1)
    while in_flight:
        done, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)  # signals get in
        if not done:
            continue
        actor, shard, attempt = in_flight.pop(done[0])
        try:
            result = _result(done[0], shard, plan.config.out)
        except RayActorError:
            if attempt > plan.config.max_retries:
                raise
            actor = start_actor()
            in_flight[actor.score.remote(shard)] = (actor, shard, attempt + 1)
            continue
        if queue:
            following = queue.pop()
            in_flight[actor.score.remote(following)] = (actor, following, 1)
        yield shard, result


def _actor_starter(plan: ScorePlan):
    import ray

    config = plan.config
    resources = {"num_gpus": config.num_gpus} if config.num_gpus else {"num_cpus": 1}
    actor_class = ray.remote(ShardScorer).options(**resources)
    forward = ray.put(plan.forward)

    def start():
        return actor_class.remote(forward, plan.model_id, plan.side, config.batch_size,
                                  config.out, use_gpu=config.num_gpus > 0)

    return start


def _result(ref, shard: Shard, out: str) -> ShardResult:
    """The actor's result for ``shard``; a failed write is one ``OutputError`` line."""
    import ray
    from ray.exceptions import RayTaskError

    from mnist_core.session import task_error_cause

    try:
        return ray.get(ref)
    except RayTaskError as error:
        cause = task_error_cause(error)
        if not isinstance(cause, OSError | ArrowException):
            raise
        reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        raise OutputError(f"{out}: writing the predictions of {shard.path} failed "
                          f"({reason}); shards committed so far are kept, rerun to resume",
                          key="out") from None


def _side(forward: DenseForward, model: str) -> int:
    side = math.isqrt(forward.input_dim)
    if side * side != forward.input_dim:
        raise ConfigError(f"{model}: model input of {forward.input_dim} features is not a "
                          "square image")
    return side
