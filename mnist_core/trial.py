"""One trial: train a model from a config on the given data and measure it.

A trial is a pure function of (config, data) returning a ``TrialResult``: it prints nothing and
writes nothing the caller can see. The trained model travels back as the bytes of a ``.keras``
file so that a Ray task can return it and the driver decides whether to keep it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from mnist_core.config import TrialConfig
from mnist_core.data import Splits
from mnist_core.evaluation import Evaluation, evaluate
from mnist_core.training import EpochCallback, train


@dataclass(frozen=True, eq=False)
class TrialResult:
    """Everything a trial produced: config, size, history, test metrics and the model file."""

    config: TrialConfig
    params: int
    history: dict[str, list[float]]
    evaluation: Evaluation
    train_seconds: float
    model_bytes: bytes

    @property
    def val_accuracy(self) -> float | None:
        """Validation accuracy after the last epoch, or None without a validation split."""
        return self.history.get("val_accuracy", [None])[-1]

    @property
    def val_loss(self) -> float | None:
        """Validation loss after the last epoch, or None without a validation split."""
        return self.history.get("val_loss", [None])[-1]


def run_trial(config: TrialConfig, splits: Splits,
              on_epoch: EpochCallback | None = None) -> TrialResult:
    """Train per ``config`` on ``splits``, evaluate on the test set, return the result."""
    fit = train(config, splits, on_epoch)
    evaluation = evaluate(fit.model, splits.x_test, splits.y_test)
    return TrialResult(
        config=config,
        params=int(fit.model.count_params()),
        history=fit.history,
        evaluation=evaluation,
        train_seconds=fit.seconds,
        model_bytes=model_to_bytes(fit.model),
    )


def model_to_bytes(model) -> bytes:
    """Serialise a Keras model to the bytes of a ``.keras`` file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.read_bytes()
