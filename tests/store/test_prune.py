"""Retention: prune deletes old records and the feedback nothing refers to any more."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from server.experiments.records import PredictionRecord
from server.store import ExperimentStore
from server.store.schema import feedback

MakePrediction = Callable[..., PredictionRecord]
T0 = datetime(2026, 3, 1, tzinfo=UTC)


async def test_prune_deletes_old_records_and_orphaned_feedback(
    store: ExperimentStore, make_prediction: MakePrediction
) -> None:
    await store.insert_predictions(
        [
            make_prediction("old", created_at=T0 - timedelta(days=2)),
            make_prediction("old", arm="b", created_at=T0 - timedelta(days=2)),
            # One record of this request is old, the other new: its feedback stays.
            make_prediction("mixed", created_at=T0 - timedelta(days=2)),
            make_prediction("mixed", experiment="other", created_at=T0),
            make_prediction("new", created_at=T0),
        ]
    )
    for request_id in ("old", "mixed", "new"):
        await store.add_feedback(request_id, 1)
    assert await store.prune(T0 - timedelta(days=1)) == 3
    assert await store.predictions_for("old") == []
    assert [r.experiment for r in await store.predictions_for("mixed")] == ["other"]
    async with store.engine.connect() as conn:
        kept = set((await conn.execute(select(feedback.c.request_id))).scalars())
    assert kept == {"mixed", "new"}
    # Feedback for the pruned request can be given again (and is new).
    assert (await store.add_feedback("old", 2)).outcome == "recorded"
    assert await store.prune(T0 - timedelta(days=1)) == 0


async def test_prune_keeps_a_record_created_exactly_at_the_cutoff(
    store: ExperimentStore, make_prediction: MakePrediction
) -> None:
    await store.insert_predictions([make_prediction("r", created_at=T0)])
    assert await store.prune(T0) == 0
    assert await store.prune(T0 + timedelta(microseconds=1)) == 1
