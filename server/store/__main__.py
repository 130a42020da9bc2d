"""Command line of the store: `python -m server.store upgrade|current|prune`.

The URL comes from `--url`, else `IMGCLF_GATEWAY_STORE_URL`, else the SQLite file under `run/`.
Exit status: 0 done, 1 another store error, 2 the database cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from server.store.engine import default_store_url, safe_url
from server.store.errors import StoreError, StoreUnavailable
from server.store.migrate import DEFAULT_TIMEOUT_S, current_revision, head_revision, upgrade
from server.store.repository import ExperimentStore

URL_ENV = "IMGCLF_GATEWAY_STORE_URL"
EXIT_ERROR = 1
EXIT_UNREACHABLE = 2


def default_url() -> str:
    return os.environ.get(URL_ENV) or default_store_url(Path("run"))


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=None,
        help=f"database URL (default: ${URL_ENV}, else {default_store_url(Path('run'))})",
    )
    common.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="give up on the database after this long (default: %(default)s)",
    )
    parser = argparse.ArgumentParser(prog="python -m server.store", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("upgrade", parents=[common], help="migrate the schema to the newest")
    commands.add_parser("current", parents=[common], help="print the schema revision")
    prune = commands.add_parser(
        "prune", parents=[common], help="delete prediction records (and their feedback)"
    )
    prune.add_argument(
        "--days", type=float, required=True, help="delete records older than this many days"
    )
    return parser


async def _prune(url: str, days: float, timeout_s: float) -> int:
    cutoff = datetime.now(UTC) - timedelta(days=days)
    async with await ExperimentStore.open(url, timeout_s=timeout_s) as store:
        return await store.prune(cutoff)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    url: str = args.url or default_url()
    try:
        if args.command == "upgrade":
            upgrade(url, timeout_s=args.timeout)
            print(f"{safe_url(url)} is at revision {current_revision(url, timeout_s=args.timeout)}")
        elif args.command == "current":
            revision = current_revision(url, timeout_s=args.timeout)
            head = head_revision()
            if revision is None:
                print(f"none (not migrated; the newest revision is {head})")
            else:
                print(revision if revision != head else f"{revision} (head)")
        else:
            if args.days < 0:
                print("error: --days must not be negative", file=sys.stderr)
                return EXIT_ERROR
            deleted = asyncio.run(_prune(url, args.days, args.timeout))
            print(f"deleted {deleted} prediction records older than {args.days:g} days")
    except StoreUnavailable as exc:
        print(f"error: cannot reach the store at {safe_url(url)}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except StoreError as exc:
        print(f"error: {safe_url(url)}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:  # an unusable URL
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
