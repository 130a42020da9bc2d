"""Turns a run's numbers into `docs/benchmark.md` (tables and how to read them) and
`docs/benchmark.json` (every raw number, for tooling and for comparing runs)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.goals import Goal
from bench.results import GATEWAY_ON, NOOP, PATHS, CellResult, InProcessResult


@dataclass
class RunInfo:
    date: str
    machine: str
    model: str
    images: str
    durations: str
    load_generators: str
    gateway_settings: str
    flask: str
    command: str
    notes: list[str] = field(default_factory=list)


def _num(value: float, digits: int = 1) -> str:
    return "—" if math.isnan(value) else f"{value:,.{digits}f}"


def _ratio(value: float, base: float | None) -> str:
    if not base or math.isnan(value):
        return "—"
    return f"{value / base:.3f}x" if value / base < 0.1 else f"{value / base:.2f}x"


def _cores(cell: CellResult) -> str:
    servers = ", ".join(f"{name} {cores:.2f}" for name, cores in cell.server_cores.items())
    return f"{cell.loadgen_cores:.2f}; {servers}"


def limit_of(inprocess: list[InProcessResult]) -> float:
    """The in-process limit: the best throughput over the batch sizes run."""
    return max((r.throughput for r in inprocess), default=0.0)


def results_table(
    inprocess: list[InProcessResult], cells: list[CellResult], flask: dict[int, float]
) -> str:
    limit = limit_of(inprocess)
    lines = [
        "| Path | Concurrency | Throughput (img/s) | p50 (ms) | p99 (ms) | vs limit (a) "
        "| vs Flask (b) | Errors | CPU cores busy: load gen; servers "
        "| Load-gen CPU per request (µs) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for result in inprocess:
        lines.append(
            f"| a) in process, `serving_default` on batches of {result.batch_size} | — "
            f"| {_num(result.throughput)} | {_num(result.p50_ms, 2)} (per batch) "
            f"| {_num(result.p99_ms, 2)} (per batch) | {_ratio(result.throughput, limit)} "
            "| — | 0 | — | — |"
        )
    for cell in cells:
        served = cell.path != NOOP
        vs_limit = _ratio(cell.throughput, limit) if served else "—"
        vs_flask = _ratio(cell.throughput, flask.get(cell.concurrency)) if served else "—"
        lines.append(
            f"| {PATHS[cell.path]} | {cell.concurrency} | {_num(cell.throughput)} "
            f"| {_num(cell.p50_ms, 2)} | {_num(cell.p99_ms, 2)} | {vs_limit} | {vs_flask} "
            f"| {cell.errors} | {_cores(cell)} | {_num(cell.loadgen_cpu_us_per_request, 0)} |"
        )
    return "\n".join(lines)


def goals_table(goals: list[Goal]) -> str:
    lines = [
        "| Target (gateway, batching on) | Goal | Reached | Batching off | Status |",
        "|---|---|---:|---:|---|",
    ]
    lines += [
        f"| {g.name} | {g.target} | {g.reached} | {g.reached_batching_off} | **{g.status}** |"
        for g in goals
    ]
    return "\n".join(lines)


def cpu_budget_table(inprocess: list[InProcessResult], cells: list[CellResult], cores: int) -> str:
    """CPU milliseconds each process spends per image, and the throughput the machine's cores
    would allow if nothing else bounded it (cores / total CPU per image)."""
    lines = [
        "| Path | Concurrency | img/s | CPU ms per image: load gen; servers | Total "
        f"| {cores} cores / total (img/s) |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for result in inprocess:
        lines.append(
            f"| a) in process, batches of {result.batch_size} | — | {result.throughput:,.0f} "
            f"| in process {result.cpu_ms_per_image:.2f} | {result.cpu_ms_per_image:.2f} "
            f"| {cores * 1e3 / result.cpu_ms_per_image:,.0f} |"
        )
    for cell in cells:
        if not cell.completed or cell.path == NOOP:
            continue
        per_image = {"load gen": cell.loadgen_cores, **cell.server_cores}
        per_image = {k: v * 1e3 / cell.throughput for k, v in per_image.items()}
        total = sum(per_image.values())
        parts = ", ".join(f"{k} {v:.2f}" for k, v in per_image.items())
        lines.append(
            f"| {PATHS[cell.path]} | {cell.concurrency} | {cell.throughput:,.0f} | {parts} "
            f"| {total:.2f} | {cores * 1e3 / total:,.0f} |"
        )
    return "\n".join(lines)


def throughput_bound(cells: list[CellResult], limit: float, cores: int) -> str:
    """What caps the gateway (batching on) at the highest concurrency, from this run's CPU use."""
    loaded = [c for c in cells if c.path == GATEWAY_ON and c.completed]
    if not loaded or not limit:
        return ""
    cell = max(loaded, key=lambda c: c.concurrency)
    busy = cell.loadgen_cores + sum(cell.server_cores.values())
    per_image = busy * 1e3 / cell.throughput
    ceiling = cores * 1e3 / per_image
    return (
        f"What bounds the gateway's throughput here: at concurrency {cell.concurrency} the "
        f"load generator, gateway and model host together kept {busy:.2f} of the {cores} cores "
        f"busy and spent {per_image:.2f} ms of CPU per image, so even with every core busy "
        f"this path could not exceed {ceiling:,.0f} img/s ({ceiling / limit:.2f}x the "
        f"in-process limit). It reaches {cell.throughput / limit:.2f}x; the way up is less CPU "
        'per image (see "Where the CPU goes"), not more concurrency.'
    )


