"""Micro-batching: concurrent predictions for one model version become one backend call.

Requests for a (model, version) join its open batch. The batch is sent at once while fewer than
`max_in_flight` batches of that version are at the backend, so an unloaded gateway adds no wait.
Otherwise it grows until it holds `max_batch_size` images, a batch in flight comes back, or
`max_wait_s` passes since it opened, whichever comes first: under load, batches form from the
requests that arrive while the backend is busy. A caller whose call is cancelled (or whose
deadline passes) gives up its place: its future is cancelled, and a batch skips cancelled
entries when it is sent. The backend call gets the longest remaining deadline of its entries, so
one impatient caller cannot fail the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

PredictBatch = Callable[..., Awaitable[np.ndarray]]


class BatchObserver(Protocol):
    def batch_sent(self, size: int) -> None: ...
    def queued(self, seconds: float) -> None: ...
    def backend_called(self, seconds: float) -> None: ...


@dataclass
class _Entry:
    image: np.ndarray
    future: asyncio.Future[np.ndarray]
    enqueued: float
    deadline: float | None


@dataclass
class _OpenBatch:
    entries: list[_Entry] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class MicroBatcher:
    def __init__(
        self,
        predict: PredictBatch,
        *,
        max_batch_size: int,
        max_wait_s: float,
        max_in_flight: int = 2,
        observer: BatchObserver | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self._predict = predict
        self._max_batch_size = max_batch_size
        self._max_wait_s = max(0.0, max_wait_s)
        self._max_in_flight = max(1, max_in_flight)
        self._observer = observer
        self._busy: dict[tuple[str, int], int] = {}
        self._open: dict[tuple[str, int], _OpenBatch] = {}
        self._in_flight: set[asyncio.Task[None]] = set()

    async def predict_one(
        self, model: str, version: int, image: np.ndarray, *, timeout: float | None
    ) -> np.ndarray:
        """The probabilities for one image, predicted together with its concurrent peers."""
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        entry = _Entry(
            image=image,
            future=loop.create_future(),
            enqueued=now,
            deadline=None if timeout is None else now + timeout,
        )
        key = (model, version)
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = _OpenBatch()
            batch.timer = loop.call_later(self._max_wait_s, self._send, key, batch)
        batch.entries.append(entry)
        if (
            len(batch.entries) >= self._max_batch_size
            or self._busy.get(key, 0) < self._max_in_flight
        ):
            self._send(key, batch)
        return await entry.future

    def _send(self, key: tuple[str, int], batch: _OpenBatch) -> None:
        if self._open.get(key) is batch:
            del self._open[key]
        if batch.timer is not None:
            batch.timer.cancel()
        live = [e for e in batch.entries if not e.future.done()]
        batch.entries.clear()
        if live:
            self._busy[key] = self._busy.get(key, 0) + 1
            task = asyncio.ensure_future(self._run(key, live))
            self._in_flight.add(task)
            task.add_done_callback(lambda done: self._batch_done(key, done))

    def _batch_done(self, key: tuple[str, int], task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._busy[key] -= 1
        if not self._busy[key]:
            del self._busy[key]
        waiting = self._open.get(key)
        if waiting is not None and self._busy.get(key, 0) < self._max_in_flight:
            self._send(key, waiting)

    async def _run(self, key: tuple[str, int], entries: list[_Entry]) -> None:
        now = time.monotonic()
        if self._observer is not None:
            self._observer.batch_sent(len(entries))
            for entry in entries:
                self._observer.queued(now - entry.enqueued)
        deadlines = [e.deadline for e in entries if e.deadline is not None]
        timeout = None if len(deadlines) < len(entries) else max(0.0, max(deadlines) - now)
        try:
            probabilities = await self._predict(
                key[0], key[1], np.stack([e.image for e in entries]), timeout=timeout
            )
            if self._observer is not None:
                self._observer.backend_called(time.monotonic() - now)
        except Exception as error:
            for entry in entries:
                if not entry.future.done():
                    entry.future.set_exception(error)
            return
        for entry, row in zip(entries, probabilities, strict=True):
            if not entry.future.done():
                entry.future.set_result(row)

    async def close(self) -> None:
        """Sends what is still open and waits for the batches in flight."""
        for key, batch in list(self._open.items()):
            self._send(key, batch)
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)


class DirectPredictor:
    """The off switch: every image is its own backend call (same interface as MicroBatcher)."""

    def __init__(self, predict: PredictBatch, *, observer: BatchObserver | None = None) -> None:
        self._predict = predict
        self._observer = observer

    async def predict_one(
        self, model: str, version: int, image: np.ndarray, *, timeout: float | None
    ) -> np.ndarray:
        started = time.monotonic()
        probabilities = await self._predict(model, version, image[np.newaxis], timeout=timeout)
        if self._observer is not None:
            self._observer.batch_sent(1)
            self._observer.backend_called(time.monotonic() - started)
        first: np.ndarray = probabilities[0]
        return first

    async def close(self) -> None:
        return None
