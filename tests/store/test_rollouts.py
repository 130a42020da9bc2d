"""Rollout state: one active rollout per model (race-safe), conditional updates, events, reads,
outages and the migration, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from server.store import (
    TERMINAL_STATES,
    ExperimentStore,
    RolloutConflict,
    RolloutEvent,
    RolloutNotFound,
    RolloutStateConflict,
    RolloutStore,
    StoredRollout,
    StoreUnavailable,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
    upgrade_async,
)
from tests.store.conftest import TIMEOUT_S, sqlite_url_for
from tests.support.postgres import PostgresCluster

PLAN = {
    "steps": [
        {"kind": "shadow", "duration_s": 600},
        {"kind": "canary", "weight": 10, "duration_s": 900},
        {"kind": "canary", "weight": 50, "duration_s": 900},
    ],
    "on_success": "promote",
}


async def create(
    store: RolloutStore,
    model: str = "cifar10",
    version: int = 2,
    *,
    state: str = "pending",
    previous_canary: int | None = None,
) -> StoredRollout:
    return await store.create_rollout(
        model,
        version,
        f"{model}-rollout",
        PLAN,
        previous_stable=1,
        previous_canary=previous_canary,
        state=state,
    )


async def test_a_rollout_is_created_before_its_first_step_and_read_back(
    rollout_store: RolloutStore,
) -> None:
    created = await create(rollout_store, previous_canary=3)
    assert (created.model, created.version, created.experiment) == ("cifar10", 2, "cifar10-rollout")
    assert (created.plan, created.state, created.step, created.detail) == (PLAN, "pending", -1, "")
    assert (created.previous_stable, created.previous_canary) == (1, 3)
    assert created.step_started_at is None
    assert created.created_at == created.updated_at and created.created_at.tzinfo == UTC
    assert await rollout_store.get_rollout(created.id) == created
    assert await rollout_store.active_rollout("cifar10") == created
    assert await rollout_store.latest_rollout("cifar10") == created
    assert await rollout_store.active_rollout("other") is None
    assert await rollout_store.latest_rollout("other") is None


async def test_a_second_rollout_of_a_model_conflicts_while_the_first_is_active(
    rollout_store: RolloutStore,
) -> None:
    first = await create(rollout_store)
    running = await rollout_store.update_rollout(first.id, state="canary", step=1)
    with pytest.raises(RolloutConflict) as conflict:
        await create(rollout_store, version=3)
    assert conflict.value.existing == running
    assert "cifar10" in str(conflict.value)
    # Another model is not affected, and the refused rollout left nothing behind.
    other = await create(rollout_store, "mnist")
    assert [r.id for r in await rollout_store.list_rollouts()] == [other.id, first.id]


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATES))
async def test_a_terminal_state_frees_the_model_for_a_new_rollout(
    rollout_store: RolloutStore, terminal: str
) -> None:
    first = await create(rollout_store)
    ended = await rollout_store.update_rollout(first.id, state=terminal, detail="done")
    assert ended.state == terminal
    assert await rollout_store.active_rollout("cifar10") is None
    second = await create(rollout_store, version=3)
    assert await rollout_store.active_rollout("cifar10") == second
    assert await rollout_store.latest_rollout("cifar10") == second
    assert await rollout_store.get_rollout(first.id) == ended


async def test_a_rollout_created_in_a_terminal_state_is_never_active(
    rollout_store: RolloutStore,
) -> None:
    active = await create(rollout_store)
    rejected = await create(rollout_store, version=3, state="rejected")
    assert rejected.state == "rejected"
    assert await rollout_store.active_rollout("cifar10") == active
    assert await rollout_store.latest_rollout("cifar10") == rejected


async def test_of_two_concurrent_creates_for_one_model_exactly_one_wins(
    store_url: str, rollout_store: RolloutStore
) -> None:
    async with await RolloutStore.open(store_url, timeout_s=TIMEOUT_S) as other:
        results = await asyncio.gather(
            create(rollout_store, version=2), create(other, version=3), return_exceptions=True
        )
        assert await other.active_rollout("cifar10") in results
    won = [result for result in results if isinstance(result, StoredRollout)]
    lost = [result for result in results if isinstance(result, RolloutConflict)]
    assert len(won) == 1 and len(lost) == 1, results
    assert lost[0].existing == won[0]
    assert await rollout_store.list_rollouts() == won


async def test_an_update_changes_only_the_fields_given(rollout_store: RolloutStore) -> None:
    created = await create(rollout_store)
    started = datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=timezone(timedelta(hours=2)))
    shadow = await rollout_store.update_rollout(
        created.id, state="shadow", step=0, step_started_at=started, detail="shadowing"
    )
    assert (shadow.state, shadow.step, shadow.detail) == ("shadow", 0, "shadowing")
    assert shadow.step_started_at == started and shadow.step_started_at.tzinfo == UTC
    assert shadow.updated_at >= created.updated_at and shadow.created_at == created.created_at
    unchanged = ("model", "version", "experiment", "plan", "previous_stable", "previous_canary")
    assert [getattr(shadow, f) for f in unchanged] == [getattr(created, f) for f in unchanged]
    noted = await rollout_store.update_rollout(created.id, detail="error rate 0.1%")
    assert (noted.state, noted.step, noted.step_started_at) == ("shadow", 0, started)
    assert noted.detail == "error rate 0.1%"
    assert await rollout_store.get_rollout(created.id) == noted


async def test_an_update_from_an_unexpected_state_conflicts_and_changes_nothing(
    rollout_store: RolloutStore,
) -> None:
    created = await create(rollout_store)
    canary = await rollout_store.update_rollout(
        created.id, state="canary", step=1, expected_state="pending"
    )
    with pytest.raises(RolloutStateConflict) as conflict:
        await rollout_store.update_rollout(
            created.id, state="aborted", step=2, detail="x", expected_state="pending"
        )
    assert conflict.value.stored == canary
    assert await rollout_store.get_rollout(created.id) == canary
    assert await rollout_store.active_rollout("cifar10") == canary


async def test_of_two_concurrent_transitions_from_one_state_exactly_one_wins(
    store_url: str, rollout_store: RolloutStore
) -> None:
    created = await create(rollout_store)
    async with await RolloutStore.open(store_url, timeout_s=TIMEOUT_S) as other:
        results = await asyncio.gather(
            rollout_store.update_rollout(created.id, state="canary", expected_state="pending"),
            other.update_rollout(created.id, state="aborted", expected_state="pending"),
            return_exceptions=True,
        )
    won = [result for result in results if isinstance(result, StoredRollout)]
    lost = [result for result in results if isinstance(result, RolloutStateConflict)]
    assert len(won) == 1 and len(lost) == 1, results
    assert lost[0].stored == won[0] == await rollout_store.get_rollout(created.id)


async def test_a_terminal_rollout_keeps_its_state(rollout_store: RolloutStore) -> None:
    created = await create(rollout_store)
    promoted = await rollout_store.update_rollout(created.id, state="promoted")
    with pytest.raises(RolloutStateConflict, match="cannot become 'canary'") as conflict:
        await rollout_store.update_rollout(created.id, state="canary")
    assert conflict.value.stored == promoted
    assert await rollout_store.active_rollout("cifar10") is None
    # Setting the state it already has again (a resumed tool repeating its last write) is fine.
    again = await rollout_store.update_rollout(created.id, state="promoted", detail="promoted v2")
    assert (again.state, again.detail) == ("promoted", "promoted v2")


async def test_events_come_back_in_the_order_they_were_added(rollout_store: RolloutStore) -> None:
    first = await create(rollout_store)
    second = await create(rollout_store, "mnist")
    before = datetime.now(UTC)
    added = [
        {"step": n, "action": "set_weight", "weights": {"v1": 100 - n, "v2": n}} for n in (3, 1, 2)
    ]
    for event in added:
        await rollout_store.add_event(first.id, event)
    await rollout_store.add_event(second.id, {"action": "other"})
    events = await rollout_store.events(first.id)
    assert [e.event for e in events] == added
    assert all(isinstance(e, RolloutEvent) and e.at.tzinfo == UTC for e in events)
    assert before - timedelta(minutes=1) <= events[0].at <= events[1].at <= events[2].at
    assert [e.event for e in await rollout_store.events(second.id)] == [{"action": "other"}]


async def test_deleting_a_rollout_deletes_its_events(rollout_store: RolloutStore) -> None:
    created = await create(rollout_store)
    await rollout_store.add_event(created.id, {"action": "start"})
    async with rollout_store.engine.begin() as conn:
        await conn.execute(text("DELETE FROM rollouts"))
    assert await rollout_store.events(created.id) == []


async def test_list_and_latest_are_newest_first(rollout_store: RolloutStore) -> None:
    assert await rollout_store.list_rollouts() == []
    ids = []
    for model, version in [("cifar10", 2), ("mnist", 5), ("cifar10", 3), ("cifar10", 4)]:
        rollout = await create(rollout_store, model, version)
        await rollout_store.update_rollout(rollout.id, state="rolled_back")
        ids.append(rollout.id)
    assert [r.id for r in await rollout_store.list_rollouts()] == ids[::-1]
    assert [r.id for r in await rollout_store.list_rollouts("cifar10")] == [ids[3], ids[2], ids[0]]
    assert [r.id for r in await rollout_store.list_rollouts("cifar10", limit=2)] == [ids[3], ids[2]]
    assert await rollout_store.list_rollouts("none") == []
    latest = await rollout_store.latest_rollout("cifar10")
    assert latest is not None and (latest.id, latest.version) == (ids[3], 4)
    with pytest.raises(ValueError, match="limit"):
        await rollout_store.list_rollouts(limit=0)


async def test_an_unknown_rollout_id(rollout_store: RolloutStore) -> None:
    unknown = (await create(rollout_store)).id + 1000
    assert await rollout_store.get_rollout(unknown) is None
    with pytest.raises(RolloutNotFound, match=f"no rollout with id {unknown}") as missing:
        await rollout_store.update_rollout(unknown, state="aborted")
    assert isinstance(missing.value, KeyError) and missing.value.rollout_id == unknown
    with pytest.raises(RolloutNotFound):
        await rollout_store.update_rollout(unknown, detail="x", expected_state="pending")
    with pytest.raises(RolloutNotFound):
        await rollout_store.add_event(unknown, {"action": "x"})
    assert await rollout_store.events(unknown) == []


async def test_bad_input_is_refused_before_the_database(rollout_store: RolloutStore) -> None:
    created = await create(rollout_store)
    with pytest.raises(ValueError, match="timezone-aware"):
        await rollout_store.update_rollout(created.id, step_started_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="longer than 128"):
        await create(rollout_store, "m" * 129)
    with pytest.raises(ValueError, match="longer than 32"):
        await rollout_store.update_rollout(created.id, state="s" * 33)
    with pytest.raises(ValueError, match="step"):
        await rollout_store.update_rollout(created.id, step=-2)
    assert await rollout_store.list_rollouts() == [created]


def every_method(store: RolloutStore, model: str) -> dict[str, Callable[[], Awaitable[object]]]:
    return {
        "create_rollout": lambda: create(store, model),
        "update_rollout": lambda: store.update_rollout(1, detail="x"),
        "get_rollout": lambda: store.get_rollout(1),
        "active_rollout": lambda: store.active_rollout(model),
        "latest_rollout": lambda: store.latest_rollout(model),
        "list_rollouts": lambda: store.list_rollouts(),
        "add_event": lambda: store.add_event(1, {"action": "x"}),
        "events": lambda: store.events(1),
    }


async def test_a_stopped_postgres_makes_every_method_unavailable_until_it_is_back(
    postgres: PostgresCluster, pg_rollout_store: RolloutStore
) -> None:
    before = await create(pg_rollout_store, "before")  # pooled connections exist
    postgres.stop()
    answered = []
    try:
        for name, call in every_method(pg_rollout_store, "during").items():
            try:
                await call()
            except StoreUnavailable:
                continue
            answered.append(name)
    finally:
        postgres.start()
    assert answered == []
    after = await create(pg_rollout_store, "after")
    await pg_rollout_store.add_event(after.id, {"action": "resumed"})
    assert [r.model for r in await pg_rollout_store.list_rollouts()] == ["after", before.model]
    assert [e.event for e in await pg_rollout_store.events(after.id)] == [{"action": "resumed"}]


async def test_an_unwritable_sqlite_path_is_unavailable(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    url = sqlite_url_for(not_a_directory / "run" / "experiments.db")
    async with await RolloutStore.open(url) as store:
        for call in every_method(store, "cifar10").values():
            with pytest.raises(StoreUnavailable, match="unable to open database file"):
                await call()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_migration_downgrades_to_0001_keeping_the_rest_and_upgrades_again(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = sqlite_url_for(tmp_path / "experiments.db")
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        url = await asyncio.to_thread(cluster.create_database, "rollouts_round_trip")
    await upgrade_async(url)
    assert await asyncio.to_thread(current_revision, url) == head_revision() == "0002"
    async with await ExperimentStore.open(url, timeout_s=TIMEOUT_S) as experiments:
        kept = await experiments.put_experiment("exp", {}, expected_revision=None, seed_digest=None)
    async with await RolloutStore.open(url, timeout_s=TIMEOUT_S) as store:
        await store.add_event((await create(store)).id, {"action": "start"})

    await asyncio.to_thread(downgrade, url, "0001")
    assert await asyncio.to_thread(current_revision, url) == "0001"
    async with await RolloutStore.open(url, timeout_s=TIMEOUT_S) as store:
        with pytest.raises(StoreUnavailable):
            await store.list_rollouts()
    async with await ExperimentStore.open(url, timeout_s=TIMEOUT_S) as experiments:
        assert await experiments.list_experiments() == [kept]

    await asyncio.to_thread(upgrade, url)
    assert await asyncio.to_thread(current_revision, url) == "0002"
    async with await RolloutStore.open(url, timeout_s=TIMEOUT_S) as store:
        assert await store.list_rollouts() == []
        created = await create(store)
        assert await store.active_rollout("cifar10") == created