def gateway_table(cells: list[CellResult]) -> str:
    """The gateway's own stage means per cell (diagnosis runs with `--gateway-metrics`)."""
    lines = [
        "| Path | Concurrency | Decode + resize (ms) | Wait for batch (ms) | Backend call (ms) "
        "| Batches sent | Images per batch |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in cells:
        s = cell.gateway_stages
        if s:
            lines.append(
                f"| {PATHS[cell.path]} | {cell.concurrency} | {_num(s['preprocess_ms'], 2)} "
                f"| {_num(s['queue_ms'], 2)} | {_num(s['backend_ms'], 2)} "
                f"| {s['batches']:,.0f} | {s['batch_mean']:.2f} |"
            )
    return "\n".join(lines)


def loadgen_check(cells: list[CellResult], cores: int) -> str:
    """How we know the load generator is not the bottleneck, from this run's numbers."""
    measured = [c for c in cells if c.path != NOOP and c.completed]
    ceiling = [c for c in cells if c.path == NOOP and c.completed]
    if not measured:
        return "No cell completed a request."
    busiest = max(measured, key=lambda c: c.loadgen_cores)
    fastest = max(measured, key=lambda c: c.throughput)
    text = [
        f"- The generator's own CPU time (every thread of its processes, user + system) over the "
        f"window was at most {busiest.loadgen_cores:.2f} of the machine's {cores} cores "
        f"({PATHS[busiest.path]}, concurrency {busiest.concurrency}: "
        f"{busiest.loadgen_cpu_us_per_request:.0f} µs per request). The fastest path measured, "
        f"{fastest.throughput:,.0f} img/s, cost it "
        f"{fastest.loadgen_cpu_us_per_request:.0f} µs per request, so one generator core alone "
        f"could send about {1e6 / fastest.loadgen_cpu_us_per_request:,.0f} requests/s of that kind."
    ]
    if ceiling:
        best = max(ceiling, key=lambda c: c.throughput)
        text.append(
            f"- Against a no-op gRPC server (same generator, channel and request bytes, a server "
            f"that answers at once) it completed {best.throughput:,.0f} requests/s at "
            f"concurrency {best.concurrency} (p50 {best.p50_ms:.2f} ms), "
            f"{best.throughput / fastest.throughput:.1f}x the fastest path measured, with both "
            f"the no-op server and the generator sharing the same {cores} cores."
        )
    return "\n".join(text)


HOW_TO_READ = """\
- **a)** is the ceiling: the model alone, in one process, fed batches of already-decoded pixels
  with nothing else on the machine. No serving path can beat it on this machine; a served path
  also pays for decoding, transport and protobufs, and shares the cores with the load generator.
- **b)** is where the project started: a Flask endpoint that decodes with Pillow and calls Keras
  `model.predict` once per request. Its per-call overhead is what the gateway exists to remove.
- **c)** is the backend alone: TF Serving's gRPC `Predict`, one image per call, with the image
  decoded and resized in the client before timing. It is the floor for a path that goes through
  the model host, and the reference for the gateway's own overhead.
- **d)** is the product: encoded images in, top-5 classes out, through the gateway to the model
  host, with micro-batching on (the deployed setting) and off.
- Concurrency is the number of requests kept in flight (closed loop: each worker sends its next
  request when the previous answer arrives). Throughput counts answers completed inside the
  measured window; latency is per request as the client sees it. "vs limit" divides by the best
  in-process throughput; "vs Flask" by the Flask way at the same concurrency.
- Compare paths within one run: on this (virtual) machine, repeated runs moved the in-process
  limit by up to 10% and single cells by about 5%.
- Everything runs on one machine: the load generator, the gateway, the model host (and Flask)
  share its cores, as they would on one small pod. On the real deployment the generator is
  elsewhere and TF Serving runs on a GPU, so these numbers compare paths; they do not predict
  production capacity.
"""


def markdown(
    info: RunInfo,
    inprocess: list[InProcessResult],
    cells: list[CellResult],
    goals: list[Goal],
    cores: int,
) -> str:
    flask = {c.concurrency: c.throughput for c in cells if c.path == "flask" and c.completed}
    errors = [c for c in cells if c.errors]
    parts = [
        "# Serving benchmark (issue 4)",
        "",
        f"Written by `{info.command}` on {info.date}. Regenerate with `make bench` "
        "(`make bench BENCH_ARGS='--warmup 1 --duration 3'` for a quick look).",
        "",
        f"- **Machine:** {info.machine}",
        f"- **Model:** {info.model}",
        f"- **Images:** {info.images}",
        f"- **Durations:** {info.durations}",
        f"- **Load generator:** {info.load_generators}",
        f"- **Gateway:** {info.gateway_settings}",
        f"- **Flask baseline:** {info.flask}",
        *(f"- **Note:** {note}" for note in info.notes),
        "",
        "## Results",
        "",
        results_table(inprocess, cells, flask),
        "",
        "## Issue 4's targets",
        "",
        goals_table(goals),
        "",
        throughput_bound(cells, limit_of(inprocess), cores),
        "",
        "## Where the CPU goes",
        "",
        "CPU time (user + system, all threads) of each process over the measured window, per "
        "image answered. When the total times the throughput is close to the core count, the "
        "cores are the bound, and the way up is less CPU per image, not more concurrency.",
        "",
        cpu_budget_table(inprocess, cells, cores),
        "",
        *(
            [
                "## Inside the gateway (its metrics, this run only)",
                "",
                "Means over each cell, warmup included, from the gateway's Prometheus "
                "histograms (`imgclf_gateway_stage_seconds`, `imgclf_gateway_batch_size`).",
                "",
                gateway_table(cells),
                "",
            ]
            if any(c.gateway_stages for c in cells)
            else []
        ),
        "## How to read this",
        "",
        HOW_TO_READ,
        "## Is the load generator the bottleneck?",
        "",
        loadgen_check(cells, cores),
        "",
    ]
    if errors:
        parts += ["## Errors", ""]
        parts += [f"- {PATHS[c.path]} at {c.concurrency}: {c.error_samples}" for c in errors]
        parts.append("")
    return "\n".join(parts)


def _finite(value: object) -> object:
    """`value` with NaN floats as None (null), so the JSON is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def write(
    out_dir: Path,
    info: RunInfo,
    inprocess: list[InProcessResult],
    cells: list[CellResult],
    goals: list[Goal],
    cores: int,
) -> str:
    """Writes benchmark.md and benchmark.json into `out_dir`; returns the markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = markdown(info, inprocess, cells, goals, cores)
    (out_dir / "benchmark.md").write_text(text)
    raw = {
        "run": asdict(info),
        "in_process": [asdict(r) for r in inprocess],
        "in_process_limit_img_s": limit_of(inprocess),
        "cells": [{**asdict(c), "loadgen_cores": c.loadgen_cores} for c in cells],
        "targets": [asdict(g) for g in goals],
    }
    (out_dir / "benchmark.json").write_text(json.dumps(_finite(raw), indent=2) + "\n")
    return text
