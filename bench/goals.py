"""Issue 4's targets, checked against a run's numbers (PASS / MISS; n/a when a path was skipped).

The gateway is judged with batching on, its deployed setting (`serving_config/gateway.toml`);
the same figures with batching off are reported beside it for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.results import BACKEND, FLASK, GATEWAY_OFF, GATEWAY_ON, CellResult

HIGH_CONCURRENCY = 32
UNLOADED = 1


@dataclass(frozen=True)
class Goal:
    name: str
    target: str
    reached: str
    reached_batching_off: str
    status: str  # PASS, MISS or n/a


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
    rows = [
        ("throughput at concurrency 32 vs the Flask way", "vs_flask", ">= 10x", 10.0, True, "x"),
        (
            "throughput at concurrency 32 vs the in-process limit",
            "vs_limit",
            ">= 0.60x",
            0.6,
            True,
            "x",
        ),
        ("unloaded latency p50 (concurrency 1)", "p50", "<= 10 ms", 10.0, False, " ms"),
        ("unloaded latency p99 (concurrency 1)", "p99", "<= 25 ms", 25.0, False, " ms"),
        (
            "p50 overhead over the backend called directly (concurrency 1)",
            "overhead",
            "<= 2 ms",
            2.0,
            False,
            " ms",
        ),
    ]
    return [
        Goal(
            name,
            target,
            _fmt(on[key], unit),
            _fmt(off[key], unit),
            _status(on[key], bound, at_least),
        )
        for name, key, target, bound, at_least, unit in rows
    ]
