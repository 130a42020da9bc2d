"""Feedback: the first answer for a request id stands, also when calls race."""

from __future__ import annotations

import asyncio

from server.experiments.records import Role
from server.store import ExperimentStore, FeedbackResult
from tests.store.conftest import MakePrediction


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


async def test_feedback_outcomes_are_the_verdicts_input_in_feedback_order(
    store: ExperimentStore, make_prediction: MakePrediction
) -> None:
    await store.insert_predictions(
        [
            make_prediction("r1", arm="a", predicted_class=3),
            make_prediction("r2", arm="b", predicted_class=3),
            make_prediction("r3", arm="a", predicted_class=5),
            make_prediction("r4", arm="a", status="INTERNAL", predicted_class=None),
            make_prediction("r5", arm="c", predicted_class=3),
            make_prediction("r6", arm="b", role=Role.SHADOW, predicted_class=3),
        ]
    )
    for request_id in ("r3", "r1", "r4", "r5", "r2"):  # r6 is a shadow answer to its own id
        await store.add_feedback(request_id, 3)
    outcomes = await store.feedback_outcomes("exp", ["a", "b"])
    assert outcomes == [("a", False), ("a", True), ("b", True)]
    assert await store.feedback_outcomes("other", ["a"]) == []
