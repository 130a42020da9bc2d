"""Runs one cell of the table: one path at one concurrency, loaded by generator processes.

The concurrency is split over up to `processes` load generators (`bench.loadgen`); they all
connect first, then start at the same instant, so their measured windows coincide.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict, replace
from pathlib import Path

from bench import cpu
from bench.loadgen import LoadSpec
from bench.results import CellResult, LoadResult, summarise
from bench.servers import ChildFailed, log_tail, read_line, spawn, stop

START_DELAY_S = 0.3


def run_cell(
    path: str, spec: LoadSpec, processes: int, log_dir: Path, watch: dict[str, int]
) -> CellResult:
    """Loads `spec.target` with `spec.concurrency` workers over `processes` processes; `path`
    is the key of the path under test (`bench.results.PATHS`). The servers in `watch`
    (name -> pid) have their CPU use over the measured window recorded."""
    parts, server_cores = run_load(path, spec, processes, log_dir, watch)
    return summarise(path, spec.concurrency, parts, spec.duration_s, server_cores)


def run_paired_cell(
    paths: list[str], spec: LoadSpec, processes: int, log_dir: Path, watch: dict[str, int]
) -> list[CellResult]:
    """One window of interleaved kinds of call (`spec.kinds == len(paths)`): a cell per kind,
    the servers' CPU use of the window shared out by calls (each row then shows the mix's CPU
    per request)."""
    parts, server_cores = run_load("-".join(paths), spec, processes, log_dir, watch)
    total = sum(p.completed for p in parts) or 1
    cells = []
    for kind, path in enumerate(paths):
        mine = [p.of_kind(kind) for p in parts]
        share = sum(p.completed for p in mine) / total
        cores = {name: used * share for name, used in server_cores.items()}
        cells.append(summarise(path, spec.concurrency, mine, spec.duration_s, cores))
    return cells


def run_load(
    path: str, spec: LoadSpec, processes: int, log_dir: Path, watch: dict[str, int]
) -> tuple[list[LoadResult], dict[str, float]]:
    """The generators' results of one window and the cores each watched server used in it."""
    count = max(1, min(processes, spec.concurrency))
    shares = [spec.concurrency // count + (i < spec.concurrency % count) for i in range(count)]
    specs = [
        replace(spec, concurrency=share, offset=sum(shares[:i])) for i, share in enumerate(shares)
    ]
    return run_loads(f"loadgen-{path}-{spec.concurrency}", specs, log_dir, watch)


def run_loads(
    name: str, specs: list[LoadSpec], log_dir: Path, watch: dict[str, int]
) -> tuple[list[LoadResult], dict[str, float]]:
    """One generator process per spec, all measuring the same window (the first spec's)."""
    spec = specs[0]
    children: list[subprocess.Popen[str]] = []
    try:
        for one in specs:
            children.append(
                spawn(
                    name,
                    ["bench.loadgen", json.dumps(asdict(one))],
                    log_dir,
                    stdin=subprocess.PIPE,
                )
            )
        for child in children:
            _expect(child, "ready", 60, name, log_dir)
        start = time.monotonic() + START_DELAY_S
        for child in children:
            assert child.stdin is not None
            child.stdin.write(f"{start!r}\n")
            child.stdin.flush()
        server_cores = _watch_window(watch, start + spec.warmup_s, spec.duration_s)
        budget = spec.duration_s + max(one.timeout_s for one in specs) + 30
        parts = [
            LoadResult(**json.loads(_expect(child, "{", budget, name, log_dir)))
            for child in children
        ]
    finally:
        for child in children:
            stop(child, grace_s=2)
    return parts, server_cores


def _watch_window(
    watch: dict[str, int], measure_from: float, duration_s: float
) -> dict[str, float]:
    """Sleeps through the measured window; the cores each watched process used in it."""
    time.sleep(max(0.0, measure_from - time.monotonic()))
    before, began = cpu.snapshot(watch), time.monotonic()
    time.sleep(max(0.0, measure_from + duration_s - time.monotonic()))
    return cpu.cores_used(before, cpu.snapshot(watch), time.monotonic() - began)


def _expect(
    child: subprocess.Popen[str], prefix: str, timeout_s: float, name: str, log_dir: Path
) -> str:
    try:
        line = read_line(child, timeout_s, name)
    except ChildFailed as exc:
        raise ChildFailed(f"{exc}\n{log_tail(log_dir, name)}") from None
    if not line.startswith(prefix):
        raise ChildFailed(f"{name}: unexpected output {line[:200]!r}")
    return line
