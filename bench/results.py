"""The numbers a run produces, as plain dataclasses that go to JSON as they are."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FLASK, BACKEND, GATEWAY_ON, GATEWAY_OFF, NOOP = (
    "flask",
    "backend",
    "gateway-on",
    "gateway-off",
    "noop",
)
GATEWAY_NAMED, GATEWAY_EXPERIMENT = "gateway-named", "gateway-experiment"
PATHS = {
    FLASK: "b) Flask /predict, Keras model.predict per request",
    BACKEND: "c) model host (TF Serving gRPC API) called directly, 1 image per call",
    GATEWAY_ON: "d) gateway, batching on -> model host",
    GATEWAY_OFF: "d) gateway, batching off -> model host",
    GATEWAY_NAMED: "e) gateway with an experiment and its SQLite store, called by model name",
    GATEWAY_EXPERIMENT: "e) same gateway, through the experiment (2 arms, routing key, logged)",
    NOOP: "load generator vs a no-op gRPC server (its ceiling)",
}
"""Key -> label of every path loaded over the network."""


@dataclass
class LoadResult:
    """What one load generator process measured in its window."""

    completed: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies_us: list[int] = field(default_factory=list)
    cpu_s: float = 0.0
    window_s: float = 0.0
    call_kinds: list[int] = field(default_factory=list)
    """With interleaved kinds of call: the kind of each entry of `latencies_us`."""
    error_kinds: list[int] = field(default_factory=list)
    """With interleaved kinds of call: the kind of each error."""

    def of_kind(self, kind: int) -> LoadResult:
        """The calls of one kind only (the generator's CPU shared out by calls)."""
        latencies = [
            us for us, k in zip(self.latencies_us, self.call_kinds, strict=True) if k == kind
        ]
        errors = self.error_kinds.count(kind)
        share = (len(latencies) + errors) / max(1, self.completed + self.errors)
        return LoadResult(
            completed=len(latencies),
            errors=errors,
            error_samples=self.error_samples,
            latencies_us=latencies,
            cpu_s=self.cpu_s * share,
            window_s=self.window_s,
        )


@dataclass
class CellResult:
    """One path at one concurrency, merged over the load generator processes."""

    path: str
    concurrency: int
    completed: int
    errors: int
    window_s: float
    throughput: float
    p50_ms: float
    p99_ms: float
    p90_ms: float
    mean_ms: float
    max_ms: float
    loadgen_processes: int
    loadgen_cpu_s: float
    loadgen_cpu_us_per_request: float
    server_cores: dict[str, float] = field(default_factory=dict)
    """Cores each server process kept busy during the window (name -> cores)."""
    gateway_stages: dict[str, float] = field(default_factory=dict)
    """The gateway's own stage means and batch sizes (`bench.gateway_stats`), when asked for."""
    error_samples: list[str] = field(default_factory=list)

    @property
    def loadgen_cores(self) -> float:
        """Cores the generator kept busy during the window (1.0 = one core flat out)."""
        return self.loadgen_cpu_s / self.window_s if self.window_s else 0.0


@dataclass
class InProcessResult:
    batch_size: int
    throughput: float
    p50_ms: float
    p99_ms: float
    calls: int
    cpu_ms_per_image: float


def summarise(
    path: str,
    concurrency: int,
    parts: list[LoadResult],
    window_s: float,
    server_cores: dict[str, float],
) -> CellResult:
    """Merges the load generator processes' results for one cell."""
    latencies = np.concatenate([np.asarray(p.latencies_us, dtype=float) for p in parts]) / 1e3
    completed = sum(p.completed for p in parts)
    cpu_s = sum(p.cpu_s for p in parts)
    return CellResult(
        path=path,
        concurrency=concurrency,
        completed=completed,
        errors=sum(p.errors for p in parts),
        window_s=window_s,
        throughput=completed / window_s,
        p50_ms=_stat(np.percentile, latencies, 50),
        p99_ms=_stat(np.percentile, latencies, 99),
        p90_ms=_stat(np.percentile, latencies, 90),
        mean_ms=_stat(np.mean, latencies),
        max_ms=_stat(np.max, latencies),
        loadgen_processes=len(parts),
        loadgen_cpu_s=cpu_s,
        loadgen_cpu_us_per_request=cpu_s / completed * 1e6 if completed else float("nan"),
        server_cores=server_cores,
        error_samples=[s for p in parts for s in p.error_samples][:5],
    )


def _stat(reduce: Callable[..., Any], values: np.ndarray, *args: float) -> float:
    return float(reduce(values, *args)) if len(values) else float("nan")
