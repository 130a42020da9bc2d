"""The prediction log: records of calls made through experiments, written in batches off the path.

`record()` never waits and never fails: it appends to a bounded in-memory buffer. A background
task writes the buffer to the store every `flush_interval_s` (or as soon as a batch is full), one
batch per round trip. While the store is slow or down the records wait in the buffer and the
write is retried with a growing pause; once the buffer is full, new records are dropped and
counted (reason `overflow`), so memory stays bounded and no call ever waits on the store. A
batch the store refuses as invalid is dropped and counted (reason `rejected`).
Without a store every record is dropped and counted (reason `no_store`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from server.experiments.records import PredictionRecord, Role
from server.store.errors import StoreError, StoreUnavailable

log = logging.getLogger(__name__)
MAX_RETRY_PAUSE_S = 5.0


class PredictionSink(Protocol):
    async def insert_predictions(self, records: Sequence[PredictionRecord]) -> int: ...


class LogObserver(Protocol):
    def log_written(self, count: int) -> None: ...
    def log_dropped(self, reason: str, count: int) -> None: ...
    def log_pending(self, count: int) -> None: ...
    def store_up(self, up: bool) -> None: ...


class PredictionLog:
    def __init__(
        self,
        sink: PredictionSink | None,
        *,
        max_pending: int,
        batch_size: int,
        flush_interval_s: float,
        observer: LogObserver | None = None,
    ) -> None:
        self._sink = sink
        self._max_pending = max(1, max_pending)
        self._batch_size = max(1, batch_size)
        self._interval = max(0.001, flush_interval_s)
        self._observer = observer
        self._pending: deque[PredictionRecord] = deque()
        # Primary records not yet written, by request id, for Feedback to find at once.
        self._unwritten: dict[str, PredictionRecord] = {}
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def unwritten(self, request_id: str) -> PredictionRecord | None:
        """The primary record of `request_id` if it is still waiting to be written."""
        return self._unwritten.get(request_id)

    def start(self) -> None:
        if self._task is None and self._sink is not None:
            self._task = asyncio.ensure_future(self._run())

    def record(self, record: PredictionRecord) -> None:
        """Queues one record for the store; drops it (counted) when that cannot be done."""
        if self._sink is None:
            self._dropped("no_store", 1)
            return
        if len(self._pending) >= self._max_pending:
            self._dropped("overflow", 1)
            return
        self._pending.append(record)
        if record.role is Role.PRIMARY:
            self._unwritten[record.request_id] = record
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def flush(self) -> bool:
        """Writes the records pending now; False when the store refused (records kept).

        Records that arrive meanwhile are left to the writer, so a flush ends under any load.
        """
        return await self._drain(len(self._pending))

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stops the writer after a last attempt (bounded by `timeout_s`) to write what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._pending and self._sink is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain(), timeout_s)
        if self._pending:
            self._dropped("shutdown", len(self._pending))
            self._pending.clear()
            self._unwritten.clear()

    async def _run(self) -> None:
        while True:
            pause = self._interval
            if self._failures:
                pause = min(MAX_RETRY_PAUSE_S, self._interval * 2**self._failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
            self._wake.clear()
            await self._drain()

    async def _drain(self, most: int | None = None) -> bool:
        """Writes at most `most` records (default: those pending once the writer's turn comes)."""
        assert self._sink is not None
        async with self._write_lock:
            budget = len(self._pending) if most is None else most
            while self._pending and budget > 0:
                budget -= min(self._batch_size, len(self._pending))
                batch = [
                    self._pending.popleft()
                    for _ in range(min(self._batch_size, len(self._pending)))
                ]
                try:
                    await self._sink.insert_predictions(batch)
                except StoreUnavailable as error:
                    self._pending.extendleft(reversed(batch))
                    self._overflowed()
                    self._failures += 1
                    if self._failures == 1 or self._failures % 20 == 0:
                        log.warning(
                            "cannot write the prediction log (%d records waiting): %s",
                            len(self._pending),
                            error,
                        )
                    self._report(up=False)
                    return False
                except StoreError as error:
                    log.error("the store refused %d prediction records: %s", len(batch), error)
                    self._dropped("rejected", len(batch))
                    for refused in batch:
                        self._unwritten.pop(refused.request_id, None)
                    continue
                for written in batch:
                    if written.role is Role.PRIMARY:
                        self._unwritten.pop(written.request_id, None)
                if self._failures:
                    log.info("the prediction log is being written again")
                self._failures = 0
                if self._observer is not None:
                    self._observer.log_written(len(batch))
            self._report(up=True)
            return True

    def _overflowed(self) -> None:
        excess = len(self._pending) - self._max_pending
        if excess > 0:
            for _ in range(excess):
                self._unwritten.pop(self._pending.pop().request_id, None)
            self._dropped("overflow", excess)

    def _dropped(self, reason: str, count: int) -> None:
        if self._observer is not None:
            self._observer.log_dropped(reason, count)

    def _report(self, *, up: bool) -> None:
        if self._observer is not None:
            self._observer.store_up(up)
            self._observer.log_pending(len(self._pending))
