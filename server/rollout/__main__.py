"""The rollout tool: one model version through its plan, from the command line.

    python -m server.rollout start    --model cnn --version N [--plan default]
    python -m server.rollout status   --model cnn [--json]
    python -m server.rollout resume   --model cnn
    python -m server.rollout rollback --model cnn [--reason TEXT]
    python -m server.rollout abort    --model cnn [--reason TEXT]

`make rollout MODEL=cnn VERSION=N` runs `start` against `make serve`'s stack. The tool talks to
the backend's ModelService (`--backend`), rewrites the models.config it polls (`--config`), drives
the experiment through the gateway's Admin API (`--gateway`, token from `--token-file` or
$IMGCLF_ADMIN_TOKEN), and keeps its state in the experiment store (`--store-url`, the gateway's).
Every step is printed as a JSON line. Exit status: 0 promoted (or done), 1 rolled back, rejected
or aborted, 2 refused (bad arguments, another rollout in progress, nothing to resume).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from imgclf_client import AsyncClient, ImgclfError

from server.model_versions import BackendControl, VersionError, add_backend_token_argument
from server.rollout.driver import RolloutDriver, RolloutError
from server.rollout.plan import PlanError, load_plan
from server.rollout.status import render_status
from server.store import RolloutStore, StoreError
from server.store.engine import create_store_engine

DEFAULT_STORE_URL = "sqlite+aiosqlite:///run/experiments.db"
DEFAULT_TOKEN_FILE = Path("run/admin-token")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", required=True)
    common.add_argument(
        "--config",
        type=Path,
        default=Path("run/models.config"),
        help="the models.config the backend polls (default run/models.config)",
    )
    common.add_argument("--backend", default="localhost:8500", help="TF Serving gRPC address")
    add_backend_token_argument(common)
    common.add_argument("--gateway", default="localhost:50051", help="the gateway's address")
    common.add_argument(
        "--token-file",
        type=Path,
        help="Admin API token file (default $IMGCLF_ADMIN_TOKEN, else run/admin-token)",
    )
    common.add_argument(
        "--store-url",
        default=os.environ.get("IMGCLF_GATEWAY_STORE_URL", DEFAULT_STORE_URL),
        help="the gateway's experiment store (default $IMGCLF_GATEWAY_STORE_URL)",
    )
    common.add_argument("--json", action="store_true", help="status: print JSON")
    parser = argparse.ArgumentParser(prog="python -m server.rollout", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", parents=[common], help="roll out a version")
    start.add_argument("--version", type=int, required=True)
    start.add_argument("--plan", default="default", help="plan name in the plan file")
    start.add_argument("--plan-file", type=Path, default=Path("serving_config/rollout.toml"))
    commands.add_parser("status", parents=[common], help="the rollout's state and history")
    commands.add_parser("resume", parents=[common], help="go on with a stopped rollout")
    for name in ("rollback", "abort"):
        sub = commands.add_parser(name, parents=[common], help=f"{name} the rollout in progress")
        sub.add_argument("--reason", default=f"{name} asked by hand")
    return parser


def _token(args: argparse.Namespace) -> str | None:
    path = args.token_file
    if path is None:
        if os.environ.get("IMGCLF_ADMIN_TOKEN"):
            return os.environ["IMGCLF_ADMIN_TOKEN"].split(",")[0].strip()
        path = DEFAULT_TOKEN_FILE if DEFAULT_TOKEN_FILE.exists() else None
    if path is None:
        return None
    lines = [line.strip() for line in path.read_text().splitlines()]
    return next((line for line in lines if line and not line.startswith("#")), None)


def _print_event(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


async def run(args: argparse.Namespace) -> int:
    store = RolloutStore(create_store_engine(args.store_url, timeout_s=10.0), timeout_s=10.0)
    try:
        if args.command == "status":
            rollout = await store.latest_rollout(args.model)
            if rollout is None:
                print(f"no rollout of '{args.model}' yet")
                return 0
            events = await store.events(rollout.id)
            print(render_status(rollout, events, as_json=args.json))
            return 0
        async with AsyncClient(args.gateway, timeout=30.0, admin_token=_token(args)) as client:
            with BackendControl(args.backend, token_file=args.backend_token_file) as backend:
                driver = RolloutDriver(
                    store=store,
                    client=client,
                    backend=backend,
                    config_path=args.config,
                    emit=_print_event,
                )
                if args.command == "start":
                    plan = load_plan(args.plan_file, args.plan)
                    rollout = await driver.start(args.model, args.version, plan)
                elif args.command == "resume":
                    rollout = await driver.resume(args.model)
                elif args.command == "rollback":
                    rollout = await driver.rollback(args.model, args.reason)
                else:
                    rollout = await driver.abort(args.model, args.reason)
        print(f"rollout {rollout.id}: {rollout.state} ({rollout.detail})", file=sys.stderr)
        if args.command in ("rollback", "abort"):
            return 0
        return 0 if rollout.state == "promoted" else 1
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except (RolloutError, PlanError, VersionError, StoreError, ImgclfError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
