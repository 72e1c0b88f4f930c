"""Batch scoring on Ray actors: shards in, one prediction row per image out, exactly once.

``check_inputs`` refuses, in about a second and before the output folder is touched, what
cannot work: a missing model or input, a model archive whose members are too large, shards
whose images have another size than the model takes. ``make_plan``, under the output folder's
lock, works out what a run will do: the model (loaded once, with ``safe_mode=True``, from a
file, a sweep folder or a ``latest`` pointer, local or a URI) and the shards the manifest says
are pending — new, changed, scored by another model, or (asked for) with rejected rows.
``check_resources`` refuses GPU or CPU requests the Ray cluster cannot meet before any actor
starts. ``execute`` hands the pending shards to a pool of ``ShardScorer`` actors (``--actors``
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
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pyarrow import ArrowException

from mnist_core import storage
from mnist_core.errors import ConfigError, OutputError
from mnist_core.keras_archive import check_archive
from mnist_core.model_ref import resolve_model
from mnist_core.prediction import DenseForward
from mnist_core.scoring.config import ScoreConfig
from mnist_core.scoring.manifest import FolderState, IdClaims, Manifest
from mnist_core.scoring.scorer import STAGING, ShardResult, ShardScorer
from mnist_core.scoring.shards import Shard, discover, image_sizes
from mnist_core.session import task_error_cause

ShardCallback = Callable[[Shard, int, int], None]


@dataclass(frozen=True)
class ScoreSummary:
    """What a scoring run did, what the output folder holds from its model for the input's
    shards (``held``), and which models the folder held before and after."""

    shards: int
    scored_shards: int
    images: int
    failed_rows: int
    model_id: str
    held: FolderState
    models_before: dict[str, int]
    models_after: dict[str, int]


@dataclass(frozen=True, eq=False)
class ScoreInputs:
    """A run's inputs, checked: the model file and its bytes, the image side it takes, and
    every input shard."""

    model: str
    model_bytes: bytes
    side: int
    shards: list[Shard]

    @property
    def model_id(self) -> str:
        """A content hash of the model file: the same file always gets the same id."""
        return hashlib.sha256(self.model_bytes).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class ScorePlan:
    """What a scoring run will do: its checked inputs, the model as numpy weights, the shards
    still pending for this model, and the ids other shards' predictions hold."""

    config: ScoreConfig
    inputs: ScoreInputs
    forward: DenseForward
    pending: list[Shard]
    manifest: Manifest
    models_before: Counter
    claims: IdClaims


def check_inputs(config: ScoreConfig) -> ScoreInputs:
    """Find the model and the shards and check that every shard's images have the size the
    model takes, reading no more than headers and first rows (Keras is not imported)."""
    model = resolve_model(config.model)
    model_bytes = storage.read_bytes(model)
    input_dim = check_archive(model_bytes, model).input_dim
    side = _side(input_dim, model)
    shards = discover(config.input)
    for shard in shards:
        sizes = image_sizes(shard)
        if sizes and input_dim not in sizes:
            raise ConfigError(f"{shard.path}: its images have {_pixels(min(sizes))} but the "
                              f"model {model} takes {_pixels(input_dim)}: score them with a "
                              "model trained on images of their size", key="input")
    return ScoreInputs(model, model_bytes, side, shards)


def make_plan(config: ScoreConfig, inputs: ScoreInputs) -> ScorePlan:
    """Read the model (``DenseForward.from_archive``), clear what a crashed run left
    uncommitted, and compare the shards with the manifest. Call it holding the output
    folder's lock."""
    forward = DenseForward.from_archive(inputs.model_bytes, inputs.model)
    manifest = Manifest(config.out)
    manifest.recover()
    pending = manifest.pending(inputs.shards, inputs.model_id, config.retry_failed)
    return ScorePlan(config, inputs, forward, pending, manifest, manifest.models(),
                     manifest.claims(pending))


def check_resources(config: ScoreConfig, cluster_can_grow: bool) -> None:
    """Refuse an actor the connected Ray cluster has no room for (a GPU it lacks, say); on a
    cluster whose autoscaler can add nodes, warn and wait for them instead."""
    import ray

    available = ray.cluster_resources()
    kind, asked = ("GPU", config.num_gpus) if config.num_gpus else ("CPU", 1.0)
    if available.get(kind, 0) >= asked:
        return
    message = (f"each scoring actor asks for {asked:g} {kind} and the cluster has "
               f"{available.get(kind, 0):g}")
    if not cluster_can_grow:
        raise ConfigError(f"{message}: lower --num-gpus, or score on a cluster that has them",
                          key="num_gpus")
    warnings.warn(f"{message}: the actors wait until the autoscaler adds nodes", stacklevel=2)


def execute(plan: ScorePlan, on_shard: ShardCallback | None = None) -> ScoreSummary:
    """Score the plan's pending shards on the connected Ray, committing each as it lands."""
    images = failed = 0
    inputs = plan.inputs
    for shard, result in _score_on_actors(plan):
        result = plan.claims.settle(result)
        plan.manifest.commit(shard, result, inputs.model_id, inputs.model)
        images, failed = images + result.rows, failed + len(result.rejected)
        if on_shard is not None:
            on_shard(shard, result.rows, len(result.rejected))
    storage.remove_empty_folders(storage.join(plan.config.out, STAGING))
    return ScoreSummary(len(inputs.shards), len(plan.pending), images, failed, inputs.model_id,
                        plan.manifest.held(inputs.shards, inputs.model_id),
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
        return actor_class.remote(forward, plan.inputs.model_id, plan.inputs.side,
                                  config.batch_size, config.out, use_gpu=config.num_gpus > 0)

    return start


def _result(ref, shard: Shard, out: str) -> ShardResult:
    """The actor's result for ``shard``; a failed write is one ``OutputError`` line."""
    import ray
    from ray.exceptions import RayTaskError


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


def _side(input_dim: int, model: str) -> int:
    side = math.isqrt(input_dim)
    if side * side != input_dim:
        raise ConfigError(f"{model}: model input of {input_dim} features is not a square image",
                          key="model")
    return side


def _pixels(count: int) -> str:
    side = math.isqrt(count)
    return f"{count} pixels ({side}x{side})" if side * side == count else f"{count} pixels"
