"""Engines for the store: SQLite (WAL, one file) by default, PostgreSQL through asyncpg."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

DEFAULT_FILE_NAME = "experiments.db"
_ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}


def default_store_url(run_dir: Path) -> str:
    """The SQLite file `run_dir/experiments.db`."""
    return f"sqlite+aiosqlite:///{(run_dir / DEFAULT_FILE_NAME).as_posix()}"


def safe_url(url: str | URL) -> str:
    """The URL with its password masked, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: say nothing that might contain a secret
        return "<invalid store URL>"


def create_store_engine(url: str, *, timeout_s: float) -> AsyncEngine:
    """An async engine for `url`; nothing connects until the engine is used.

    SQLite: every connection gets WAL journaling, `synchronous=NORMAL`, a busy timeout of
    `timeout_s` and foreign keys on; the file's directory is created (when that fails, the
    first use reports it). PostgreSQL: connecting and each command are bounded by `timeout_s`,
    and pooled connections are checked before use, so a restarted server is picked up again.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("the store URL is not a database URL") from None
    # A URL without a driver ("postgresql://", "sqlite://") gets the async one.
    driver = _ASYNC_DRIVERS.get(parsed.get_backend_name())
    if driver is None or ("+" in parsed.drivername and parsed.get_driver_name() != driver):
        raise ValueError(
            f"unsupported store URL {safe_url(parsed)}: "
            "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB"
        )
    parsed = parsed.set(drivername=f"{parsed.get_backend_name()}+{driver}")
    if driver == "aiosqlite":
        return _sqlite_engine(parsed, timeout_s)
    return create_async_engine(
        parsed,
        pool_pre_ping=True,
        pool_timeout=timeout_s,
        connect_args={"timeout": timeout_s, "command_timeout": timeout_s},
    )


def _sqlite_engine(url: URL, timeout_s: float) -> AsyncEngine:
    database = url.database or ""
    options: dict[str, Any] = {}
    if database not in ("", ":memory:"):  # a file (an in-memory database has a static pool)
        options["pool_timeout"] = timeout_s
        if not database.startswith("file:"):
            with contextlib.suppress(OSError):
                Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": timeout_s}, **options)
    busy_ms = max(1, round(timeout_s * 1000))

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    return engine
