"""A step run every few seconds on the event loop until closed (store syncs, readiness checks).

A step that raises is logged and the next one runs on time: a bug in one round never stops the
rounds after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    def __init__(self, step: Callable[[], Awaitable[object]], interval_s: float, what: str) -> None:
        self._step = step
        self._interval_s = interval_s
        self._what = what
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Starts the rounds (the first one after one interval); does nothing if started."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self._step()
            except Exception:
                log.exception("%s failed; trying again in %.1f s", self._what, self._interval_s)
