"""The store's exceptions, and the one place that turns database failures into them.

Callers catch these, never a driver's or SQLAlchemy's own exceptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import exc as sa_exc

if TYPE_CHECKING:
    from server.store.rollouts import StoredRollout


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


class RolloutConflict(StoreError):
    """The model already has a rollout that is not in a terminal state: `existing`."""

    def __init__(self, existing: StoredRollout) -> None:
        super().__init__(
            f"model {existing.model!r} already has an active rollout: {existing.id} "
            f"(version {existing.version}, {existing.state})"
        )
        self.existing = existing


class RolloutStateConflict(StoreError):
    """A rollout was not changed because its stored state did not allow it: `stored`."""

    def __init__(self, stored: StoredRollout, reason: str | None = None) -> None:
        message = f"rollout {stored.id} is {stored.state!r}"
        super().__init__(f"{message}: {reason}" if reason else message)
        self.stored = stored


class RolloutNotFound(StoreError, KeyError):
    """There is no rollout with the id `rollout_id`."""

    def __init__(self, rollout_id: int) -> None:
        super().__init__(rollout_id)
        self.rollout_id = rollout_id

    def __str__(self) -> str:  # KeyError's own would show just the quoted id
        return f"no rollout with id {self.rollout_id}"


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
