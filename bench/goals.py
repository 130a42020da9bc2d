"""The benchmark's targets, checked against a run's numbers (PASS / MISS; n/a when a path was
skipped): issue 4's for the gateway, and issue 7's for routing through an experiment.

The gateway is judged with batching on, its deployed setting (`serving_config/gateway.toml`);
the same figures with batching off are reported beside it for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.results import (
    BACKEND,
    FLASK,
    GATEWAY_EXPERIMENT,
    GATEWAY_NAMED,
    GATEWAY_OFF,
    GATEWAY_ON,
    CellResult,
)

HIGH_CONCURRENCY = 32
UNLOADED = 1
EXPERIMENT_P50_BOUND_MS = 0.3


@dataclass(frozen=True)
class Goal:
    name: str
    target: str
    reached: str
    reached_batching_off: str
    status: str  # PASS, MISS or n/a


@dataclass(frozen=True)
class _Target:
    name: str
    key: str  # which figure of `evaluate.figures`
    bound: float
    at_least: bool
    unit: str

    @property
    def goal(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.bound:g}{self.unit}"


TARGETS = (
    _Target("throughput at concurrency 32 vs the Flask way", "vs_flask", 10, True, "x"),
    _Target("throughput at concurrency 32 vs the in-process limit", "vs_limit", 0.6, True, "x"),
    _Target("unloaded latency p50 (concurrency 1)", "p50", 10, False, " ms"),
    _Target("unloaded latency p99 (concurrency 1)", "p99", 25, False, " ms"),
    _Target(
        "p50 overhead over the backend called directly (concurrency 1)", "overhead", 2, False, " ms"
    ),
)

Cells = dict[tuple[str, int], CellResult]


def _status(value: float, bound: float, at_least: bool) -> str:
    if math.isnan(value):
        return "n/a"
    return "PASS" if (value >= bound if at_least else value <= bound) else "MISS"


def _fmt(value: float, unit: str) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}{unit}"


def _value(cells: Cells, path: str, concurrency: int, field: str) -> float:
    cell = cells.get((path, concurrency))
    return float(getattr(cell, field)) if cell is not None and cell.completed else math.nan


def evaluate(cells: Cells, limit: float) -> list[Goal]:
    """The targets, for the gateway with batching on (and its batching-off figures beside)."""
    nan = math.nan
    flask_32 = _value(cells, FLASK, HIGH_CONCURRENCY, "throughput")
    backend_p50 = _value(cells, BACKEND, UNLOADED, "p50_ms")

    def figures(gateway: str) -> dict[str, float]:
        throughput = _value(cells, gateway, HIGH_CONCURRENCY, "throughput")
        p50 = _value(cells, gateway, UNLOADED, "p50_ms")
        return {
            "vs_flask": throughput / flask_32 if flask_32 else nan,
            "vs_limit": throughput / limit if limit else nan,
            "p50": p50,
            "p99": _value(cells, gateway, UNLOADED, "p99_ms"),
            "overhead": p50 - backend_p50,
        }

    on, off = figures(GATEWAY_ON), figures(GATEWAY_OFF)
    goals = [
        Goal(
            t.name,
            t.goal,
            _fmt(on[t.key], t.unit),
            _fmt(off[t.key], t.unit),
            _status(on[t.key], t.bound, t.at_least),
        )
        for t in TARGETS
    ]
    for concurrency in (UNLOADED, HIGH_CONCURRENCY):
        added = _value(cells, GATEWAY_EXPERIMENT, concurrency, "p50_ms") - _value(
            cells, GATEWAY_NAMED, concurrency, "p50_ms"
        )
        goals.append(
            Goal(
                f"p50 added by routing through an experiment (concurrency {concurrency})",
                f"<= {EXPERIMENT_P50_BOUND_MS:g} ms",
                _fmt(added, " ms"),
                "—",
                _status(added, EXPERIMENT_P50_BOUND_MS, at_least=False),
            )
        )
    return goals
