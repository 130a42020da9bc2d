"""Schema migrations of the store (Alembic, configured in code: no alembic.ini).

The schema is created and changed only here. `upgrade`, `downgrade` and `current_revision` block
(they run their own event loop); a caller already in an event loop uses `upgrade_async`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from server.store.engine import create_store_engine
from server.store.errors import translate

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_TIMEOUT_S = 10.0


def alembic_config(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Config:
    """An Alembic configuration for the store at `url` (for the `alembic.command` functions)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Attributes, not "sqlalchemy.url": an ini option would interpolate a `%` in the password.
    config.attributes["url"] = url
    config.attributes["timeout_s"] = timeout_s
    return config


def head_revision() -> str | None:
    """The newest migration's revision."""
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def upgrade(url: str, *, revision: str = "head", timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Migrates the store at `url` to `revision` (the newest by default); a no-op when there.

    `timeout_s` bounds connecting and each statement. Raises `StoreUnavailable` when the
    database cannot be reached.
    """
    _refuse_inside_event_loop("upgrade", "await upgrade_async(...)")
    with _translated("upgrade"):
        command.upgrade(alembic_config(url, timeout_s=timeout_s), revision)


async def upgrade_async(
    url: str, *, revision: str = "head", timeout_s: float = DEFAULT_TIMEOUT_S
) -> None:
    """`upgrade` for a caller inside an event loop (the gateway at start-up, async tests)."""
    config = alembic_config(url, timeout_s=timeout_s)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    engine = create_store_engine(url, timeout_s=timeout_s)
    try:
        with _translated("upgrade"):
            async with engine.begin() as connection:
                await connection.run_sync(run)
    finally:
        await engine.dispose()


def downgrade(url: str, revision: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Migrates the store at `url` back to `revision` ("base": no tables), dropping what the
    later migrations created, their data included.

    Raises `StoreUnavailable` when the database cannot be reached.
    """
    _refuse_inside_event_loop("downgrade", "call it through asyncio.to_thread")
    with _translated("downgrade"):
        command.downgrade(alembic_config(url, timeout_s=timeout_s), revision)


def current_revision(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> str | None:
    """The revision the store at `url` is at; None when it was never migrated.

    Raises `StoreUnavailable` when the database cannot be reached.
    """
    _refuse_inside_event_loop("current_revision", "call it through asyncio.to_thread")
    with _translated("read the schema revision"):
        return asyncio.run(_current_revision(url, timeout_s))


async def _current_revision(url: str, timeout_s: float) -> str | None:
    engine = create_store_engine(url, timeout_s=timeout_s)
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()


def _refuse_inside_event_loop(function: str, instead: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(f"{function}() runs its own event loop; inside one, {instead}")


@contextmanager
def _translated(doing: str) -> Iterator[None]:
    """Re-raises a database failure as the store's error (see `errors.translate`)."""
    try:
        yield
    except Exception as exc:
        translated = translate(exc, doing)
        if translated is None or translated is exc:
            raise
        raise translated from exc
