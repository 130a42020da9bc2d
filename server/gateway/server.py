"""Builds the gateway's gRPC server: servicer, error interceptor, health, reflection, limits.

`create_server(settings)` returns a started `Gateway` and the port it bound (ask for port 0 in
tests), with its Prometheus endpoint on `settings.metrics_port` and the experiments' JSON
verdicts and reports on `settings.report_port` (`server.gateway.http_api`). Health is SERVING
only while the backend serves a configured model (`server.gateway.readiness`).
`Gateway.stop()` drains: health turns NOT_SERVING first, so load balancers stop sending, then
in-flight calls get up to the grace period to finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection
from imgclf.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    classifier_pb2,
    classifier_pb2_grpc,
    experiments_pb2,
    experiments_pb2_grpc,
)

from server.gateway.admin_auth import TokenAuthorizer
from server.gateway.backend import TFServingBackend
from server.gateway.batching import DirectPredictor, MicroBatcher
from server.gateway.call_limits import CallLimits
from server.gateway.circuit_breaker import CircuitBreaker
from server.gateway.classification import ClassificationService
from server.gateway.decode_pool import MIB, DecodeBudget, DecodePool
from server.gateway.experiment_setup import ExperimentStack, build_experiments
from server.gateway.experiments_servicer import AdminServicer, ExperimentsServicer
from server.gateway.http_api import HttpServer, metrics_routes, report_routes
from server.gateway.interceptor import ErrorMappingInterceptor
from server.gateway.metrics import GatewayMetrics
from server.gateway.model_catalog import ModelCatalog
from server.gateway.models_config import ModelsConfigReader
from server.gateway.preprocess import ImageLimits
from server.gateway.readiness import ReadinessMonitor
from server.gateway.servicer import ClassifierServicer
from server.gateway.settings import GatewaySettings
from server.gateway.tls import CertificateFiles, backend_credentials, server_credentials

log = logging.getLogger(__name__)
CLOSE_STEP_S = 10.0
SERVICE_NAME = classifier_pb2.DESCRIPTOR.services_by_name["Classifier"].full_name
EXPERIMENTS_SERVICE = experiments_pb2.DESCRIPTOR.services_by_name["Experiments"].full_name
ADMIN_SERVICE = admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name


@dataclass
class Gateway:
    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    backend: TFServingBackend
    executor: ThreadPoolExecutor
    decoder: DecodePool
    settings: GatewaySettings
    predictor: MicroBatcher | DirectPredictor
    metrics: GatewayMetrics
    metrics_port: int | None
    experiments: ExperimentStack
    readiness: ReadinessMonitor
    http_servers: list[HttpServer] = field(default_factory=list)
    """The HTTP servers started: metrics (/metrics only) and experiment reports."""
    report_port: int | None = None
    """The port of the experiment report server (JSON verdicts), None when it is off."""
    health_server: grpc.aio.Server | None = None
    health_port: int | None = None
    """With TLS on, the plaintext port that serves only health (probes)."""

    async def announce_drain(self) -> None:
        """Health turns NOT_SERVING for good; calls are still taken until `stop`."""
        await self.readiness.close()
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace_s: float | None = None) -> None:
        grace = self.settings.grace_period_s if grace_s is None else grace_s
        await self.announce_drain()
        await _bounded("the gRPC server", self.server.stop(grace), grace + CLOSE_STEP_S)
        # After the drain nothing may hold the exit: every part gets a bounded time to close.
        await _bounded("the experiments", self.experiments.close())
        await _bounded("the micro-batcher", self.predictor.close())
        await _bounded("the backend channel", self.backend.close())
        self.executor.shutdown(wait=False, cancel_futures=True)
        await _bounded("the decode processes", self.decoder.close())
        for http in self.http_servers:
            await _bounded(f"the {http.name} HTTP server", http.close())
        if self.health_server is not None:
            await _bounded("the health port", self.health_server.stop(0))

    async def wait(self) -> None:
        await self.server.wait_for_termination()


async def _bounded(what: str, closing: Awaitable[None], limit_s: float = CLOSE_STEP_S) -> None:
    try:
        await asyncio.wait_for(closing, limit_s)
    except TimeoutError:
        log.warning("closing %s took over %.0f s; left behind", what, limit_s)


async def _start_http(
    started: list[HttpServer], http: HttpServer, host: str, port: int
) -> int | None:
    """Starts `http` on host:port unless port is -1 (off); the port bound, or None."""
    if port < 0:
        return None
    bound = await http.start(host, port)
    started.append(http)
    return bound


async def create_server(settings: GatewaySettings) -> Gateway:
    """Starts a gateway with `settings`; the returned object knows the port it bound."""
    backend = TFServingBackend(
        settings.backend_target,
        max_message_bytes=settings.max_message_bytes,
        call_timeout_s=settings.backend_timeout_s,
        breaker=CircuitBreaker(
            failures_to_open=settings.breaker_failures, open_s=settings.breaker_open_s
        ),
        credentials=(
            backend_credentials(settings.backend_tls_ca_file)
            if settings.backend_tls_ca_file is not None
            else None
        ),
        server_name=settings.backend_tls_server_name,
    )
    executor = ThreadPoolExecutor(
        max_workers=max(1, settings.preprocess_workers), thread_name_prefix="preprocess"
    )
    models_config = ModelsConfigReader(settings.models_config_path)
    metrics = GatewayMetrics(models=lambda: {m.name for m in models_config.models()})
    limits = ImageLimits(
        max_encoded_bytes=settings.max_encoded_image_bytes,
        max_pixels=settings.max_image_pixels,
        max_decoded_bytes=settings.max_decoded_image_bytes,
    )
    decoder = DecodePool(
        limits,
        DecodeBudget(
            time_s=settings.decode_time_budget_s,
            worker_memory_bytes=settings.decode_worker_memory_mb * MIB,
            memory_budget_bytes=settings.decode_memory_budget_mb * MIB,
            slow_after_s=settings.decode_slow_after_s,
            slow_lanes=settings.decode_slow_lanes,
        ),
        on_stopped=lambda reason: metrics.decode_stopped.labels(reason).inc(),
    )
    await decoder.start()
    predictor: MicroBatcher | DirectPredictor
    if settings.batching:
        predictor = MicroBatcher(
            backend.predict,
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.batch_max_wait_ms / 1000,
            max_in_flight=settings.batch_max_in_flight,
            observer=metrics,
        )
    else:
        predictor = DirectPredictor(backend.predict, observer=metrics)
    catalog = ModelCatalog(backend, version_ttl_s=settings.version_cache_ttl_s)
    service = ClassificationService(
        backend=backend,
        catalog=catalog,
        models_config=models_config,
        limits=limits,
        executor=executor,
        decoder=decoder,
        predictor=predictor,
        on_stage=metrics.stage,
    )
    server = grpc.aio.server(
        interceptors=[
            ErrorMappingInterceptor(
                metrics,
                CallLimits(
                    max_calls=settings.max_concurrent_calls,
                    max_calls_per_client=settings.max_concurrent_calls_per_client,
                ),
            )
        ],
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
            ("grpc.max_concurrent_streams", settings.max_streams_per_connection),
        ],
    )
    experiments = await build_experiments(settings, service, catalog, models_config, metrics)
    classifier_pb2_grpc.add_ClassifierServicer_to_server(
        ClassifierServicer(
            service,
            experiments.router,
            experiments.feedback,
            default_timeout_s=settings.default_timeout_s,
            stream_limits=CallLimits(
                max_calls=settings.max_concurrent_streams, max_calls_per_client=0
            ),
            stream_idle_timeout_s=settings.stream_idle_timeout_s,
        ),
        server,
    )
    experiments_pb2_grpc.add_ExperimentsServicer_to_server(
        ExperimentsServicer(experiments.registry, experiments.reports, experiments.class_names),
        server,
    )
    admin_pb2_grpc.add_AdminServicer_to_server(
        AdminServicer(
            experiments.registry,
            TokenAuthorizer(
                token_file=settings.admin_token_file, token_env=settings.admin_token_env
            ),
        ),
        server,
    )
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        [
            SERVICE_NAME,
            EXPERIMENTS_SERVICE,
            ADMIN_SERVICE,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    address = f"{settings.host}:{settings.port}"
    health_server, health_port = None, None
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        files = CertificateFiles(
            settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
        )
        mutual = settings.tls_client_ca_file is not None
        port = server.add_secure_port(address, server_credentials(files, mutual=mutual))
        # Probes carry no TLS: health alone, in plaintext, on a port of its own.
        health_server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health, health_server)
        health_port = health_server.add_insecure_port(f"{settings.host}:{settings.health_port}")
        if health_port == 0:
            raise OSError(f"cannot bind the health port {settings.host}:{settings.health_port}")
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind the gateway to {address}")
    await experiments.start()
    readiness = ReadinessMonitor(
        health,
        ("", SERVICE_NAME, EXPERIMENTS_SERVICE),
        lambda name: backend.model_status(name, timeout=settings.readiness_timeout_s),
        lambda: [m.name for m in models_config.models()],
        interval_s=settings.readiness_interval_s,
    )
    await readiness.check()  # before the first caller can ask
    await server.start()
    if health_server is not None:
        await health_server.start()
    readiness.start()
    http_servers: list[HttpServer] = []
    metrics_port = await _start_http(
        http_servers,
        HttpServer("metrics", metrics_routes(metrics.exposition)),
        settings.metrics_host,
        settings.metrics_port,
    )
    report_port = await _start_http(
        http_servers,
        HttpServer("report", report_routes(experiments.report)),
        settings.report_host,
        settings.report_port,
    )
    log.info(
        "gateway listening on port %d (metrics %s, reports %s), backend %s, batching %s",
        port,
        metrics_port,
        report_port,
        settings.backend_target,
        "on" if settings.batching else "off",
    )
    return Gateway(
        server,
        port,
        health,
        backend,
        executor,
        decoder,
        settings,
        predictor,
        metrics,
        metrics_port,
        experiments,
        readiness,
        http_servers,
        report_port,
        health_server=health_server,
        health_port=health_port,
    )
