"""Prometheus metrics of the gateway, in a registry of its own (one per gateway instance).

- `imgclf_gateway_requests_total{method, model, version, code}`: every call and its status;
- `imgclf_gateway_request_seconds{method}`: the whole call, as the gateway sees it;
- `imgclf_gateway_stage_seconds{stage}`: `preprocess` (decode + resize), `queue` (waiting for a
  batch to be sent), `backend` (the Predict call to TF Serving);
- `imgclf_gateway_batch_size`: images per backend Predict call;
- `imgclf_gateway_decode_stopped_total{reason}`: decodes stopped by killing their process
  (`time_budget`, `deadline`, `cancelled`, `slow_lanes_full`, `worker_died`);
- `imgclf_gateway_experiment_requests_total{experiment, arm, code}` and
  `imgclf_gateway_experiment_request_seconds{experiment, arm}`: calls through experiments;
- `imgclf_gateway_shadow_requests_total{experiment, arm, outcome}`: shadow copies, `ok`, `error`
  or `dropped` (queue full);
- `imgclf_gateway_prediction_log_written_total`, `imgclf_gateway_prediction_log_dropped_total
  {reason}` (`overflow`, `no_store`, `shutdown`), `imgclf_gateway_prediction_log_pending` and
  `imgclf_gateway_store_up` (1 while the last store write worked).

Label values come only from configuration: a model or experiment name that is not configured is
counted under `_unknown`, so a request can never create a new series.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
UNKNOWN = "_unknown"
MAX_VERSION_LABEL = 10**12
NamesProvider = Callable[[], Collection[str]]


def _no_names() -> Collection[str]:
    return ()


class GatewayMetrics:
    def __init__(
        self, *, models: NamesProvider = _no_names, experiments: NamesProvider = _no_names
    ) -> None:
        self.models = models
        self.experiments = experiments
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
        self.decode_stopped = Counter(
            "imgclf_gateway_decode_stopped",
            "Decodes stopped by killing their process, by reason.",
            ["reason"],
            registry=self.registry,
        )

        self.experiment_requests = Counter(
            "imgclf_gateway_experiment_requests",
            "Calls through experiments by experiment, arm and status code.",
            ["experiment", "arm", "code"],
            registry=self.registry,
        )
        self.experiment_seconds = Histogram(
            "imgclf_gateway_experiment_request_seconds",
            "Duration of calls through experiments, by experiment and arm.",
            ["experiment", "arm"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.shadow_requests = Counter(
            "imgclf_gateway_shadow_requests",
            "Shadow copies by experiment, shadow arm and outcome (ok, error, dropped).",
            ["experiment", "arm", "outcome"],
            registry=self.registry,
        )
        self.log_written_total = Counter(
            "imgclf_gateway_prediction_log_written",
            "Prediction records written to the experiment store.",
            registry=self.registry,
        )
        self.log_dropped_total = Counter(
            "imgclf_gateway_prediction_log_dropped",
            "Prediction records dropped, by reason (overflow, no_store, shutdown).",
            ["reason"],
            registry=self.registry,
        )
        self.log_pending_gauge = Gauge(
            "imgclf_gateway_prediction_log_pending",
            "Prediction records waiting to be written.",
            registry=self.registry,
        )
        self.store_up_gauge = Gauge(
            "imgclf_gateway_store_up",
            "1 while the experiment store takes writes, 0 after a failed write.",
            registry=self.registry,
        )
        self.store_up_gauge.set(1)

    def _model_label(self, model: str) -> str:
        return model if not model or model in self.models() else UNKNOWN

    def call_finished(
        self, method: str, model: str, version: str, code: str, seconds: float
    ) -> None:
        model = self._model_label(model)
        if model == UNKNOWN or not version.isdigit() or int(version) > MAX_VERSION_LABEL:
            version = ""
        self.requests.labels(method, model, version, code).inc()
        self.request_seconds.labels(method).observe(seconds)

    # ExperimentObserver, ShadowObserver, LogObserver
    def experiment_call(self, experiment: str, arm: str, code: str, seconds: float) -> None:
        if experiment not in self.experiments():
            experiment, arm = UNKNOWN, UNKNOWN
        self.experiment_requests.labels(experiment, arm, code).inc()
        self.experiment_seconds.labels(experiment, arm).observe(seconds)

    def shadow_finished(self, experiment: str, arm: str, outcome: str) -> None:
        if experiment not in self.experiments():
            experiment, arm = UNKNOWN, UNKNOWN
        self.shadow_requests.labels(experiment, arm, outcome).inc()

    def log_written(self, count: int) -> None:
        self.log_written_total.inc(count)

    def log_dropped(self, reason: str, count: int) -> None:
        self.log_dropped_total.labels(reason).inc(count)

    def log_pending(self, count: int) -> None:
        self.log_pending_gauge.set(count)

    def store_up(self, up: bool) -> None:
        self.store_up_gauge.set(1 if up else 0)

    def stage(self, name: str, seconds: float) -> None:
        self.stage_seconds.labels(name).observe(seconds)

    # BatchObserver
    def batch_sent(self, size: int) -> None:
        self.batch_size.observe(size)

    def queued(self, seconds: float) -> None:
        self.stage("queue", seconds)

    def backend_called(self, seconds: float) -> None:
        self.stage("backend", seconds)

    def exposition(self) -> bytes:
        """The /metrics page, in Prometheus' text format."""
        return generate_latest(self.registry)
