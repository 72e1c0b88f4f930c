"""A scoring job's configuration, built once at the edge from flags."""

from __future__ import annotations

from dataclasses import dataclass

from mnist_core.errors import ConfigError


@dataclass(frozen=True)
class ScoreConfig:
    """A scoring job: model (file, sweep folder or ``latest`` pointer), inputs, output folder,
    the actor pool's knobs, and whether to wait for another run that holds the output folder."""

    model: str
    input: str
    out: str
    batch_size: int = 8192
    actors: int = 1
    num_gpus: float = 0.0
    wait: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "actors"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.num_gpus < 0:
            raise ConfigError(f"num_gpus must be >= 0, got {self.num_gpus}")
