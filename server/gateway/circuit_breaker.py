"""A circuit breaker for the model backend: a backend that keeps failing is failed fast.

Closed, calls go through. After `failures_to_open` backend faults in a row (UNAVAILABLE, or no
answer within the backend timeout) it opens: for `open_s` every call fails at once with
UNAVAILABLE instead of waiting. Then it lets one call through as a probe (half-open; the others
still fail fast): an answer closes it, a fault opens it again. Any answer from the backend, even
an error about the request (NOT_FOUND...), counts as the backend being alive.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from server.gateway.errors import BackendUnavailable

log = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(
        self,
        *,
        failures_to_open: int,
        open_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._failures_to_open = max(1, failures_to_open)
        self._open_s = max(0.0, open_s)
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def before_call(self) -> bool:
        """Raises BackendUnavailable while open; True when this call is the half-open probe."""
        if self._opened_at is None:
            return False
        waited = self._clock() - self._opened_at
        if waited < self._open_s or self._probing:
            left = max(0.0, self._open_s - waited)
            raise BackendUnavailable(
                f"the model backend failed {self._failures} calls in a row; failing fast while "
                f"it recovers (next try in {left:.1f} s); retry shortly"
            )
        self._probing = True
        return True

    def succeeded(self, probe: bool) -> None:
        """The backend answered (a probe, or a call started before the circuit opened)."""
        if self._opened_at is not None:
            log.info("the model backend answers again: circuit closed")
            self._opened_at = None
        if probe:
            self._probing = False
        self._failures = 0

    def failed(self, probe: bool) -> None:
        self._failures += 1
        if probe:
            self._probing = False
            self._opened_at = self._clock()
        elif self._opened_at is None and self._failures >= self._failures_to_open:
            log.warning(
                "the model backend failed %d calls in a row: circuit open for %.1f s",
                self._failures,
                self._open_s,
            )
            self._opened_at = self._clock()

    def abandoned(self, probe: bool) -> None:
        """The call ended without telling anything (cancelled by its caller)."""
        if probe:
            self._probing = False
