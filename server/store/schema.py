"""The store's tables (SQLAlchemy Core). Migrations create them; this is what they must match.

Datetimes are stored as UTC: `UtcDateTime` converts aware values to UTC on the way in and
returns aware UTC values on the way out (SQLite keeps no zone and hands back naive values).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

# Deterministic constraint and index names, so that migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# 64-bit on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is an alias of the auto-assigned rowid.
Id = BigInteger().with_variant(Integer, "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that only ever holds and returns timezone-aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass a timezone-aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


predictions = Table(
    "predictions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False),
    Column("experiment", String(128), nullable=False),
    Column("arm", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", BigInteger, nullable=True),
    Column("status", String(32), nullable=False),
    Column("predicted_class", Integer, nullable=True),
    Column("confidence", Float, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("gateway", String(128), nullable=False),
    # Its index also serves the reads by request_id (feedback, prune): no second index needed.
    UniqueConstraint("request_id", "experiment", "arm"),
    Index(None, "experiment", "created_at"),
    sqlite_autoincrement=True,
)

feedback = Table(
    "feedback",
    metadata,
    # The arrival order of feedback, read by the sequential test: never reused (AUTOINCREMENT).
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False),
    Column("true_class", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("request_id"),
    sqlite_autoincrement=True,
)

experiments = Table(
    "experiments",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("definition", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("seed_digest", String(64), nullable=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
)

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("experiment", String(128), nullable=False),
    Column("plan", Text, nullable=False),
    Column("state", String(32), nullable=False),
    # Index into the plan's steps; -1 before the first.
    Column("step", Integer, nullable=False),
    Column("step_started_at", UtcDateTime, nullable=True),
    Column("previous_stable", BigInteger, nullable=True),
    Column("previous_canary", BigInteger, nullable=True),
    Column("detail", Text, nullable=False, server_default=""),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The model while the rollout is not in a terminal state, NULL once it is. NULLs never
    # collide, so the unique constraint allows one active rollout per model, race-safely.
    Column("active_model", String(128), nullable=True),
    UniqueConstraint("active_model"),
    Index(None, "model", "id"),
    sqlite_autoincrement=True,
)

rollout_events = Table(
    "rollout_events",
    metadata,
    # The order of a rollout's events: never reused (AUTOINCREMENT).
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "rollout_id",
        BigInteger,
        ForeignKey("rollouts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("at", UtcDateTime, nullable=False),
    Column("event", Text, nullable=False),
    Index(None, "rollout_id", "id"),
    sqlite_autoincrement=True,
)
