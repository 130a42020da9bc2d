"""Prometheus metrics of the gateway, in a registry of its own (one per gateway instance).

- `imgclf_gateway_requests_total{method, model, version, code}`: every call and its status;
- `imgclf_gateway_request_seconds{method}`: the whole call, as the gateway sees it;
- `imgclf_gateway_stage_seconds{stage}`: `preprocess` (decode + resize), `queue` (waiting for a
  batch to be sent), `backend` (the Predict call to TF Serving);
- `imgclf_gateway_batch_size`: images per backend Predict call.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "imgclf_gateway_requests",
            "Calls to the gateway by method, model, served version and status code.",
            ["method", "model", "version", "code"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "imgclf_gateway_request_seconds",
            "Duration of whole calls to the gateway.",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "imgclf_gateway_stage_seconds",
            "Duration of each stage of a classification: preprocess, queue, backend.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "imgclf_gateway_batch_size",
            "Images per backend Predict call.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )

    def call_finished(
        self, method: str, model: str, version: str, code: str, seconds: float
    ) -> None:
        self.requests.labels(method, model, version, code).inc()
        self.request_seconds.labels(method).observe(seconds)

    def stage(self, name: str, seconds: float) -> None:
        self.stage_seconds.labels(name).observe(seconds)

    # BatchObserver
    def batch_sent(self, size: int) -> None:
        self.batch_size.observe(size)

    def queued(self, seconds: float) -> None:
        self.stage("queue", seconds)

    def backend_called(self, seconds: float) -> None:
        self.stage("backend", seconds)

    def serve(self, host: str, port: int) -> tuple[object, int]:
        """Starts the /metrics HTTP endpoint; returns (server, bound port)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server, int(server.server_port)
