"""The store's exceptions, and the one place that turns database failures into them.

Callers catch these, never a driver's or SQLAlchemy's own exceptions.
"""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import exc as sa_exc


class StoreError(Exception):
    """Base of everything the store raises on purpose."""


class StoreUnavailable(StoreError):
    """The database could not be reached, did not answer in time, or is not migrated.

    The serving path treats this as "drop the record and count it"; the store retries nothing.
    """


class RevisionConflict(StoreError):
    """An experiment definition changed since the revision the caller based its change on."""

    def __init__(self, stored_revision: int) -> None:
        super().__init__(f"the stored revision is {stored_revision}")
        self.stored_revision = stored_revision


_UNAVAILABLE: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.InternalError,
    sa_exc.ProgrammingError,  # PostgreSQL's "relation does not exist": a store not migrated
    sa_exc.NotSupportedError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # no pooled connection came free in time
    OSError,  # asyncpg raises a refused or failed connection unwrapped
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def translate(exc: BaseException, doing: str) -> StoreError | None:
    """The store error for a failure of the database or its driver; None for anything else.

    `doing` says what was attempted ("insert predictions") and starts the message.
    """
    if isinstance(exc, StoreError):
        return exc
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"{doing}: {_one_line(cause)}")
    if isinstance(exc, sa_exc.DBAPIError):  # IntegrityError, DataError: the input is at fault
        return StoreError(f"{doing}: {_one_line(cause)}")
    return None


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    name = type(exc).__name__
    return f"{name}: {lines[0]}" if lines and lines[0] else name
