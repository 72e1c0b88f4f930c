"""A scoring job's configuration, built once at the edge from flags."""

from __future__ import annotations

from dataclasses import dataclass

from mnist_core.config import check_int, check_range, check_type


@dataclass(frozen=True)
class ScoreConfig:
    """A scoring job: model (file, sweep folder or ``latest`` pointer), inputs, output folder,
    the actor pool's knobs, how often a shard whose actor died is given to a new actor,
    whether to wait for another run that holds the output folder, and whether to score again
    the shards whose rows this model rejected."""

    model: str
    input: str
    out: str
    batch_size: int = 8192
    actors: int = 1
    num_gpus: float = 0.0
    max_retries: int = 2
    wait: bool = False
    retry_failed: bool = False

    def __post_init__(self) -> None:
        for name in ("model", "input", "out"):
            check_type(name, getattr(self, name), str)
        check_int("batch_size", self.batch_size, 1)
        check_int("actors", self.actors, 1)
        check_range("num_gpus", self.num_gpus, 0.0, None)
        check_int("max_retries", self.max_retries, 0)
