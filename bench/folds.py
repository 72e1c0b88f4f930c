"""Benchmark: cross-validation's packs, a pack per fold against packs that span the folds.

    .venv/bin/python bench/folds.py [--finalists 6] [--folds 5] [--slots 2] [--epochs 4]

Scores ``--finalists`` settings of the tutorial network (784-10-10 sigmoid, SGD with Nesterov
momentum, L2 and cosine decay, best epoch kept: the shipped Fashion-MNIST search's) on every
one of ``--folds`` folds of training + validation data, on ONE CPU thread, as a sweep with
``--slots`` worker slots packs them:
- per fold (before): each fold's finalists split over the slots, ``ceil(finalists / slots)``
  members a pack, ``folds x slots`` packs;
- per fold, one pack each: ``folds`` packs of ``finalists`` members;
- spanning the folds (now, ``packs.fold_packs``): ``slots`` packs, each holding its share
  of the finalists once per fold.
Prints each way's seconds per epoch of all its members (steady state: the time of
``--epochs`` + 1 epochs less that of 1, so tracing is left out) and the ratios, and checks
that both ways give every member the same validation accuracy. Fashion-MNIST from Debian's
package when installed, else the embedded digits.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from mnist_core.config import DataConfig, ModelConfig, TrialConfig  # noqa: E402
from mnist_core.data import DEBIAN_FASHION, load_dataset  # noqa: E402
from mnist_core.packed_training import train_pack  # noqa: E402
from mnist_core.sweep.refit import Fold, FoldGroups, fold_sizes, view_data  # noqa: E402


def main() -> None:
    args = _parse()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    dataset = "fashion_mnist" if Path(DEBIAN_FASHION).is_dir() else "digits"
    splits = load_dataset(DataConfig(dataset=dataset, validation_split=0.1))
    sizes = fold_sizes(splits, args.folds, 0)
    folds = [index for index in range(args.folds) if sizes[index] == sizes[0]]
    configs = [TrialConfig(model=ModelConfig((10,), "sigmoid"), learning_rate=float(rate),
                           batch_size=100, epochs=81, momentum=0.9, nesterov=True, l2=5e-5,
                           schedule="cosine", restore_best=True)
               for rate in np.geomspace(0.05, 0.3, args.finalists)]
    print(f"{args.finalists} finalists x {len(folds)} folds of {dataset} "
          f"({len(splits.y_train) + len(splits.y_val) - sizes[0]:,} training images each), "
          f"{args.slots} slots, one CPU thread, seconds per epoch of all members:")
    per_slot = math.ceil(args.finalists / args.slots)
    ways = {
        f"per fold, {per_slot} a pack ({len(folds) * math.ceil(args.finalists / per_slot)} "
        "packs, before)": [(chunk, Fold(index, args.folds, 0)) for index in folds
                           for chunk in _chunks(configs, per_slot)],
        f"per fold, {args.finalists} a pack ({len(folds)} packs)":
            [(configs, Fold(index, args.folds, 0)) for index in folds],
        f"spanning the folds ({args.slots} packs of "
        f"{per_slot * len(folds)}, now)": [(chunk * len(folds),
                                            FoldGroups(tuple(folds), args.folds, 0))
                                           for chunk in _chunks(configs, per_slot)],
    }
    seconds, scores = {}, {}
    for name, packs in ways.items():
        seconds[name], scores[name] = _time(packs, splits, args.epochs)
        print(f"  {name:<44} {seconds[name]:7.2f} s", flush=True)
    before, *_, now = ways
    print(f"ratio before / spanning the folds            {seconds[before] / seconds[now]:7.2f}x")
    differs = max(float(np.abs(scores[before] - scores[name]).max()) for name in ways)
    print(f"largest difference of a member's validation accuracy between the ways: {differs:.6f}"
          f" (one image of {sizes[0]:,}: {1 / sizes[0]:.6f})")


def _chunks(configs: list, size: int) -> list[list]:
    count = math.ceil(len(configs) / size)
    return [configs[index::count] for index in range(count)]


def _time(packs: list, splits, epochs: int) -> tuple[float, np.ndarray]:
    """Seconds per epoch of every pack in ``packs`` (``(configs, view)``), and each member's
    validation accuracies by (fold, finalist learning rate), sorted."""
    elapsed, scores = 0.0, []
    for configs, view in packs:
        data, groups = view_data(view, splits)
        for budget in (1, epochs + 1):
            started = time.perf_counter()
            fit = train_pack(configs, data, [budget] * len(configs), groups=groups)
            elapsed += (time.perf_counter() - started) * (1 if budget > 1 else -1)
        member_folds = (view.member_folds(len(configs)) if isinstance(view, FoldGroups)
                        else [view] * len(configs))
        scores += [(fold.index, config.learning_rate, *member.history["val_accuracy"])
                   for fold, config, member in zip(member_folds, configs, fit.members)]
    return elapsed / epochs, np.array(sorted(scores))


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finalists", type=int, default=6)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    return parser.parse_args()


if __name__ == "__main__":
    main()
