"""Command line for evaluation reports, added to `python -m training` by `training.cli`.

    python -m training report --model-root models --model cnn --version 2 [--out reports]
    python -m training compare models/cnn/1 models/cnn/2 [--out reports/compare/cnn-1_vs_cnn-2]

`report` writes `OUT/MODEL/VERSION/report.md` with its pictures and `metrics.json`; `compare`
writes `report.md`, `confusion_matrices.png` and `compare.json`. Both read the CIFAR-10 test set
from `--data-dir` (default: `$CIFAR10_DIR`, then the shared copy) and accept `--limit N` to use
its first N images. Exit codes: 0 written; 2 bad arguments, a missing version or unusable data
(one line on stderr, no traceback); 130 interrupted. Paths and data are checked before
TensorFlow is imported, so those errors answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from training.arguments import positive_int
from training.data import DatasetError
from training.evaluation.dataset import EvaluationData, load_test_set
from training.evaluation.errors import EvaluationError
from training.evaluation.versions import check_version_dir, resolve_version_dir

if TYPE_CHECKING:
    from training.evaluation.predict import LatencySettings

COMMANDS = ("report", "compare")
DEFAULT_REPORTS = Path("reports")


def _add_evaluation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="CIFAR-10 python-layout directory (default: $CIFAR10_DIR, then the shared copy)",
    )
    parser.add_argument(
        "--limit", type=positive_int, help="evaluate on the first N test images only"
    )
    parser.add_argument(
        "--latency-runs", type=positive_int, default=100, help="timed batch-1 calls (default 100)"
    )
    parser.add_argument(
        "--throughput-runs",
        type=positive_int,
        default=10,
        help="timed batch-256 calls (default 10)",
    )


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the `report` and `compare` subcommands to `python -m training`'s parser."""
    report = commands.add_parser("report", help="write the evaluation report of one version")
    report.add_argument(
        "--model-root",
        type=Path,
        default=Path(os.environ.get("MODEL_ROOT") or "models"),
        help="model repository root (default: $MODEL_ROOT or models)",
    )
    report.add_argument("--model", default="cnn", help="model name in the repository")
    report.add_argument("--version", type=positive_int, help="version number (default: the newest)")
    report.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_REPORTS,
        help="reports root; the report goes to OUT/MODEL/VERSION (default: reports)",
    )
    _add_evaluation_options(report)

    compare = commands.add_parser("compare", help="compare two versions on the same test set")
    compare.add_argument("a", type=Path, help="version directory A, e.g. models/cnn/1")
    compare.add_argument("b", type=Path, help="version directory B, e.g. models/cnn/2")
    compare.add_argument(
        "--out", type=Path, help="output directory (default: reports/compare/A_vs_B)"
    )
    _add_evaluation_options(compare)


def _latency_settings(args: argparse.Namespace) -> LatencySettings:
    from training.evaluation.predict import LatencySettings

    return LatencySettings(single_runs=args.latency_runs, batch_runs=args.throughput_runs)


def _load_data(args: argparse.Namespace) -> EvaluationData:
    data = load_test_set(args.data_dir, args.limit)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return data


def write_version_report(
    version_dir: Path, data: EvaluationData, out_root: Path, latency: LatencySettings | None = None
) -> Path:
    """Evaluates one exported version and writes its report to OUT_ROOT/<model>/<version>/."""
    from training.evaluation.evaluate import evaluate_version
    from training.evaluation.predict import DEFAULT_LATENCY
    from training.evaluation.report import write_report

    evaluation = evaluate_version(version_dir, data, latency or DEFAULT_LATENCY)
    written = write_report(evaluation, out_root / version_dir.parent.name / version_dir.name)
    print(f"{evaluation.version.label}: accuracy {evaluation.accuracy:.4f} on {len(data):,} images")
    print(f"report written to {written}")
    return written


def _report(args: argparse.Namespace) -> int:
    path = resolve_version_dir(args.model_root, args.model, args.version)
    write_version_report(path, _load_data(args), args.out, _latency_settings(args))
    return 0


def _compare(args: argparse.Namespace) -> int:
    path_a, path_b = check_version_dir(args.a), check_version_dir(args.b)
    data = _load_data(args)
    from training.evaluation.compare import compare_versions, default_out_dir, write_comparison

    comparison = compare_versions(path_a, path_b, data, _latency_settings(args))
    written = write_comparison(comparison, args.out or default_out_dir(path_a, path_b))
    delta = comparison.b.accuracy - comparison.a.accuracy
    print(
        f"accuracy {comparison.a.accuracy:.4f} (A) vs {comparison.b.accuracy:.4f} (B), "
        f"delta {delta:+.4f}, McNemar p = {comparison.mcnemar.exact_p:.4g}"
    )
    print(f"comparison written to {written}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Runs a parsed `report` or `compare` command; returns the exit code."""
    handler = _report if args.command == "report" else _compare
    try:
        return handler(args)
    except (EvaluationError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
