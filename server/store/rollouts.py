"""`RolloutStore`: the state of model-version rollouts, kept so that a killed rollout tool resumes.

A rollout drives one model version through a plan (a shadow step, canary ramp steps, then
promote or roll back). At most one rollout of a model is active, that is not in one of the
`TERMINAL_STATES`: the unique `rollouts.active_model` column decides it, so of two simultaneous
`create_rollout` calls for one model exactly one wins, on SQLite and PostgreSQL alike.

Like every store class (`StoreBase`), each method runs in one transaction within the timeout and
raises `StoreUnavailable` when the database fails; datetimes come out timezone-aware in UTC.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from server.store.base import (
    RACE_ROUNDS,
    AnyRow,
    StoreBase,
    aware_utc,
    check_lengths,
    utc_now,
)
from server.store.errors import RolloutConflict, RolloutNotFound, RolloutStateConflict, StoreError
from server.store.schema import UtcDateTime, rollout_events, rollouts

TERMINAL_STATES = frozenset({"promoted", "rolled_back", "rejected", "aborted"})


@dataclass(frozen=True)
class StoredRollout:
    """A rollout as the store keeps it."""

    id: int
    model: str
    version: int
    experiment: str
    plan: dict[str, Any]
    state: str
    # Index into the plan's steps; -1 before the first.
    step: int
    step_started_at: datetime | None
    # The versions the model's labels pointed at before the rollout (what a rollback restores).
    previous_stable: int | None
    previous_canary: int | None
    # A human-readable last message.
    detail: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RolloutEvent:
    """One entry of a rollout's history."""

    at: datetime
    event: dict[str, Any]


