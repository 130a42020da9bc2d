"""The prediction log against a real store: a flush ends under a load that never lets the
buffer empty, having written every record that was waiting when it was called."""

from __future__ import annotations

import asyncio
import itertools

from server.experiments.prediction_log import PredictionLog
from server.store import ExperimentStore
from tests.store.conftest import MakePrediction


async def test_a_flush_under_endless_arrivals_ends_and_writes_what_was_waiting(
    store: ExperimentStore, make_prediction: MakePrediction
) -> None:
    log = PredictionLog(store, max_pending=100_000, batch_size=20, flush_interval_s=60.0)
    ids = itertools.count()
    before = [make_prediction(f"before-{next(ids)}") for _ in range(200)]
    for record in before:
        log.record(record)

    async def keep_calling() -> None:
        # 50 records a millisecond, far more than a batch write takes: the buffer never empties.
        # (A real pause, not sleep(0), so the store's thread is not starved of the GIL.)
        while True:
            for _ in range(50):
                log.record(make_prediction(f"after-{next(ids)}"))
            await asyncio.sleep(0.001)

    caller = asyncio.ensure_future(keep_calling())
    try:
        async with asyncio.timeout(30):
            assert await log.flush()
    finally:
        caller.cancel()
    assert log.pending > 0
    for record in before:
        assert await store.predictions_for(record.request_id) == [record]
        assert log.unwritten(record.request_id) is None
