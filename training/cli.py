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

from training import report_cli
from training.arguments import non_negative_int, positive_int
from training.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    PRECISIONS,
    XCEPTION_BLOCKS,
    XCEPTION_FINE_TUNE_FROM,
    XCEPTION_IMAGE_SIZE,
    XCEPTION_MIN_IMAGE_SIZE,
    XCEPTION_PHASE1_EPOCHS,
    XCEPTION_PHASE1_LEARNING_RATE,
    XCEPTION_PHASE2_EPOCHS,
    XCEPTION_PHASE2_LEARNING_RATE,
    TrainConfig,
    load_run_data,
)
from training.data import DatasetError
from training.evaluation.dataset import load_test_set

MODEL_CHOICES = ("cnn", "xception")


def _add_transfer_options(train: argparse.ArgumentParser) -> None:
    """The `train` options of two-phase transfer learning (--model xception)."""
    group = train.add_argument_group(
        "xception (phase 1 trains the new head on a frozen base, phase 2 fine-tunes top blocks)"
    )
    group.add_argument(
        "--weights",
        metavar="none|imagenet|PATH",
        help="base weights: none (random, the default), imagenet (Keras' ImageNet weights, "
        "downloaded once into the Keras cache) or a weights file of the Xception base "
        "(include_top=False), e.g. a .weights.h5 saved by Keras or Keras' *_notop.h5",
    )
    group.add_argument(
        "--image-size",
        type=positive_int,
        help=f"side the 32x32 input is upscaled to inside the model, at least "
        f"{XCEPTION_MIN_IMAGE_SIZE} (default {XCEPTION_IMAGE_SIZE})",
    )
    group.add_argument(
        "--phase1-epochs",
        type=non_negative_int,
        help=f"head-only epochs (default {XCEPTION_PHASE1_EPOCHS}, 1 with --quick)",
    )
    group.add_argument(
        "--phase2-epochs",
        type=non_negative_int,
        help=f"fine-tuning epochs (default {XCEPTION_PHASE2_EPOCHS}, 1 with --quick)",
    )
    group.add_argument(
        "--fine-tune-from",
        type=positive_int,
        metavar="BLOCK",
        help=f"first base block unfrozen in phase 2, 1..{XCEPTION_BLOCKS} "
        f"(default {XCEPTION_FINE_TUNE_FROM}; 1 trains the whole base, sensible with "
        "--weights none)",
    )
    group.add_argument(
        "--phase1-learning-rate",
        type=float,
        help=f"peak learning rate of phase 1 (default {XCEPTION_PHASE1_LEARNING_RATE})",
    )
    group.add_argument(
        "--phase2-learning-rate",
        type=float,
        help=f"peak learning rate of phase 2 (default {XCEPTION_PHASE2_LEARNING_RATE})",
    )


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
        "--quick",
        action="store_true",
        help="a slice of the data, one epoch (1+1 for xception): a first real model",
    )
    train.add_argument(
        "--epochs",
        type=positive_int,
        help=f"epochs of a cnn run (default: {DEFAULT_EPOCHS}, 1 with --quick)",
    )
    train.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--width", type=positive_int, help="model width (channels of the stem)")
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
        "--report-dir",
        type=Path,
        default=Path("reports"),
        help="where the new version's evaluation report goes: DIR/NAME/VERSION (default reports)",
    )
    train.add_argument(
        "--no-report", action="store_true", help="publish without writing the evaluation report"
    )
    train.add_argument(
        "--run-dir",
        type=Path,
        help="where history and checkpoints go (default runs/NAME/TIMESTAMP); "
        "rerun with the same --run-dir to resume a stopped run",
    )
    _add_transfer_options(train)
    report_cli.add_commands(commands)
    return parser


def _usage_error(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 2


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
        weights=args.weights,
        image_size=args.image_size,
        phase1_epochs=args.phase1_epochs,
        phase2_epochs=args.phase2_epochs,
        fine_tune_from=args.fine_tune_from,
        phase1_learning_rate=args.phase1_learning_rate,
        phase2_learning_rate=args.phase2_learning_rate,
    )
    try:
        config.resolved()  # settings that don't fit the model answer before any data is read
    except ValueError as exc:
        return _usage_error(exc)
    data = load_run_data(config)  # before TensorFlow loads, so data errors answer at once
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from training.models import WeightsError
    from training.train import train_and_publish

    try:
        result = train_and_publish(config, data=data)
    except WeightsError as exc:
        return _usage_error(exc)
    name = config.model_name or config.model
    print(f"test accuracy: {result.metrics['test_accuracy']:.4f}")
    print(f"published {name} version {result.version} at {result.path}")
    if not args.no_report:
        resolved = config.resolved()
        test_set = load_test_set(resolved.data_dir, resolved.test_limit)
        from training.evaluation.predict import LatencySettings

        quick_latency = LatencySettings(single_runs=20, batch_runs=2) if config.quick else None
        report_cli.write_version_report(result.path, test_set, args.report_dir, quick_latency)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in report_cli.COMMANDS:
        return report_cli.run(args)
    try:
        return _train(args)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was published", file=sys.stderr)
        return 130
