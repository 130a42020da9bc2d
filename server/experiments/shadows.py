"""Shadow arms: copies of experiment traffic, answered off the caller's path and only recorded.

The caller's answer is sent before its shadow copies are looked at: `submit()` only puts a job on
a bounded queue and returns. A few worker tasks take jobs and classify them with the shadow arm's
model, each with its own timeout; the answer, or its error, becomes a prediction-log record under
the primary call's request id. A full queue drops the copy and counts it; nothing a shadow does
reaches the caller. The queue is bounded twice: in jobs and in the image bytes they hold.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from server.experiments.definitions import ShadowArm
from server.experiments.prediction_log import PredictionLog
from server.experiments.records import PredictionRecord, Role
from server.gateway.classification import PreparedImages
from server.gateway.domain import Classification, ClassifyInput
from server.gateway.errors import GatewayError
from server.gateway.interceptor import status_for

log = logging.getLogger(__name__)
CLOSE_TIMEOUT_S = 5.0
ShadowClassify = Callable[[ClassifyInput, float, PreparedImages], Awaitable[Classification]]


class ShadowObserver(Protocol):
    def shadow_finished(self, experiment: str, arm: str, outcome: str) -> None: ...


@dataclass(frozen=True)
class ShadowJob:
    experiment: str
    shadow: ShadowArm
    request: ClassifyInput
    # The primary call's decoded pixels, reused when the shadow's input size is the same.
    prepared: PreparedImages


class ShadowRunner:
    def __init__(
        self,
        classify: ShadowClassify,
        prediction_log: PredictionLog,
        *,
        queue_size: int,
        max_queued_bytes: int,
        workers: int,
        timeout_s: float,
        gateway_id: str,
        observer: ShadowObserver | None = None,
    ) -> None:
        self._classify = classify
        self._log = prediction_log
        self._queue: asyncio.Queue[ShadowJob] = asyncio.Queue(maxsize=max(1, queue_size))
        self._max_bytes = max_queued_bytes
        self._queued_bytes = 0
        self._worker_count = max(1, workers)
        self._timeout = timeout_s
        self._gateway_id = gateway_id
        self._observer = observer
        self._workers: list[asyncio.Task[None]] = []

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        if not self._workers:
            self._workers = [asyncio.ensure_future(self._work()) for _ in range(self._worker_count)]

    def submit(self, job: ShadowJob) -> bool:
        """Queues a shadow copy; False (and counted as dropped) when the queue is full."""
        cost = job.request.image_bytes()
        if self._queued_bytes + cost > self._max_bytes:
            self._finished(job, "dropped")
            return False
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._finished(job, "dropped")
            return False
        self._queued_bytes += cost
        return True

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        if self._workers:
            await asyncio.wait(self._workers, timeout=CLOSE_TIMEOUT_S)
        self._workers = []

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            self._queued_bytes -= job.request.image_bytes()
            try:
                await self._run(job)
            except Exception:
                log.exception("shadow copy failed unexpectedly")
            finally:
                self._queue.task_done()

    async def _run(self, job: ShadowJob) -> None:
        started = time.monotonic()
        request = job.request
        model, version, status = job.shadow.model.name, None, "OK"
        predicted: int | None = None
        confidence: float | None = None
        try:
            result = await asyncio.wait_for(
                self._classify(request, self._timeout, job.prepared), self._timeout
            )
            version = result.version
            if result.scores:
                predicted, confidence = result.scores[0].index, result.scores[0].probability
        except GatewayError as error:
            status = status_for(error).name
        except TimeoutError:
            status = "DEADLINE_EXCEEDED"
        self._finished(job, "ok" if status == "OK" else "error")
        self._log.record(
            PredictionRecord(
                request_id=request.request_id,
                experiment=job.experiment,
                arm=job.shadow.name,
                role=Role.SHADOW,
                model=model,
                version=version,
                status=status,
                predicted_class=predicted,
                confidence=confidence,
                latency_ms=(time.monotonic() - started) * 1000,
                created_at=datetime.now(UTC),
                gateway=self._gateway_id,
            )
        )

    def _finished(self, job: ShadowJob, outcome: str) -> None:
        if self._observer is not None:
            self._observer.shadow_finished(job.experiment, job.shadow.name, outcome)
