"""Fixtures: the store migrated once per session on SQLite (a temporary file) and on a real
PostgreSQL cluster (tests/support/postgres.py), emptied before each test; the experiment store
(`store`, `pg_store`) and the rollout store (`rollout_store`, `pg_rollout_store`) on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from server.experiments.records import PredictionRecord, Role
from server.store import ExperimentStore, RolloutStore, upgrade
from server.store.schema import metadata
from tests.support.postgres import PostgresCluster, postgres_or_skip

# Generous: the machine is shared; no test depends on how long anything takes.
TIMEOUT_S = 10.0

MakePrediction = Callable[..., PredictionRecord]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    with postgres_or_skip() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresCluster) -> str:
    upgrade(postgres.url)
    return postgres.url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = sqlite_url_for(tmp_path_factory.mktemp("store") / "experiments.db")
    upgrade(url)
    return url


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """A migrated store, once on each backend."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[ExperimentStore]:
    async with await open_empty(store_url) as opened:
        yield opened


@pytest.fixture
async def pg_store(postgres_url: str) -> AsyncIterator[ExperimentStore]:
    async with await open_empty(postgres_url) as opened:
        yield opened


@pytest.fixture
async def rollout_store(store_url: str) -> AsyncIterator[RolloutStore]:
    async with await RolloutStore.open(store_url, timeout_s=TIMEOUT_S) as opened:
        await empty_tables(opened.engine)
        yield opened


@pytest.fixture
async def pg_rollout_store(postgres_url: str) -> AsyncIterator[RolloutStore]:
    async with await RolloutStore.open(postgres_url, timeout_s=TIMEOUT_S) as opened:
        await empty_tables(opened.engine)
        yield opened


@pytest.fixture
def make_prediction() -> MakePrediction:
    """Builds a primary record of experiment "exp", arm "a"; keywords override any field."""

    def make(request_id: str = "req-1", **overrides: Any) -> PredictionRecord:
        values: dict[str, Any] = {
            "request_id": request_id,
            "experiment": "exp",
            "arm": "a",
            "role": Role.PRIMARY,
            "model": "cifar10",
            "version": 1,
            "status": "OK",
            "predicted_class": 3,
            "confidence": 0.75,
            "latency_ms": 12.5,
            "created_at": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
            "gateway": "host-1:123",
        }
        values.update(overrides)
        return PredictionRecord(**values)

    return make


def sqlite_url_for(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def open_empty(url: str) -> ExperimentStore:
    store = await ExperimentStore.open(url, timeout_s=TIMEOUT_S)
    await empty_tables(store.engine)
    return store


async def empty_tables(engine: AsyncEngine) -> None:
    """Deletes every row of every table (rollout_events before rollouts: children first)."""
    async with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):  # sorted: parents before children
            await conn.execute(table.delete())
