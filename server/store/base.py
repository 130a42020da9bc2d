"""`StoreBase`, the engine, timeout and error plumbing every store class is built on, and the
helpers the stores share (UTC datetimes, column lengths, the race-retry bound).

Every method of a store runs in one transaction, is bounded by `timeout_s`, and raises
`StoreUnavailable` when the database fails or does not answer in time (never a driver's
exception, never a hang).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Self, TypeVar

from sqlalchemy import Column, String, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from server.store.engine import create_store_engine, safe_url
from server.store.errors import StoreUnavailable, translate

T = TypeVar("T")
# A result row of any shape.
AnyRow = Row[*tuple[Any, ...]]

# Rounds of re-reading when a concurrent writer changed a row between our read and our write.
RACE_ROUNDS = 5


class StoreBase:
    """A store on one async engine (SQLite or PostgreSQL), migrated with `server.store.migrate`.

    Opening does not connect: a store that is down at start-up makes calls raise
    `StoreUnavailable` until it is back. The store owns the engine: `close()` disposes of it.
    """

    def __init__(self, engine: AsyncEngine, *, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self._engine = engine
        self._timeout_s = timeout_s
        # SQLite takes one writer at a time and makes the others sleep and retry: writes from
        # one process queue here instead, so they never wait on each other inside SQLite.
        self._write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._finishing: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, url: str, *, timeout_s: float = 2.0) -> Self:
        return cls(create_store_engine(url, timeout_s=timeout_s), timeout_s=timeout_s)

    @property
    def url(self) -> str:
        """The database URL with its password hidden."""
        return safe_url(self._engine.url)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def close(self) -> None:
        if self._finishing:  # transactions whose callers gave up end first
            await asyncio.wait(set(self._finishing), timeout=self._timeout_s)
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _insert_ignoring(self, table: Table, *keys: Column[Any]) -> Insert:
        """INSERT that skips rows whose `keys` are already stored (ON CONFLICT DO NOTHING)."""
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)

    async def _run(
        self,
        doing: str,
        operation: Callable[[AsyncConnection], Awaitable[T]],
        *,
        write: bool = False,
    ) -> T:
        """Runs `operation` in one transaction within the timeout, translating failures.

        A caller that times out or is cancelled does not cancel the transaction: interrupting
        a statement can leave its transaction open (a SQLite file then stays locked for every
        other writer), so it is left to commit or roll back by itself, within one more timeout.
        """
        transaction = asyncio.ensure_future(self._transaction(operation, write=write))
        try:
            async with asyncio.timeout(self._timeout_s):
                return await asyncio.shield(transaction)
        except TimeoutError as exc:
            self._finish_in_background(transaction)
            raise StoreUnavailable(
                f"{doing}: no answer within {self._timeout_s:g} s (a change may still be applied)"
            ) from exc
        except asyncio.CancelledError:
            self._finish_in_background(transaction)
            raise
        except Exception as exc:
            translated = translate(exc, doing)
            if translated is None or translated is exc:
                raise
            raise translated from exc

    async def _transaction(
        self, operation: Callable[[AsyncConnection], Awaitable[T]], *, write: bool
    ) -> T:
        if write and self._write_lock is not None:
            async with self._write_lock, self._engine.begin() as conn:
                return await operation(conn)
        async with self._engine.begin() as conn:
            return await operation(conn)

    def _finish_in_background(self, transaction: asyncio.Future[Any]) -> None:
        async def finish() -> None:
            with contextlib.suppress(BaseException):
                async with asyncio.timeout(self._timeout_s):
                    await transaction

        task = asyncio.ensure_future(finish())
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def aware_utc(value: datetime, name: str) -> datetime:
    """`value` in UTC; ValueError when it is naive (`name` says which argument)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value.isoformat()}")
    return value.astimezone(UTC)


def check_lengths(table: Table, values: Mapping[str, object]) -> None:
    """Rejects strings longer than their column, as PostgreSQL would (SQLite would not)."""
    for key, value in values.items():
        column_type = table.c[key].type
        if (
            isinstance(value, str)
            and isinstance(column_type, String)
            and column_type.length is not None
            and len(value) > column_type.length
        ):
            raise ValueError(f"{table.name}.{key} is longer than {column_type.length}: {value!r}")
