"""Readiness: the health service says SERVING only while the gateway can answer.

A background check asks the backend, every `interval_s`, for the status of each configured
model (`GetModelStatus`, bounded by `timeout_s`). The gateway is ready while the backend answers
and at least one version of a configured model is AVAILABLE; otherwise every service of the
health service is NOT_SERVING (so a load balancer or a kubelet stops sending), and it returns to
SERVING by itself once a check succeeds again. Transitions are logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from grpc_health.v1 import health_pb2

from server.gateway.domain import ModelStatus
from server.gateway.errors import GatewayError
from server.periodic import Periodic

log = logging.getLogger(__name__)
AVAILABLE = "AVAILABLE"

StatusOf = Callable[[str], Awaitable[ModelStatus]]


class HealthSetter(Protocol):
    async def set(
        self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus
    ) -> None: ...


class ReadinessMonitor:
    def __init__(
        self,
        health: HealthSetter,
        services: Sequence[str],
        status_of: StatusOf,
        models: Callable[[], Iterable[str]],
        *,
        interval_s: float,
    ) -> None:
        self._health = health
        self._services = tuple(services)
        self._status_of = status_of
        self._models = models
        self._interval_s = max(0.05, interval_s)
        self._ready: bool | None = None
        self._reason = ""
        self._rounds = Periodic(self.check, self._interval_s, "the readiness check")

    @property
    def ready(self) -> bool:
        return bool(self._ready)

    async def check(self) -> bool:
        """Checks once and sets the health service; True when ready."""
        ready, reason = await self._probe()
        if ready != self._ready:
            if ready:
                log.info("ready: serving again" if self._ready is False else "ready")
            else:
                log.warning("not ready: %s", reason)
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if ready
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for service in self._services:
                await self._health.set(service, status)
        self._ready, self._reason = ready, reason
        return ready

    def start(self) -> None:
        self._rounds.start()

    async def close(self) -> None:
        await self._rounds.close()

    async def _probe(self) -> tuple[bool, str]:
        names = sorted(set(self._models()))
        if not names:
            return False, "no model is configured"
        reasons = []
        for name in names:
            try:
                status = await self._status_of(name)
            except GatewayError as error:
                reasons.append(f"{name}: {error.message}")
                continue
            if any(v.state == AVAILABLE for v in status.versions):
                return True, ""
            reasons.append(f"{name}: no version is AVAILABLE")
        return False, "; ".join(reasons)
