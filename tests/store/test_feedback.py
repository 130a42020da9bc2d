"""Feedback: the first answer for a request id stands, also when calls race."""

from __future__ import annotations

import asyncio

from server.store import ExperimentStore, FeedbackResult


async def test_feedback_is_recorded_then_a_repeat_is_a_duplicate_and_another_class_a_conflict(
    store: ExperimentStore,
) -> None:
    assert await store.add_feedback("r", 4) == FeedbackResult("recorded", 4)
    assert await store.add_feedback("r", 4) == FeedbackResult("duplicate", 4)
    assert await store.add_feedback("r", 7) == FeedbackResult("conflict", 4)
    assert await store.add_feedback("other", 7) == FeedbackResult("recorded", 7)


async def test_feedback_does_not_need_a_logged_prediction(store: ExperimentStore) -> None:
    # Whether the request id is known is the caller's check, not the store's.
    assert (await store.add_feedback("never-logged", 0)).outcome == "recorded"


async def test_concurrent_feedback_for_one_request_records_exactly_one_answer(
    store: ExperimentStore,
) -> None:
    # Two replicas (two engines) and several calls in flight at once on each.
    other = await ExperimentStore.open(store.engine.url.render_as_string(hide_password=False))
    try:
        classes = [1, 2, 1, 2, 3, 1]
        results = await asyncio.gather(
            *(
                (store if i % 2 else other).add_feedback("race", true_class)
                for i, true_class in enumerate(classes)
            )
        )
    finally:
        await other.close()
    recorded = [result for result in results if result.outcome == "recorded"]
    assert len(recorded) == 1
    stored = recorded[0].true_class
    for true_class, result in zip(classes, results, strict=True):
        assert result.true_class == stored
        if result.outcome != "recorded":
            assert result.outcome == ("duplicate" if true_class == stored else "conflict")
    assert await store.add_feedback("race", stored) == FeedbackResult("duplicate", stored)
