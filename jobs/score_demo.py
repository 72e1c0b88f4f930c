"""``make score``: score a bundled demo image set with the latest digits sweep's best model.

    python -m jobs.score_demo [--runs runs] [--images data/demo_images] [--out scores/demo]

The demo set is scikit-learn's digits' 360 test images (held out from every model trained on
digits) tiled to 20,000 images in four Parquet shards (written on first use), so the accuracy
its page reports is a test accuracy. The model is the best model of the newest completed
sweep in ``--runs`` (``<runs>/latest``) when that sweep is on digits; otherwise a model is
trained once into ``<runs>/score-model/``. Run it twice: the second run finds every shard
already scored by that model and scores nothing.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from jobs._cli import Parser, run, summary
from jobs.score import score
from mnist_core.scoring.config import ScoreConfig

DEMO_COUNT, DEMO_SHARD_SIZE = 20_000, 5_000


def build_parser() -> Parser:
    """The job's flags (also the source of docs/reference.md)."""
    parser = Parser(prog="jobs.score_demo", description=summary(__doc__))
    parser.add_argument("--runs", default="runs", help="where sweeps put their reports")
    parser.add_argument("--images", default="data/demo_images",
                        help="the demo image set (written on first use)")
    parser.add_argument("--out", default="scores/demo", help="the scoring output folder")
    return parser


def parse_args(argv: Sequence[str] | None):
    """Parse the job's flags."""
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; returns the process exit code."""
    args = parse_args(argv)
    images = Path(args.images)
    if not any(images.glob("*.parquet")):
        from mnist_core.data import held_out_images
        from mnist_core.scoring.shards import write_shards

        pixels, labels = held_out_images("digits")
        write_shards(str(images), "digits", pixels, labels, DEMO_COUNT, DEMO_SHARD_SIZE)
        print(f"demo images: wrote {DEMO_COUNT} digits in {images}")
    runs = Path(args.runs)
    model = latest_digits_model(str(runs)) or train_model(runs / "score-model")
    rerun = shlex.join([sys.executable, "-m", "jobs.score_demo",
                        *(sys.argv[1:] if argv is None else argv)])
    config = ScoreConfig(model=str(model), input=str(images / "*.parquet"), out=args.out)
    return score(config, rerun)


def latest_digits_model(runs: str) -> str | None:
    """The best model of the sweep ``<runs>/latest`` names, when that sweep is on digits."""
    from mnist_core import storage
    from mnist_core.model_ref import LATEST, resolve_model
    from mnist_core.sweep.config import parse_sweep_config

    pointer = storage.join(runs, LATEST)
    if not storage.exists(pointer):
        return None
    model = resolve_model(pointer)  # <runs>/<sweep_id>/best/model.keras
    sweep = storage.parent(storage.parent(model))
    config = parse_sweep_config(storage.read_bytes(storage.join(sweep, "sweep.toml")).decode())
    return model if config.data.dataset == "digits" else None


def train_model(folder: Path) -> Path:
    """Train the tutorial's model on digits once into ``folder``; return the model's path."""
    model = folder / "model.keras"
    if not model.is_file():
        from mnist_core import devices, reports
        from mnist_core.config import DataConfig, TrialConfig
        from mnist_core.data import load_dataset
        from mnist_core.trial import TrialFailure, run_trial

        data_config = DataConfig(dataset="digits")
        devices.configure()
        print(f"no digits sweep in {folder.parent}: training one model into {folder}")
        result = run_trial(TrialConfig(epochs=30), load_dataset(data_config))
        assert not isinstance(result, TrialFailure), result.error  # the tutorial converges
        reports.write_trial_reports(str(folder), "train", result, data_config)
    return model


if __name__ == "__main__":
    sys.exit(run(main))
