"""Experiment reports, computed from the store: the same on every replica and after a restart.

A report covers the calls recorded since the experiment (re)started. It is recomputed at most
every `cache_s` per experiment, since rollout tools and dashboards poll it; concurrent readers of
a stale report share one computation. The prediction log is flushed first, so this gateway's own
latest calls are in it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from server.experiments.prediction_log import PredictionLog
from server.experiments.registry import ActiveExperiment, ExperimentRegistry
from server.experiments.report import ExperimentReport, build_report
from server.gateway.errors import FailedPrecondition, NotFound, StoreUnavailable
from server.store.errors import StoreError
from server.store.repository import ExperimentStore


@dataclass(frozen=True)
class ReportResult:
    active: ActiveExperiment
    report: ExperimentReport


class ReportService:
    def __init__(
        self,
        store: ExperimentStore | None,
        registry: ExperimentRegistry,
        prediction_log: PredictionLog,
        *,
        cache_s: float,
    ) -> None:
        self._store = store
        self._registry = registry
        self._log = prediction_log
        self._cache_s = cache_s
        self._cached: dict[str, tuple[float, ReportResult]] = {}
        self._computing: dict[str, asyncio.Task[ReportResult]] = {}

    async def report(self, name: str) -> ReportResult:
        active = self._registry.get(name)
        if active is None:
            raise NotFound(f"unknown experiment '{name[:128]}'; see ListExperiments")
        if self._store is None:
            raise FailedPrecondition("reports need the experiment store; set store_url")
        cached = self._cached.get(name)
        fresh = cached is not None and time.monotonic() - cached[0] < self._cache_s
        if cached is not None and fresh and cached[1].active == active:
            return cached[1]
        task = self._computing.get(name)
        if task is None:
            task = asyncio.ensure_future(self._compute(self._store, active))
            self._computing[name] = task
            task.add_done_callback(lambda _: self._computing.pop(name, None))
        return await asyncio.shield(task)

    async def _compute(self, store: ExperimentStore, active: ActiveExperiment) -> ReportResult:
        await self._log.flush()
        definition = active.definition
        try:
            rows = await store.report_rows(definition.name, since=active.started_at)
        except StoreError as error:
            raise StoreUnavailable.because(error) from error
        report = await asyncio.get_running_loop().run_in_executor(
            None,
            build_report,
            definition.name,
            definition.arm_names,
            definition.shadow_names,
            rows,
            definition.analysis,
            datetime.now(UTC),
        )
        result = ReportResult(active, report)
        self._cached[definition.name] = (time.monotonic(), result)
        return result
