"""Experiment reports, computed from the store: the same on every replica and after a restart.

A report covers the calls recorded since the experiment (re)started, or since a given time (a
rollout step's window); the verdict always covers every feedback since the start, since the
sequential test reads the whole sequence. A report is recomputed at most every `cache_s` per
experiment and window, since rollout tools and dashboards poll it; concurrent readers of a stale
report share one computation. The prediction log is flushed first, so this gateway's own latest
calls are in it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from common.statistics import verdict
from server.experiments.prediction_log import PredictionLog
from server.experiments.registry import ActiveExperiment, ExperimentRegistry
from server.experiments.report import ExperimentReport, build_report
from server.gateway.errors import FailedPrecondition, NotFound, StoreUnavailable
from server.store.errors import StoreError
from server.store.repository import ExperimentStore

MAX_CACHED_REPORTS = 64


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
        self._cached: dict[tuple[str, datetime | None], tuple[float, ReportResult]] = {}
        self._computing: dict[tuple[str, datetime | None], asyncio.Task[ReportResult]] = {}

    async def report(self, name: str, since: datetime | None = None) -> ReportResult:
        active = self._registry.get(name)
        if active is None:
            raise NotFound(f"unknown experiment '{name[:128]}'; see ListExperiments")
        if self._store is None:
            raise FailedPrecondition("reports need the experiment store; set store_url")
        key = (name, since)
        cached = self._cached.get(key)
        fresh = cached is not None and time.monotonic() - cached[0] < self._cache_s
        if cached is not None and fresh and cached[1].active == active:
            return cached[1]
        task = self._computing.get(key)
        if task is None:
            task = asyncio.ensure_future(self._compute(self._store, active, since))
            self._computing[key] = task
            task.add_done_callback(lambda _: self._computing.pop(key, None))
        return await asyncio.shield(task)

    async def _compute(
        self, store: ExperimentStore, active: ActiveExperiment, since: datetime | None
    ) -> ReportResult:
        await self._log.flush()
        definition = active.definition
        windowed = since is not None and since > active.started_at
        try:
            rows = await store.report_rows(
                definition.name, since=since if windowed else active.started_at
            )
            # A window reads only its own rows, and for the verdict only the feedback outcomes
            # since the start (two columns), not every row of the experiment.
            outcomes = (
                await store.feedback_outcomes(
                    definition.name, definition.arm_names, since=active.started_at
                )
                if windowed
                else None
            )
        except StoreError as error:
            raise StoreUnavailable.because(error) from error

        def build() -> ExperimentReport:
            report = build_report(
                definition.name,
                definition.arm_names,
                definition.shadow_names,
                rows,
                definition.analysis,
                datetime.now(UTC),
            )
            if outcomes is None:
                return report
            whole = verdict(
                list(dict.fromkeys(definition.arm_names)),
                [arm for arm, _ in outcomes],
                [right for _, right in outcomes],
                definition.analysis,
            )
            return replace(report, verdict=whole)

        report = await asyncio.get_running_loop().run_in_executor(None, build)
        result = ReportResult(active, report)
        self._cached[(definition.name, since)] = (time.monotonic(), result)
        while len(self._cached) > MAX_CACHED_REPORTS:
            self._cached.pop(next(iter(self._cached)))
        return result
