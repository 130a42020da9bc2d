"""Command line: `python -m training train --model cnn --data-dir DIR --model-root models ...`.

Exit codes: 0 published, 2 bad arguments or unusable data (one line on stderr, no traceback),
130 interrupted; an unexpected failure shows its traceback and exits 1. Nothing is published
unless the run completes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from training.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    PRECISIONS,
    TrainConfig,
    load_run_data,
)
from training.data import DatasetError

MODEL_CHOICES = ("cnn",)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a model and publish it as the next version")
    train.add_argument("--model", choices=MODEL_CHOICES, default="cnn", help="model builder")
    train.add_argument(
        "--data-dir",
        type=Path,
        help="CIFAR-10 python-layout directory (default: $CIFAR10_DIR, then the shared copy)",
    )
    train.add_argument(
        "--model-root",
        type=Path,
        default=Path(os.environ.get("MODEL_ROOT") or "models"),
        help="model repository root; versions go to ROOT/NAME/N (default: $MODEL_ROOT or models)",
    )
    train.add_argument("--model-name", help="name in the repository (default: the --model value)")
    train.add_argument(
        "--quick", action="store_true", help="a few thousand images, one epoch: a first real model"
    )
    train.add_argument(
        "--epochs", type=_positive_int, help=f"epochs (default: {DEFAULT_EPOCHS}, 1 with --quick)"
    )
    train.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--width", type=_positive_int, help="model width (channels of the stem)")
    train.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="training precision; auto uses bfloat16 on CPUs that support it",
    )
    train.add_argument(
        "--download", action="store_true", help="fetch the official archive if no data is found"
    )
    train.add_argument(
        "--validation-images",
        type=int,
        help="training images held out for validation (default 5000; 500 with --quick)",
    )
    train.add_argument(
        "--run-dir",
        type=Path,
        help="where history and checkpoints go (default runs/NAME/TIMESTAMP); "
        "rerun with the same --run-dir to resume a stopped run",
    )
    return parser


def _train(args: argparse.Namespace) -> int:
    config = TrainConfig(
        model=args.model,
        data_dir=args.data_dir,
        model_root=args.model_root,
        model_name=args.model_name,
        quick=args.quick,
        download=args.download,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        width=args.width,
        precision=args.precision,
        validation_images=args.validation_images,
        run_dir=args.run_dir,
    )
    data = load_run_data(config)  # before TensorFlow loads, so data errors answer at once
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from training.train import train_and_publish

    result = train_and_publish(config, data=data)
    name = config.model_name or config.model
    print(f"test accuracy: {result.metrics['test_accuracy']:.4f}")
    print(f"published {name} version {result.version} at {result.path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _train(args)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was published", file=sys.stderr)
        return 130
