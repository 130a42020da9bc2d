"""The schema comes from the migrations alone, matches `schema.metadata`, and SQLite runs in WAL."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from server.store import (
    ExperimentStore,
    StoreUnavailable,
    create_store_engine,
    current_revision,
    default_store_url,
    head_revision,
    safe_url,
    upgrade,
    upgrade_async,
)
from server.store.migrate import alembic_config
from server.store.schema import metadata


def schema_diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_the_migrated_schema_is_the_metadata(store_url: str) -> None:
    engine = create_store_engine(store_url, timeout_s=10)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(schema_diff) == []
            tables = await conn.run_sync(lambda sync: set(sync.dialect.get_table_names(sync)))
    finally:
        await engine.dispose()
    assert tables == {
        "alembic_version",
        "predictions",
        "feedback",
        "experiments",
        "rollouts",
        "rollout_events",
    }


def test_the_store_is_at_the_head_revision_and_upgrading_again_changes_nothing(
    store_url: str,
) -> None:
    assert head_revision() == "0002"
    assert current_revision(store_url) == "0002"
    upgrade(store_url)
    assert current_revision(store_url) == "0002"


def test_a_new_database_has_no_revision_until_upgraded(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'dir' / 'experiments.db'}"
    assert current_revision(url) is None
    upgrade(url)
    assert current_revision(url) == "0002"


async def test_an_unmigrated_store_is_unavailable_rather_than_created_on_the_fly(
    tmp_path: Path,
) -> None:
    async with await ExperimentStore.open(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}") as store:
        with pytest.raises(StoreUnavailable, match="no such table"):
            await store.list_experiments()


async def test_sqlite_runs_in_wal_mode_with_the_connection_settings(sqlite_url: str) -> None:
    engine = create_store_engine(sqlite_url, timeout_s=3.5)
    try:
        async with engine.connect() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
    finally:
        await engine.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": 3500,
        "foreign_keys": 1,
    }
    # WAL is a property of the file: a plain connection sees it too.
    path = sqlite_url.removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(path) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_the_default_store_is_a_sqlite_file_in_the_run_directory() -> None:
    assert default_store_url(Path("run")) == "sqlite+aiosqlite:///run/experiments.db"
    assert default_store_url(Path("/var/lib/x")) == "sqlite+aiosqlite:////var/lib/x/experiments.db"


def test_the_sqlite_directory_is_created(tmp_path: Path) -> None:
    create_store_engine(f"sqlite+aiosqlite:///{tmp_path / 'a' / 'b' / 'e.db'}", timeout_s=1)
    assert (tmp_path / "a" / "b").is_dir()


def test_passwords_are_hidden_when_a_url_is_shown() -> None:
    shown = safe_url("postgresql+asyncpg://gateway:s3cret@db.example:5432/experiments")
    assert shown == "postgresql+asyncpg://gateway:***@db.example:5432/experiments"
    store = ExperimentStore(
        create_store_engine("postgresql+asyncpg://u:pw@127.0.0.1/db", timeout_s=1), timeout_s=1
    )
    assert "pw" not in store.url


def test_the_async_drivers_are_used_and_other_databases_refused() -> None:
    plain = create_store_engine("postgresql://u:pw@127.0.0.1/db", timeout_s=1)
    assert plain.url.drivername == "postgresql+asyncpg"
    assert create_store_engine("sqlite://", timeout_s=1).url.drivername == "sqlite+aiosqlite"
    for url in ("mysql+aiomysql://u:secret@h/db", "postgresql+psycopg2://u:secret@h/db"):
        with pytest.raises(ValueError, match="unsupported store URL") as refused:
            create_store_engine(url, timeout_s=1)
        assert "secret" not in str(refused.value)
    with pytest.raises(ValueError, match="not a database URL"):
        create_store_engine("not a url", timeout_s=1)


def test_the_migration_downgrades_to_nothing_and_upgrades_again(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'experiments.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    assert current_revision(url) is None
    with sqlite3.connect(tmp_path / "experiments.db") as plain:
        tables = {
            name for (name,) in plain.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    assert tables <= {"alembic_version", "sqlite_sequence"}
    upgrade(url)
    assert current_revision(url) == "0002"


async def test_the_blocking_functions_say_what_to_use_inside_an_event_loop(sqlite_url: str) -> None:
    with pytest.raises(RuntimeError, match="upgrade_async"):
        upgrade(sqlite_url)
    with pytest.raises(RuntimeError, match="to_thread"):
        current_revision(sqlite_url)
    await upgrade_async(sqlite_url)
    assert await asyncio.to_thread(current_revision, sqlite_url) == "0002"
