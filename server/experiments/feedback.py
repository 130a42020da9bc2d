"""Ground truth for earlier calls: `Feedback(request_id, true class)`.

The request id must belong to a call made through an experiment. Its record may still be in this
gateway's buffer (then it is found there, and the feedback is stored at once: the store does not
need the prediction row first), or in another replica's: then the store is asked again for up to
`lookup_wait_s` before the answer is NOT_FOUND. A class
given by name is mapped with the class names of the version that served the call. The first
answer stands: the same answer again is a safe retry, a different one is ALREADY_EXISTS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server.experiments.prediction_log import PredictionLog
from server.experiments.records import PredictionRecord
from server.gateway.errors import (
    AlreadyExists,
    FailedPrecondition,
    GatewayError,
    InvalidRequest,
    NotFound,
    StoreUnavailable,
)
from server.store.errors import StoreError
from server.store.repository import ExperimentStore

MAX_REQUEST_ID_LENGTH = 128
LOOKUP_POLL_S = 0.1
ClassNames = Callable[[str, int], Awaitable[tuple[str, ...]]]


@dataclass(frozen=True)
class FeedbackOutcome:
    duplicate: bool
    class_index: int
    class_name: str
    experiment: str


class FeedbackService:
    def __init__(
        self,
        store: ExperimentStore | None,
        prediction_log: PredictionLog,
        class_names: ClassNames,
        *,
        lookup_wait_s: float,
    ) -> None:
        self._store = store
        self._log = prediction_log
        self._class_names = class_names
        self._wait = lookup_wait_s

    async def feedback(self, request_id: str, true_class: int | str) -> FeedbackOutcome:
        if not request_id:
            raise InvalidRequest("request_id is required: the id of the ClassifyResponse")
        if len(request_id) > MAX_REQUEST_ID_LENGTH:
            raise InvalidRequest(f"request_id is longer than {MAX_REQUEST_ID_LENGTH} characters")
        if isinstance(true_class, str) and not true_class:
            raise InvalidRequest("the true class is required: set class_index or class_name")
        if isinstance(true_class, int) and true_class < 0:
            raise InvalidRequest(f"class_index must be >= 0, got {true_class}")
        if self._store is None:
            raise FailedPrecondition("feedback needs the experiment store; set store_url")
        record = await self._find(self._store, request_id)
        names = await self._names_of(record)
        index = self._index(true_class, names, record)
        try:
            stored = await self._store.add_feedback(request_id, index)
        except StoreError as error:
            raise StoreUnavailable.because(error) from error
        name = names[stored.true_class] if stored.true_class < len(names) else ""
        if stored.outcome == "conflict":
            raise AlreadyExists(
                f"feedback for request '{request_id}' already says class {stored.true_class}"
                + (f" ('{name}')" if name else "")
                + "; the first answer stands"
            )
        return FeedbackOutcome(
            stored.outcome == "duplicate", stored.true_class, name, record.experiment
        )

    async def _find(self, store: ExperimentStore, request_id: str) -> PredictionRecord:
        local = self._log.unwritten(request_id)
        if local is not None:
            return local
        deadline = time.monotonic() + self._wait
        while True:
            try:
                found = await store.predictions_for(request_id)
            except StoreError as error:
                raise StoreUnavailable.because(error) from error
            if found:
                return found[0]
            local = self._log.unwritten(request_id)
            if local is not None:
                return local
            if time.monotonic() >= deadline:
                raise NotFound(
                    f"no call with request id '{request_id}' went through an experiment "
                    "(feedback is only kept for experiment calls)"
                )
            await asyncio.sleep(LOOKUP_POLL_S)

    async def _names_of(self, record: PredictionRecord) -> tuple[str, ...]:
        if record.version is None:
            return ()
        try:
            return await self._class_names(record.model, record.version)
        except GatewayError:
            return ()  # the version is gone: indices are still accepted

    @staticmethod
    def _index(true_class: int | str, names: tuple[str, ...], record: PredictionRecord) -> int:
        if isinstance(true_class, int):
            if names and true_class >= len(names):
                raise InvalidRequest(
                    f"class_index {true_class} is out of range: '{record.model}' has "
                    f"{len(names)} classes (0..{len(names) - 1})"
                )
            return true_class
        if not names:
            raise FailedPrecondition(
                f"the class names of '{record.model}' version {record.version} are not "
                "available (is it still loaded?); send class_index instead"
            )
        if true_class not in names:
            raise InvalidRequest(
                f"unknown class '{true_class[:64]}' for '{record.model}'; "
                f"classes: {', '.join(names)}"
            )
        return names.index(true_class)
