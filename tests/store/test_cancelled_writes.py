"""A write cancelled in the middle of its transaction (the caller went away, a flush was
stopped at shutdown) leaves the store usable: the next write and read work, on SQLite (one
writer at a time, a transaction left open would lock the file) and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from server.experiments.records import PredictionRecord
from server.store import ExperimentStore

MakePrediction = Callable[..., PredictionRecord]


async def test_a_write_cancelled_mid_transaction_leaves_the_store_writable(
    store: ExperimentStore, make_prediction: MakePrediction
) -> None:
    big = [make_prediction(f"bulk-{i}") for i in range(20_000)]
    for delay in (0.005, 0.02, 0.05, 0.1):
        write = asyncio.ensure_future(store.insert_predictions(big))
        await asyncio.sleep(delay)
        write.cancel()
        await asyncio.gather(write, return_exceptions=True)
        assert await store.insert_predictions([make_prediction(f"after-{delay}")]) == 1
        assert [r.request_id for r in await store.predictions_for(f"after-{delay}")] == [
            f"after-{delay}"
        ]
