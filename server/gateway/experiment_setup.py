"""Builds the gateway's experiment side from its settings: store, registry, prediction log, shadow
runner, router, feedback, reports and the HTTP endpoints, and starts and stops them in order.

The store is optional and never on the serving path: a gateway whose store cannot be reached at
start still serves, routes experiments from `serving_config/experiments.toml`, and keeps trying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from imgclf.v1 import experiments_pb2

from server.experiments.definitions import load_file
from server.experiments.feedback import FeedbackService
from server.experiments.prediction_log import PredictionLog
from server.experiments.registry import ActiveExperiment, ExperimentRegistry
from server.experiments.reports import ReportService
from server.experiments.routing import ExperimentRouter
from server.experiments.shadows import ShadowRunner
from server.gateway.classification import ClassificationService
from server.gateway.domain import ModelRef
from server.gateway.errors import GatewayError
from server.gateway.experiments_servicer import report_message
from server.gateway.metrics import GatewayMetrics
from server.gateway.model_catalog import ModelCatalog
from server.gateway.models_config import ModelsConfigReader
from server.gateway.settings import GatewaySettings
from server.store.engine import create_store_engine
from server.store.errors import StoreError
from server.store.migrate import upgrade
from server.store.repository import ExperimentStore

log = logging.getLogger(__name__)
PRUNE_EVERY_S = 3600.0


def gateway_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


@dataclass
class ExperimentStack:
    store: ExperimentStore | None
    registry: ExperimentRegistry
    prediction_log: PredictionLog
    shadows: ShadowRunner
    router: ExperimentRouter
    feedback: FeedbackService
    reports: ReportService
    catalog: ModelCatalog
    retention_days: float
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def class_names(self, active: ActiveExperiment) -> tuple[str, ...]:
        """Class names of the first arm's current version, for naming predicted classes."""
        try:
            info = await self.catalog.resolve(active.definition.arms[0].model, timeout=2.0)
        except GatewayError:
            return ()
        return info.class_names

    async def report(self, name: str) -> experiments_pb2.ExperimentReport:
        return await report_message(self.reports, self.class_names, name)

    async def start(self) -> None:
        self.prediction_log.start()
        self.shadows.start()
        await self.registry.start()
        if self.store is not None and self.retention_days > 0:
            self._tasks.append(asyncio.ensure_future(self._prune_forever(self.store)))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.shadows.close()
        await self.registry.close()
        await self.prediction_log.close()
        if self.store is not None:
            await self.store.close()

    async def _prune_forever(self, store: ExperimentStore) -> None:
        while True:
            cutoff = datetime.now(UTC) - timedelta(days=self.retention_days)
            try:
                pruned = await store.prune(cutoff)
                if pruned:
                    log.info("pruned %d prediction records older than %s", pruned, cutoff)
            except StoreError as error:
                log.warning("cannot prune the prediction log: %s", error)
            await asyncio.sleep(PRUNE_EVERY_S)


async def _open_store(settings: GatewaySettings) -> ExperimentStore | None:
    if not settings.store_url:
        log.info("no experiment store (store_url is empty): experiments record nothing")
        return None
    if settings.store_migrate_on_start:
        try:
            await asyncio.get_running_loop().run_in_executor(None, upgrade, settings.store_url)
        except Exception as error:  # a store that is down must not stop the gateway
            log.warning("cannot migrate the experiment store at start: %s", error)
    engine = create_store_engine(settings.store_url, timeout_s=settings.store_timeout_s)
    return ExperimentStore(engine, timeout_s=settings.store_timeout_s)


async def build_experiments(
    settings: GatewaySettings,
    service: ClassificationService,
    catalog: ModelCatalog,
    models_config: ModelsConfigReader,
    metrics: GatewayMetrics,
) -> ExperimentStack:
    store = await _open_store(settings)
    identity = gateway_id()
    prediction_log = PredictionLog(
        store,
        max_pending=settings.prediction_log_max_pending,
        batch_size=settings.prediction_log_batch_size,
        flush_interval_s=settings.prediction_log_flush_interval_s,
        observer=metrics,
    )

    def models() -> dict[str, list[str]]:
        return {m.name: list(m.labels) for m in models_config.models()}

    registry = ExperimentRegistry(
        load_file(settings.experiments_path),
        store=store,
        models=models,
        sync_interval_s=settings.experiment_sync_interval_s,
    )

    shadows = ShadowRunner(
        lambda request, timeout, prepared: service.classify(
            request, timeout=timeout, prepared=prepared
        ),
        prediction_log,
        queue_size=settings.shadow_queue_size,
        max_queued_bytes=settings.shadow_queue_max_bytes,
        workers=settings.shadow_workers,
        timeout_s=settings.shadow_timeout_s,
        gateway_id=identity,
        observer=metrics,
    )
    router = ExperimentRouter(
        service, registry, prediction_log, shadows, gateway_id=identity, observer=metrics
    )

    async def class_names(model: str, version: int) -> tuple[str, ...]:
        return (await catalog.resolve(ModelRef(model, version=version), timeout=2.0)).class_names

    feedback = FeedbackService(
        store, prediction_log, class_names, lookup_wait_s=settings.feedback_lookup_wait_s
    )
    reports = ReportService(store, registry, prediction_log, cache_s=settings.report_cache_s)
    metrics.experiments = registry.names
    return ExperimentStack(
        store,
        registry,
        prediction_log,
        shadows,
        router,
        feedback,
        reports,
        catalog,
        settings.prediction_retention_days,
    )
