"""The `classify` command: classifies image files with a model served by the gateway.

    classify cat.png dog.jpg --model cnn [--version N | --label stable] [--top-k K]
             [--target host:port] [--timeout S] [--json]
    classify cat.png --experiment cnn-stable-vs-canary [--routing-key user-7]

For each image it prints the model and version that served it (with `--experiment`, also the
arm and the request id, for `imgclf-experiment feedback`) and the class
probabilities, best first (with their sum when every class is shown), or with `--json`
one JSON object per line. A failed image prints `error: <CODE>: <details> (<image>)` to
stderr and the others go on; the exit status is 1 if any image failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from ._config import DEFAULT_TARGET, DEFAULT_TIMEOUT
from ._exceptions import ImgclfError, ServerError
from ._sync import Client
from ._types import Classification

TARGET_ENV = "IMGCLF_TARGET"


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command with `argv` (default: the process's arguments); returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.experiment is not None and (args.version is not None or args.label is not None):
        parser.error("--version and --label go with --model, not --experiment")
    if args.top_k < 0:
        parser.error("--top-k must be 0 (all classes) or positive")
    if args.timeout < 0:
        parser.error("--timeout must be positive, or 0 for no deadline")
    failed = False
    with Client(args.target, timeout=args.timeout or None) as client:
        for image in args.images:
            try:
                result = client.classify(
                    image,
                    model=args.model,
                    version=args.version,
                    label=args.label,
                    experiment=args.experiment,
                    routing_key=args.routing_key,
                    top_k=args.top_k,
                )
            except ImgclfError as exc:
                print(f"error: {_describe(exc)} ({image})", file=sys.stderr, flush=True)
                failed = True
                continue
            if args.json:
                print(json.dumps(_as_json(image, result)), flush=True)
            else:
                _print_table(image, result, every_class=_every_class(args.top_k, result))
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="classify", description="Classify image files with a model served by imgclf."
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image file (any format)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--model", help='model name, e.g. "cnn"')
    target.add_argument(
        "--experiment", metavar="NAME", help="classify through this experiment (it picks the arm)"
    )
    parser.add_argument(
        "--routing-key",
        metavar="KEY",
        help="sticky routing key for --experiment, e.g. a user id (same key, same arm)",
    )
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--version", type=int, help="model version number (default: latest)")
    choice.add_argument("--label", help='model version label, e.g. "stable"')
    parser.add_argument(
        "--top-k", type=int, default=0, metavar="K", help="classes to show (default: 0 = all)"
    )
    parser.add_argument(
        "--target",
        default=os.environ.get(TARGET_ENV, DEFAULT_TARGET),
        metavar="HOST:PORT",
        help=f"gateway address (default: ${TARGET_ENV} or {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"deadline per image in seconds, 0 for none (default: {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per image")
    return parser


def _describe(exc: ImgclfError) -> str:
    if isinstance(exc, ServerError):
        return f"{exc.code.name}: {exc.details}"
    return f"INVALID_INPUT: {exc}"


def _every_class(top_k: int, result: Classification) -> bool:
    # top_k above the number of classes is clamped by the gateway, so fewer scores mean all.
    return top_k == 0 or len(result.scores) < top_k


def _as_json(image: str, result: Classification) -> dict[str, object]:
    return {
        "image": image,
        "model": result.model,
        "version": result.version,
        "experiment": result.experiment,
        "arm": result.arm,
        "request_id": result.request_id,
        "scores": [
            {"index": s.index, "name": s.name, "probability": s.probability} for s in result.scores
        ],
    }


def _print_table(image: str, result: Classification, *, every_class: bool) -> None:
    width = max([len("class"), *(len(s.name) for s in result.scores)])
    served = f"model {result.model}, version {result.version}"
    if result.experiment:
        served = (
            f"experiment {result.experiment}, arm {result.arm}: {served}; "
            f"request id {result.request_id}"
        )
    lines = [
        f"{image}  ({served})",
        f"  {'rank':>4}  {'class':<{width}}  probability",
    ]
    lines += [
        f"  {rank:>4}  {score.name:<{width}}  {score.probability:>11.4f}"
        for rank, score in enumerate(result.scores, start=1)
    ]
    if every_class:
        total = sum(s.probability for s in result.scores)
        lines.append(f"  {'':>4}  {'sum':<{width}}  {total:>11.4f}")
    print("\n".join(lines), end="\n\n", flush=True)
