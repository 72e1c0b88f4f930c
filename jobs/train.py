"""Train one trial of the tutorial's dense model and write its reports.

    python -m jobs.train --dataset digits --epochs 30 --out runs/train
    python -m jobs.train --dataset mnist --data-path mnist.npz --learning-rate 0.5 --epochs 30
    python -m jobs.train --dataset fashion_mnist --learning-rate 0.3 --momentum 0.9 --l2 1e-4 \
        --schedule cosine --epochs 40 --validation-split 0.1 --restore-best

Prints the model summary, one line per epoch, and last ``test_accuracy=… test_loss=…``.
Writes model.keras, metrics/epochs/confusion/per_class Parquet files and two PNG plots to --out.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jobs._cli import EXIT_PARTIAL, Parser, build, int_list, run
from mnist_core import reports, storage
from mnist_core.config import (
    ACTIVATIONS,
    DATASETS,
    OPTIMIZERS,
    SCHEDULES,
    DataConfig,
    ModelConfig,
    TrialConfig,
)
from mnist_core.errors import ConfigError


def parse_args(argv: Sequence[str] | None):
    """Parse the job's flags."""
    parser = Parser(prog="jobs.train", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, default="digits")
    parser.add_argument("--data-path", default="", help="Keras .npz or folder of IDX files")
    parser.add_argument("--hidden-units", type=int_list, default=(10,),
                        help="comma-separated widths, e.g. 128,64 (default 10)")
    parser.add_argument("--activation", choices=ACTIVATIONS, default="sigmoid")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    parser.add_argument("--learning-rate", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    parser.add_argument("--nesterov", action="store_true", help="Nesterov momentum (SGD)")
    parser.add_argument("--l2", type=float, default=0.0, help="L2 penalty on the kernels")
    parser.add_argument("--schedule", choices=SCHEDULES, default="constant",
                        help="learning-rate schedule over the epochs")
    parser.add_argument("--decay-rate", type=float, default=0.9,
                        help="per-epoch factor of the exponential schedule")
    parser.add_argument("--restore-best", action="store_true",
                        help="keep the weights of the epoch with the best validation accuracy")
    parser.add_argument("--patience", type=int, default=0,
                        help="stop after this many epochs without a better validation accuracy")
    parser.add_argument("--validation-split", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/train", help="report folder or URI")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; returns the process exit code."""
    args = parse_args(argv)
    data_config = build(DataConfig, dataset=args.dataset, data_path=args.data_path,
                        validation_split=args.validation_split, seed=args.seed)
    trial_config = build(
        TrialConfig, model=build(ModelConfig, hidden_units=args.hidden_units,
                                 activation=args.activation),
        optimizer=args.optimizer, learning_rate=args.learning_rate,
        batch_size=args.batch_size, epochs=args.epochs, seed=args.seed,
        momentum=args.momentum, nesterov=args.nesterov, l2=args.l2, schedule=args.schedule,
        decay_rate=args.decay_rate, restore_best=args.restore_best, patience=args.patience,
    )
    if trial_config.needs_validation and data_config.validation_split <= 0:
        raise ConfigError("--restore-best and --patience choose an epoch on validation "
                          "accuracy: they need --validation-split > 0")
    from mnist_core import console, devices
    from mnist_core.data import load_dataset
    from mnist_core.model import build_model
    from mnist_core.trial import TrialFailure, run_trial

    storage.check_writable(args.out)
    splits = load_dataset(data_config)
    with console.native_output_to(storage.join(args.out, "logs", "train.log")):
        devices.configure()
    print(f"data: {splits.name} from {splits.source}: {len(splits.y_train)} train, "
          f"{len(splits.y_val)} validation, {len(splits.y_test)} test")
    build_model(trial_config.model, splits.input_dim, splits.pixel_max).summary()
    result = run_trial(trial_config, splits, on_epoch=_print_epoch(trial_config.epochs))
    if isinstance(result, TrialFailure):
        print(f"error: training failed: {result.error}", file=sys.stderr)
        return EXIT_PARTIAL
    reports.write_trial_reports(args.out, "train", result, data_config)
    print(f"reports: {args.out}")
    if result.best_epoch != len(result.history["loss"]):
        print(f"kept the weights of epoch {result.best_epoch} (best validation accuracy "
              f"{result.val_accuracy:.4f})")
    print(f"test_accuracy={result.evaluation.accuracy:.4f} test_loss={result.evaluation.loss:.4f}")
    return 0


def _print_epoch(epochs: int):
    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        values = " ".join(f"{key}={value:.4f}" for key, value in metrics.items())
        print(f"epoch {epoch}/{epochs} {values}", flush=True)

    return on_epoch


if __name__ == "__main__":
    sys.exit(run(main))
