"""A database that is down, locked or unwritable makes the store raise StoreUnavailable, and a
PostgreSQL that comes back is used again without reopening the store."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from server.experiments.records import PredictionRecord
from server.store import ExperimentStore, StoreUnavailable, upgrade, upgrade_async
from tests.support.postgres import PostgresCluster

MakePrediction = Callable[..., PredictionRecord]


def every_method(
    store: ExperimentStore, record: PredictionRecord
) -> dict[str, Callable[[], Awaitable[object]]]:
    return {
        "insert_predictions": lambda: store.insert_predictions([record]),
        "predictions_for": lambda: store.predictions_for(record.request_id),
        "add_feedback": lambda: store.add_feedback(record.request_id, 1),
        "report_rows": lambda: store.report_rows("exp"),
        "list_experiments": lambda: store.list_experiments(),
        "get_experiment": lambda: store.get_experiment("exp"),
        "put_experiment": lambda: store.put_experiment(
            "exp", {}, expected_revision=None, seed_digest=None
        ),
        "end_experiment": lambda: store.end_experiment("exp"),
        "prune": lambda: store.prune(datetime(2000, 1, 1, tzinfo=UTC)),
    }


async def test_a_stopped_postgres_makes_every_method_unavailable_until_it_is_back(
    postgres: PostgresCluster, pg_store: ExperimentStore, make_prediction: MakePrediction
) -> None:
    # Pooled connections exist when the server goes away.
    assert await pg_store.insert_predictions([make_prediction("before")]) == 1
    postgres.stop()
    answered = []
    try:
        for name, call in every_method(pg_store, make_prediction("during")).items():
            try:
                await call()
            except StoreUnavailable:
                continue
            answered.append(name)
    finally:
        postgres.start()
    assert answered == []
    for call in every_method(pg_store, make_prediction("after")).values():
        await call()
    assert [r.request_id for r in await pg_store.report_rows("exp")] == ["before", "after"]


async def test_a_postgres_that_never_answers_in_time_is_unavailable(
    postgres: PostgresCluster, pg_store: ExperimentStore, make_prediction: MakePrediction
) -> None:
    blocker = await asyncpg.connect(
        host="127.0.0.1", port=postgres.port, user="postgres", database=postgres.database
    )
    impatient = ExperimentStore(pg_store.engine, timeout_s=0.5)
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StoreUnavailable):
                await impatient.insert_predictions([make_prediction("blocked")])
    finally:
        await blocker.close()
    assert await pg_store.insert_predictions([make_prediction("free")]) == 1


async def test_a_locked_sqlite_file_is_unavailable_rather_than_waited_on(
    tmp_path: Path, make_prediction: MakePrediction
) -> None:
    path = tmp_path / "experiments.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_async(url)
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")
        async with await ExperimentStore.open(url, timeout_s=0.3) as store:
            with pytest.raises(StoreUnavailable):
                await store.insert_predictions([make_prediction()])
            writer.execute("ROLLBACK")
            # The timed-out write was not interrupted (which could leave its transaction open):
            # it may still land, and the store takes the next write.
            assert await store.insert_predictions([make_prediction("next")]) == 1
    finally:
        writer.close()


def unwritable_url(tmp_path: Path) -> str:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    return f"sqlite+aiosqlite:///{not_a_directory / 'run' / 'experiments.db'}"


def test_migrating_an_unwritable_sqlite_path_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="unable to open database file"):
        upgrade(unwritable_url(tmp_path))


async def test_an_unwritable_sqlite_path_is_unavailable(
    tmp_path: Path, make_prediction: MakePrediction
) -> None:
    url = unwritable_url(tmp_path)
    with pytest.raises(StoreUnavailable, match="unable to open database file"):
        await upgrade_async(url)
    async with await ExperimentStore.open(url) as store:
        for call in every_method(store, make_prediction()).values():
            with pytest.raises(StoreUnavailable, match="unable to open database file"):
                await call()