class RolloutStore(StoreBase):
    """Rollouts and their events (see `StoreBase` for opening, closing and failures)."""

    async def create_rollout(
        self,
        model: str,
        version: int,
        experiment: str,
        plan: dict[str, Any],
        *,
        previous_stable: int | None,
        previous_canary: int | None,
        state: str = "pending",
    ) -> StoredRollout:
        """Stores a new rollout at step -1.

        Raises `RolloutConflict(existing)` when the model has a rollout that is not in a
        terminal state; a rollout created in a terminal state never conflicts.
        """
        check_lengths(rollouts, {"model": model, "experiment": experiment, "state": state})
        values: dict[str, Any] = {
            "model": model,
            "version": version,
            "experiment": experiment,
            "plan": _encode(plan),
            "state": state,
            "step": -1,
            "step_started_at": None,
            "previous_stable": previous_stable,
            "previous_canary": previous_canary,
            "detail": "",
            "active_model": None if state in TERMINAL_STATES else model,
        }
        # The unique active_model decides: the insert of a second active rollout is skipped.
        statement = self._insert_ignoring(rollouts, rollouts.c.active_model).returning(*rollouts.c)

        async def run(conn: AsyncConnection) -> StoredRollout:
            for _ in range(RACE_ROUNDS):
                now = utc_now()
                stamped = {**values, "created_at": now, "updated_at": now}
                created = await conn.execute(statement.values(stamped))
                row = created.first()
                if row is not None:
                    return _rollout(row)
                existing = await _fetch(conn, rollouts.c.active_model == model)
                if existing is not None:
                    raise RolloutConflict(existing)
                # The active rollout ended between our insert and our read: insert again.
            raise StoreError(f"create rollout: the active rollout of {model!r} kept changing")

        return await self._run("create rollout", run, write=True)

    async def update_rollout(
        self,
        rollout_id: int,
        *,
        state: str | None = None,
        step: int | None = None,
        step_started_at: datetime | None = None,
        detail: str | None = None,
        expected_state: str | None = None,
    ) -> StoredRollout:
        """Changes the fields given (and `updated_at`); returns the rollout as stored now.

        With `expected_state`, the change happens only when that is the stored state. A rollout
        entering a terminal state frees its model for a new rollout; a terminal rollout keeps its
        state. When the stored state prevents the change, raises `RolloutStateConflict(stored)`
        and changes nothing; `RolloutNotFound` for an unknown id.
        """
        values: dict[str, Any] = {}
        statement = update(rollouts).where(rollouts.c.id == rollout_id)
        if state is not None:
            check_lengths(rollouts, {"state": state})
            values["state"] = state
            if state in TERMINAL_STATES:
                values["active_model"] = None
            statement = statement.where(
                or_(rollouts.c.state.not_in(sorted(TERMINAL_STATES)), rollouts.c.state == state)
            )
        if expected_state is not None:
            statement = statement.where(rollouts.c.state == expected_state)
        if step is not None:
            if step < -1:
                raise ValueError(f"step must be -1 or more, got {step}")
            values["step"] = step
        if step_started_at is not None:
            values["step_started_at"] = aware_utc(step_started_at, "step_started_at")
        if detail is not None:
            values["detail"] = detail

        async def run(conn: AsyncConnection) -> StoredRollout:
            for _ in range(RACE_ROUNDS):
                updated = await conn.execute(
                    statement.values({**values, "updated_at": utc_now()}).returning(*rollouts.c)
                )
                row = updated.first()
                if row is not None:
                    return _rollout(row)
                stored = await _fetch(conn, rollouts.c.id == rollout_id)
                if stored is None:
                    raise RolloutNotFound(rollout_id)
                if expected_state is not None and stored.state != expected_state:
                    raise RolloutStateConflict(stored, f"expected {expected_state!r}")
                if state is not None and stored.state in TERMINAL_STATES and stored.state != state:
                    raise RolloutStateConflict(stored, f"it is over: it cannot become {state!r}")
                # The state changed between our update and our read: try again.
            raise StoreError(f"update rollout: rollout {rollout_id} kept changing")

        return await self._run("update rollout", run, write=True)

    async def get_rollout(self, rollout_id: int) -> StoredRollout | None:
        return await self._one("read rollout", rollouts.c.id == rollout_id)

    async def active_rollout(self, model: str) -> StoredRollout | None:
        """The model's rollout that is not in a terminal state, if there is one."""
        return await self._one("read active rollout", rollouts.c.active_model == model)

    async def latest_rollout(self, model: str) -> StoredRollout | None:
        """The model's newest rollout, active or not."""
        found = await self._newest("read latest rollout", rollouts.c.model == model, limit=1)
        return found[0] if found else None

    async def list_rollouts(self, model: str | None = None, limit: int = 20) -> list[StoredRollout]:
        """The newest `limit` rollouts (of `model`, else of every model), newest first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        where = rollouts.c.model == model if model is not None else None
        return await self._newest("list rollouts", where, limit=limit)

    async def add_event(self, rollout_id: int, event: dict[str, Any]) -> None:
        """Appends an event (stamped now) to the rollout's history; `RolloutNotFound` for an
        unknown id."""
        text = _encode(event)

        async def run(conn: AsyncConnection) -> None:
            # INSERT ... SELECT: no row, and no foreign-key error, when the rollout is unknown.
            source = select(
                rollouts.c.id, literal(utc_now(), UtcDateTime), literal(text, Text)
            ).where(rollouts.c.id == rollout_id)
            inserted = await conn.execute(
                insert(rollout_events).from_select(["rollout_id", "at", "event"], source)
            )
            if inserted.rowcount == 0:
                raise RolloutNotFound(rollout_id)

        await self._run("add rollout event", run, write=True)

    async def events(self, rollout_id: int) -> list[RolloutEvent]:
        """The rollout's events in the order they were added (none for an unknown id)."""
        statement = (
            select(rollout_events.c.at, rollout_events.c.event)
            .where(rollout_events.c.rollout_id == rollout_id)
            .order_by(rollout_events.c.id)
        )

        async def run(conn: AsyncConnection) -> list[RolloutEvent]:
            what = f"an event of rollout {rollout_id}"
            rows = await conn.execute(statement)
            return [RolloutEvent(at=row.at, event=_decode(row.event, what)) for row in rows]

        return await self._run("read rollout events", run)

    async def _one(self, doing: str, where: ColumnElement[bool]) -> StoredRollout | None:
        async def run(conn: AsyncConnection) -> StoredRollout | None:
            return await _fetch(conn, where)

        return await self._run(doing, run)

    async def _newest(
        self, doing: str, where: ColumnElement[bool] | None, *, limit: int
    ) -> list[StoredRollout]:
        statement = select(rollouts).order_by(rollouts.c.id.desc()).limit(limit)
        if where is not None:
            statement = statement.where(where)

        async def run(conn: AsyncConnection) -> list[StoredRollout]:
            return [_rollout(row) for row in await conn.execute(statement)]

        return await self._run(doing, run)


async def _fetch(conn: AsyncConnection, where: ColumnElement[bool]) -> StoredRollout | None:
    row = (await conn.execute(select(rollouts).where(where))).first()
    return _rollout(row) if row is not None else None


def _encode(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _decode(text: str, what: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise StoreError(f"{what}: the stored JSON is not an object")
    return value


def _rollout(row: AnyRow) -> StoredRollout:
    m = row._mapping
    return StoredRollout(
        id=m["id"],
        model=m["model"],
        version=m["version"],
        experiment=m["experiment"],
        plan=_decode(m["plan"], f"the plan of rollout {m['id']}"),
        state=m["state"],
        step=m["step"],
        step_started_at=m["step_started_at"],
        previous_stable=m["previous_stable"],
        previous_canary=m["previous_canary"],
        detail=m["detail"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )
