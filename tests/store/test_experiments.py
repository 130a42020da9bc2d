"""Experiment definitions: revisions, optimistic concurrency, end and restart."""

from __future__ import annotations

import asyncio
from datetime import UTC

import pytest

from server.store import ExperimentStore, RevisionConflict, StoredExperiment

DEFINITION = {"arms": [{"name": "a", "weight": 90}, {"name": "b", "weight": 10}], "sticky": True}


async def test_an_experiment_is_created_at_revision_1_and_read_back(
    store: ExperimentStore,
) -> None:
    created = await store.put_experiment(
        "exp", DEFINITION, expected_revision=None, seed_digest="ab" * 32
    )
    assert (created.name, created.definition, created.revision) == ("exp", DEFINITION, 1)
    assert created.seed_digest == "ab" * 32
    assert created.ended_at is None
    assert created.started_at == created.updated_at
    assert created.started_at.tzinfo == UTC
    assert await store.get_experiment("exp") == created
    assert await store.get_experiment("missing") is None


async def test_every_change_bumps_the_revision_and_a_stale_revision_conflicts(
    store: ExperimentStore,
) -> None:
    first = await store.put_experiment("exp", DEFINITION, expected_revision=None, seed_digest=None)
    changed = {**DEFINITION, "sticky": False}
    second = await store.put_experiment("exp", changed, expected_revision=1, seed_digest="d")
    assert (second.revision, second.definition, second.seed_digest) == (2, changed, "d")
    assert second.started_at == first.started_at
    assert second.updated_at >= first.updated_at
    with pytest.raises(RevisionConflict) as conflict:
        await store.put_experiment("exp", DEFINITION, expected_revision=1, seed_digest=None)
    assert conflict.value.stored_revision == 2
    assert await store.get_experiment("exp") == second
    # No expected revision: the change is unconditional.
    third = await store.put_experiment("exp", DEFINITION, expected_revision=None, seed_digest=None)
    assert third.revision == 3


async def test_of_two_concurrent_changes_from_one_revision_one_wins(
    store: ExperimentStore,
) -> None:
    await store.put_experiment("exp", DEFINITION, expected_revision=None, seed_digest=None)
    results = await asyncio.gather(
        *(
            store.put_experiment("exp", {"n": n}, expected_revision=1, seed_digest=None)
            for n in range(2)
        ),
        return_exceptions=True,
    )
    won = [result for result in results if isinstance(result, StoredExperiment)]
    lost = [result for result in results if isinstance(result, RevisionConflict)]
    assert len(won) == 1 and len(lost) == 1
    assert won[0].revision == 2 and lost[0].stored_revision == 2
    assert await store.get_experiment("exp") == won[0]


async def test_ending_sets_ended_at_once_and_restart_starts_it_again(
    store: ExperimentStore,
) -> None:
    created = await store.put_experiment(
        "exp", DEFINITION, expected_revision=None, seed_digest=None
    )
    ended = await store.end_experiment("exp")
    assert ended is not None and ended.ended_at is not None
    assert ended.revision == 2 and ended.definition == DEFINITION
    assert await store.end_experiment("exp") == ended  # already ended: unchanged
    assert await store.end_experiment("missing") is None
    # A change without restart keeps it ended.
    edited = await store.put_experiment("exp", DEFINITION, expected_revision=2, seed_digest=None)
    assert (edited.revision, edited.ended_at, edited.started_at) == (
        3,
        ended.ended_at,
        created.started_at,
    )
    restarted = await store.put_experiment(
        "exp", {"v": 2}, expected_revision=3, seed_digest="s", restart=True
    )
    assert restarted.revision == 4 and restarted.ended_at is None
    assert restarted.started_at > created.started_at
    assert restarted.definition == {"v": 2}


async def test_list_experiments_returns_all_by_name(store: ExperimentStore) -> None:
    assert await store.list_experiments() == []
    for name in ("b", "a", "c"):
        await store.put_experiment(name, {"name": name}, expected_revision=None, seed_digest=None)
    await store.end_experiment("c")
    listed = await store.list_experiments()
    assert [(e.name, e.definition, e.ended_at is None) for e in listed] == [
        ("a", {"name": "a"}, True),
        ("b", {"name": "b"}, True),
        ("c", {"name": "c"}, False),
    ]
