"""``make score``: score a bundled demo image set with the latest sweep's best model.

    python -m jobs.score_demo [--runs runs] [--images data/demo_images] [--out scores/demo]

The demo set is 20,000 of scikit-learn's digits tiled into four Parquet shards (written on
first use). The model is the newest ``<runs>/*/best/model.keras`` from a digits sweep; with
none, a model is trained once into ``<runs>/score-model/``. Run it twice: the second run finds
every shard in the manifest and scores nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from jobs import score
from jobs._cli import Parser, run

DEMO_COUNT, DEMO_SHARD_SIZE = 20_000, 5_000


def parse_args(argv: Sequence[str] | None):
    """Parse the job's flags."""
    parser = Parser(prog="jobs.score_demo", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="runs", help="where sweeps put their reports")
    parser.add_argument("--images", default="data/demo_images")
    parser.add_argument("--out", default="scores/demo")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; returns the process exit code."""
    args = parse_args(argv)
    images = Path(args.images)
    if not any(images.glob("*.parquet")):
        from jobs.make_images import base_images, write_shards

        pixels, labels = base_images("digits")
        write_shards(str(images), "digits", pixels, labels, DEMO_COUNT, DEMO_SHARD_SIZE)
        print(f"demo images: wrote {DEMO_COUNT} digits in {images}")
    model = latest_digits_model(Path(args.runs)) or train_model(Path(args.runs) / "score-model")
    print(f"model: {model}")
    return score.main(["--model", str(model), "--input", str(images / "*.parquet"),
                       "--out", args.out])


def latest_digits_model(runs: Path) -> Path | None:
    """The newest best model of a sweep on digits under ``runs``, if any."""
    candidates = []
    for summary in runs.glob("*/best/best.json"):
        model = summary.parent / "model.keras"
        sweep_toml = summary.parent.parent / "sweep.toml"
        if model.is_file() and sweep_toml.is_file() and '"digits"' in sweep_toml.read_text():
            candidates.append((model.stat().st_mtime, model))
    return max(candidates)[1] if candidates else None


def train_model(folder: Path) -> Path:
    """Train the tutorial's model on digits once, and return its path."""
    model = folder / "model.keras"
    if not model.is_file():
        from jobs import train

        train.main(["--dataset", "digits", "--epochs", "30", "--out", str(folder)])
    return model


if __name__ == "__main__":
    sys.exit(run(main))
