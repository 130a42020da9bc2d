"""Alembic environment of the store: migrations run on the store's own async engine.

`server.store.migrate` builds the configuration in code (no alembic.ini): the database URL and
timeout come in `config.attributes`; a caller that already holds a connection passes it as
`config.attributes["connection"]` instead.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from server.store.engine import create_store_engine
from server.store.schema import metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters a table by copying it; batch mode does that for later migrations.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations(url: str, timeout_s: float) -> None:
    engine = create_store_engine(url, timeout_s=timeout_s)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


def main() -> None:
    if context.is_offline_mode():
        raise RuntimeError("the store's migrations run online only (against a database)")
    attributes = context.config.attributes
    connection = attributes.get("connection")
    if isinstance(connection, Connection):
        run_migrations(connection)
        return
    asyncio.run(run_async_migrations(str(attributes["url"]), float(attributes["timeout_s"])))


main()
