"""The prediction log: inserts skip duplicates, reads by request id, report rows with feedback."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from server.experiments.records import PredictionRecord, PredictionRow, Role
from server.store import ExperimentStore

MakePrediction = Callable[..., PredictionRecord]
T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


async def test_a_batch_is_inserted_and_a_repeated_record_is_skipped(
    store: ExperimentStore, make_prediction: MakePrediction
) -> None:
    first = [make_prediction(f"req-{i}") for i in range(3)]
    assert await store.insert_predictions(first) == 3
    # The same batch again, plus one new record and a duplicate inside the batch.
    again = [*first, make_prediction("req-3"), make_prediction("req-3")]
    assert await store.insert_predictions(again) == 1
    assert await store.insert_predictions([]) == 0
    assert [row.request_id for row in await store.report_rows("exp")] == [
        "req-0",
        "req-1",
        "req-2",
        "req-3",
    ]


async def test_the_same_request_id_is_kept_once_per_experiment_and_arm(
    store: ExperimentStore, make_prediction: MakePrediction
) -> None:
    records = [
        make_prediction("r"),
        make_prediction("r", arm="b", role=Role.SHADOW),
        make_prediction("r", experiment="other"),
    ]
    assert await store.insert_predictions(records) == 3


async def test_predictions_for_returns_the_primary_records_of_every_experiment(
    store: ExperimentStore, make_prediction: MakePrediction
) -> None:
    primary = make_prediction("r", version=None, predicted_class=None, confidence=None)
    other = make_prediction("r", experiment="other", arm="x", status="UNAVAILABLE")
    shadow = make_prediction("r", arm="b", role=Role.SHADOW)
    await store.insert_predictions([primary, shadow, other, make_prediction("elsewhere")])
    assert await store.predictions_for("r") == [primary, other]
    assert await store.predictions_for("unknown") == []


async def test_report_rows_join_the_feedback_of_each_request(
    store: ExperimentStore, make_prediction: MakePrediction
) -> None:
    await store.insert_predictions(
        [
            make_prediction("r1", created_at=T0),
            make_prediction("r1", arm="b", role=Role.SHADOW, predicted_class=5, created_at=T0),
            make_prediction("r2", created_at=T0 + timedelta(seconds=1)),
            make_prediction("r3", created_at=T0 + timedelta(seconds=2)),
            make_prediction("r9", experiment="other"),
        ]
    )
    await store.add_feedback("r3", 1)
    await store.add_feedback("r1", 3)
    rows = await store.report_rows("exp")
    assert [(row.request_id, row.arm, row.true_class) for row in rows] == [
        ("r1", "a", 3),
        ("r1", "b", 3),
        ("r2", "a", None),
        ("r3", "a", 1),
    ]
    order = {row.request_id: row.feedback_order for row in rows}
    assert order["r2"] is None
    assert order["r3"] is not None and order["r1"] is not None
    assert order["r3"] < order["r1"]  # feedback arrival order, not prediction order
    assert rows[1] == PredictionRow(
        request_id="r1",
        arm="b",
        role=Role.SHADOW,
        model="cifar10",
        version=1,
        status="OK",
        predicted_class=5,
        confidence=0.75,
        latency_ms=12.5,
        created_at=T0,
        true_class=3,
        feedback_order=order["r1"],
    )
    assert await store.report_rows("nothing") == []


async def test_report_rows_since_keeps_the_records_created_at_or_after_it(
    store: ExperimentStore, make_prediction: MakePrediction
) -> None:
    await store.insert_predictions(
        [make_prediction(f"r{i}", created_at=T0 + timedelta(minutes=i)) for i in range(4)]
    )
    since = T0 + timedelta(minutes=2)
    assert [row.request_id for row in await store.report_rows("exp", since=since)] == ["r2", "r3"]
    # The same instant in another zone selects the same rows.
    local = since.astimezone(timezone(timedelta(hours=-5)))
    assert [row.request_id for row in await store.report_rows("exp", since=local)] == ["r2", "r3"]


async def test_datetimes_come_back_aware_in_utc_whatever_zone_went_in(
    store: ExperimentStore, make_prediction: MakePrediction
) -> None:
    tokyo = timezone(timedelta(hours=9))
    created = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=tokyo)
    await store.insert_predictions([make_prediction("r", created_at=created)])
    [record] = await store.predictions_for("r")
    [row] = await store.report_rows("exp")
    for value in (record.created_at, row.created_at):
        assert value == created
        assert value.utcoffset() == timedelta(0)
        assert value.tzinfo == UTC


async def test_naive_datetimes_are_refused(
    store: ExperimentStore, make_prediction: MakePrediction
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.insert_predictions([make_prediction(created_at=datetime(2026, 1, 1))])
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.report_rows("exp", since=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.prune(datetime(2026, 1, 1))


async def test_a_value_longer_than_its_column_is_refused_on_both_backends(
    store: ExperimentStore, make_prediction: MakePrediction
) -> None:
    with pytest.raises(ValueError, match=r"predictions\.request_id is longer than 128"):
        await store.insert_predictions([make_prediction("x" * 129)])
    with pytest.raises(ValueError, match=r"feedback\.request_id"):
        await store.add_feedback("x" * 129, 1)
