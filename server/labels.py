"""The label tool: change what the backend serves, by hand, without a failed request.

    python -m server.labels set    --model cnn --label canary --version N   # label -> version
    python -m server.labels load   --model cnn --version N           # serve N (waits for it)
    python -m server.labels retire --model cnn --version N           # stop serving N
    python -m server.labels show   --model cnn

Each command changes `models.config` (`--config`, the file the backend polls) and pushes the whole
config to the backend (`--backend`); see `server.model_versions` for the rules. A label can only
be set on an AVAILABLE version, and a version a label points at is never retired. The rollout
tool (`server.rollout`) does all of this through a plan, with traffic shifting and analysis.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.model_versions import (
    BackendControl,
    VersionError,
    add_backend_token_argument,
    labels,
    load_version,
    retire_version,
)
from server.model_versions import set_label as set_label_on

LabelError = VersionError


def set_label(
    config_path: Path, backend: str, model: str, label: str, version: int, timeout: float = 30.0
) -> None:
    """Points `label` of `model` at `version` (which must be AVAILABLE on `backend`)."""
    with BackendControl(backend, timeout_s=timeout) as control:
        set_label_on(config_path, control, model, label, version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.labels", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", required=True)
    common.add_argument("--config", type=Path, default=Path("serving_config/models.config"))
    common.add_argument("--backend", default="localhost:8500")
    add_backend_token_argument(common)
    move = commands.add_parser("set", parents=[common], help="point a label at a loaded version")
    move.add_argument("--label", required=True)
    move.add_argument("--version", type=int, required=True)
    load = commands.add_parser("load", parents=[common], help="serve a published version")
    load.add_argument("--version", type=int, required=True)
    load.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for it")
    retire = commands.add_parser("retire", parents=[common], help="stop serving a version")
    retire.add_argument("--version", type=int, required=True)
    commands.add_parser("show", parents=[common], help="the model's labels")
    args = parser.parse_args(argv)
    try:
        with BackendControl(args.backend, token_file=args.backend_token_file) as control:
            if args.command == "set":
                set_label_on(args.config, control, args.model, args.label, args.version)
                print(f"{args.model}: label '{args.label}' -> version {args.version}")
            elif args.command == "load":
                load_version(args.config, control, args.model, args.version, timeout_s=args.timeout)
                print(f"{args.model}: version {args.version} is AVAILABLE")
            elif args.command == "retire":
                if not retire_version(args.config, control, args.model, args.version):
                    print(f"error: a label points at version {args.version}; move it first",
                          file=sys.stderr)  # fmt: skip
                    return 1
                print(f"{args.model}: version {args.version} retired")
            else:
                shown = labels(args.config, args.model)
                served = sorted(control.available(args.model))
                print(f"{args.model}: labels {shown or 'none'}; AVAILABLE versions {served}")
    except VersionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
