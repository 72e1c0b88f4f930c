"""Train one trial of the tutorial's dense model and write its reports.

    python -m jobs.train --dataset digits --epochs 30 --out runs/train
    python -m jobs.train --dataset mnist --data-path mnist.npz --learning-rate 0.5 --epochs 30
    python -m jobs.train --dataset fashion_mnist --learning-rate 0.3 --momentum 0.9 --l2 1e-4 \
        --schedule cosine --epochs 40 --validation-split 0.1 --restore-best

Prints the model summary, one line per epoch, and last ``test_accuracy=… test_loss=…``.
Writes model.keras, metrics/epochs/confusion/per_class Parquet files and report.html to --out.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jobs._cli import EXIT_PARTIAL, Parser, flag, int_list, run, summary
from mnist_core import reports, storage
from mnist_core.config import (
    DATASETS,
    DataConfig,
    ModelConfig,
    TrialConfig,
    hyperparameter_fields,
    hyperparameter_text,
)
from mnist_core.errors import ConfigError


def build_parser() -> Parser:
    """The job's flags (also the source of docs/reference.md)."""
    parser = Parser(prog="jobs.train", description=summary(__doc__))
    parser.add_argument("--dataset", choices=DATASETS, default="digits",
                        help="the data set to train on")
    parser.add_argument("--data-path", default="",
                        help="a Keras .npz or a folder of IDX files (mnist, fashion_mnist)")
    parser.add_argument("--validation-split", type=float, default=0.0,
                        help="fraction of the training set held out (seeded, stratified)")
    for item in hyperparameter_fields():
        _add_hyperparameter(parser, item)
    parser.add_argument("--out", default="runs/train", help="report folder or URI")
    return parser


def parse_args(argv: Sequence[str] | None):
    """Parse the job's flags: the data's, then one per hyperparameter (``TrialConfig``)."""
    return build_parser().parse_args(argv)


def _add_hyperparameter(parser: Parser, item) -> None:
    """One flag for a hyperparameter field: its type, default, choices and help."""
    default, help_text = item.default, item.metadata["help"]
    if isinstance(default, bool):
        parser.add_argument(flag(item.name), action="store_true", help=help_text)
    elif isinstance(default, tuple):
        parser.add_argument(flag(item.name), type=int_list, default=default,
                            help=f"{help_text} (comma-separated)")
    else:
        parser.add_argument(flag(item.name), type=type(default), default=default,
                            choices=item.metadata["choices"], help=help_text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; returns the process exit code."""
    args = parse_args(argv)
    data_config = DataConfig(dataset=args.dataset, data_path=args.data_path,
                             validation_split=args.validation_split, seed=args.seed)
    values = {item.name: getattr(args, item.name) for item in hyperparameter_fields()}
    model = ModelConfig(**{key: values.pop(key) for key in ("hidden_units", "activation")})
    trial_config = TrialConfig(model=model, **values)
    if trial_config.needs_validation and data_config.validation_split <= 0:
        raise ConfigError("--restore-best and --patience choose an epoch on validation "
                          "accuracy: they need --validation-split > 0")
    from mnist_core import console, devices
    from mnist_core.data import load_dataset
    from mnist_core.model import build_model
    from mnist_core.trial import TrialFailure, run_trial

    storage.check_writable(args.out)
    print(f"training hidden_units {hyperparameter_text(trial_config.model.hidden_units)} "
          f"({trial_config.model.activation}) on {data_config.dataset}, "
          f"{trial_config.epochs} epoch(s); loading the data and TensorFlow",
          flush=True)  # a first line at once
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
