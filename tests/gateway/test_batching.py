"""The micro-batcher on its own: coalescing, the size cap, the in-flight limit, cancellation and
deadlines, with a backend stand-in that records what it is asked and answers each image with
its own pixel sum (so every caller can check it got its own row)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from server.gateway.batching import DirectPredictor, MicroBatcher


class RecordingBackend:
    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.batches: list[int] = []
        self.timeouts: list[float | None] = []
        self.release = asyncio.Event()
        self.release.set()

    async def predict(
        self, model: str, version: int, images: np.ndarray, *, timeout: float | None
    ) -> np.ndarray:
        self.batches.append(len(images))
        self.timeouts.append(timeout)
        await self.release.wait()
        await asyncio.sleep(self.delay)
        return images.reshape(len(images), -1).sum(axis=1, keepdims=True).astype(np.float32)


def image(value: int) -> np.ndarray:
    return np.full((2, 2, 3), value, dtype=np.uint8)


async def test_each_caller_gets_its_own_row_and_batches_form_under_load() -> None:
    backend = RecordingBackend()
    batcher = MicroBatcher(backend.predict, max_batch_size=8, max_wait_s=1.0, max_in_flight=1)
    rows = await asyncio.gather(
        *(batcher.predict_one("m", 1, image(i), timeout=5) for i in range(20))
    )
    assert [float(r[0]) for r in rows] == [12.0 * i for i in range(20)]
    assert backend.batches[0] == 1  # an idle backend gets the first request at once
    assert sum(backend.batches) == 20
    assert max(backend.batches) == 8
    assert len(backend.batches) < 20


async def test_versions_are_never_mixed_in_one_batch() -> None:
    seen: list[tuple[str, int, int]] = []

    async def predict(
        model: str, version: int, images: np.ndarray, *, timeout: float | None
    ) -> np.ndarray:
        seen.append((model, version, len(images)))
        await asyncio.sleep(0.01)
        return np.zeros((len(images), 1), np.float32)

    batcher = MicroBatcher(predict, max_batch_size=32, max_wait_s=1.0, max_in_flight=1)
    await asyncio.gather(
        *(batcher.predict_one("m", 1 + i % 2, image(i), timeout=None) for i in range(10))
    )
    assert sum(n for _, v, n in seen if v == 1) == 5
    assert sum(n for _, v, n in seen if v == 2) == 5


async def test_max_wait_sends_a_batch_while_the_backend_is_busy() -> None:
    backend = RecordingBackend()
    backend.release.clear()
    batcher = MicroBatcher(backend.predict, max_batch_size=64, max_wait_s=0.05, max_in_flight=1)
    first = asyncio.ensure_future(batcher.predict_one("m", 1, image(1), timeout=5))
    await asyncio.sleep(0.01)
    waiting = [
        asyncio.ensure_future(batcher.predict_one("m", 1, image(2), timeout=5)) for _ in range(3)
    ]
    await asyncio.sleep(0.2)
    assert backend.batches == [1, 3]  # the timer sent the 3 although one batch was in flight
    backend.release.set()
    await asyncio.gather(first, *waiting)


async def test_a_cancelled_caller_gives_up_its_place() -> None:
    backend = RecordingBackend()
    backend.release.clear()
    batcher = MicroBatcher(backend.predict, max_batch_size=64, max_wait_s=10.0, max_in_flight=1)
    first = asyncio.ensure_future(batcher.predict_one("m", 1, image(1), timeout=5))
    await asyncio.sleep(0.01)
    stays = asyncio.ensure_future(batcher.predict_one("m", 1, image(2), timeout=5))
    leaves = asyncio.ensure_future(batcher.predict_one("m", 1, image(3), timeout=5))
    await asyncio.sleep(0.01)
    leaves.cancel()
    backend.release.set()
    assert float((await first)[0]) == 12.0
    assert float((await stays)[0]) == 24.0
    with pytest.raises(asyncio.CancelledError):
        await leaves
    assert backend.batches == [1, 1]


async def test_the_batch_gets_the_longest_remaining_deadline() -> None:
    backend = RecordingBackend()
    backend.release.clear()
    batcher = MicroBatcher(backend.predict, max_batch_size=64, max_wait_s=10.0, max_in_flight=1)
    first = asyncio.ensure_future(batcher.predict_one("m", 1, image(1), timeout=5))
    await asyncio.sleep(0.01)
    pending = [
        asyncio.ensure_future(batcher.predict_one("m", 1, image(2), timeout=t)) for t in (0.5, 3.0)
    ]
    backend.release.set()
    await asyncio.gather(first, *pending)
    assert backend.batches == [1, 2]
    assert backend.timeouts[1] is not None and 2.5 < backend.timeouts[1] <= 3.0


async def test_a_backend_error_reaches_every_caller_of_the_batch() -> None:
    async def failing(
        model: str, version: int, images: np.ndarray, *, timeout: float | None
    ) -> np.ndarray:
        raise RuntimeError("backend exploded")

    batcher = MicroBatcher(failing, max_batch_size=4, max_wait_s=0.01, max_in_flight=1)
    results = await asyncio.gather(
        *(batcher.predict_one("m", 1, image(i), timeout=1) for i in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_direct_predictor_sends_each_image_alone() -> None:
    backend = RecordingBackend(delay=0)
    direct = DirectPredictor(backend.predict)
    rows = await asyncio.gather(
        *(direct.predict_one("m", 1, image(i), timeout=1) for i in range(5))
    )
    assert [float(r[0]) for r in rows] == [12.0 * i for i in range(5)]
    assert backend.batches == [1] * 5
