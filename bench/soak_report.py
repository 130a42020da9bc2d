"""The soak's figures and its report: the memory series, its growth and slope after the warm-up,
the PASS/FAIL against the bound, and the Markdown of docs/soak.md (`bench.soak` measures)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bench.process_memory import MIB
from bench.results import CellResult

TEN_MINUTES_S = 600.0
SPARK = "▁▂▃▄▅▆▇█"


@dataclass
class Sample:
    """One look at the processes, `t_s` seconds after the warm-up started (negative: before)."""

    t_s: float
    phase: str  # "idle", "warm-up", "soak"
    gateway_rss_mib: float
    """The gateway process and all its children, summed."""
    gateway_main_rss_mib: float
    """The gateway process alone."""
    gateway_processes: int
    host_rss_mib: float
    classify_calls: float
    """The gateway's count of Classify calls so far (every status code); NaN if unscraped."""


@dataclass
class MemoryFigures:
    idle_mib: float
    warmup_end_mib: float
    end_mib: float
    growth_mib: float
    """RSS at the end minus RSS at the end of the warm-up."""
    slope_mib_per_10min: float
    """Least-squares slope over the samples from the end of the warm-up on."""
    min_after_warmup_mib: float
    max_after_warmup_mib: float
    samples_after_warmup: int
    main_warmup_end_mib: float
    """The gateway process alone (without its children)."""
    main_end_mib: float
    host_warmup_end_mib: float
    host_end_mib: float
    gateway_processes: int
    """The most processes counted in one sample (the gateway and its children)."""
    gateway_processes_min: int


def memory_figures(samples: list[Sample], warmup_end: Sample, end: Sample) -> MemoryFigures:
    after = [s for s in samples if s.t_s >= warmup_end.t_s and not math.isnan(s.gateway_rss_mib)]
    times = np.array([s.t_s for s in after])
    rss = np.array([s.gateway_rss_mib for s in after])
    slope = float(np.polyfit(times, rss, 1)[0]) if len(after) >= 2 and np.ptp(times) > 0 else 0.0
    idle = next((s.gateway_rss_mib for s in samples if s.phase == "idle"), float("nan"))
    return MemoryFigures(
        idle_mib=idle,
        warmup_end_mib=warmup_end.gateway_rss_mib,
        end_mib=end.gateway_rss_mib,
        growth_mib=round(end.gateway_rss_mib - warmup_end.gateway_rss_mib, 2),
        slope_mib_per_10min=round(slope * TEN_MINUTES_S, 2),
        min_after_warmup_mib=float(rss.min()) if len(rss) else float("nan"),
        max_after_warmup_mib=float(rss.max()) if len(rss) else float("nan"),
        samples_after_warmup=len(after),
        main_warmup_end_mib=warmup_end.gateway_main_rss_mib,
        main_end_mib=end.gateway_main_rss_mib,
        host_warmup_end_mib=warmup_end.host_rss_mib,
        host_end_mib=end.host_rss_mib,
        gateway_processes=max((s.gateway_processes for s in samples), default=0),
        gateway_processes_min=min((s.gateway_processes for s in samples), default=0),
    )


@dataclass
class Verdict:
    bound_mib_per_10min: float
    allowed_growth_mib: float
    passed: bool
    why: str


def verdict(memory: MemoryFigures, bound_mib: float, duration_s: float, rate: float) -> Verdict:
    """PASS when the growth stays within the bound (per 10 minutes; a shorter run gets the same
    absolute bound, since sampling noise does not shrink with the run) and, for a run of 10
    minutes or more, so does the slope (over seconds, a slope extrapolated to 10 minutes is
    mostly noise)."""
    allowed = bound_mib * max(1.0, duration_s / TEN_MINUTES_S)
    slope_ok = duration_s < TEN_MINUTES_S or memory.slope_mib_per_10min <= bound_mib
    passed = memory.growth_mib <= allowed and slope_ok
    calls = rate * max(duration_s, TEN_MINUTES_S)
    per_call = f"{allowed * MIB / calls:,.0f} B" if calls else "—"
    why = (
        f"the issue's last soak grew +3 MiB in 5 min, about +6 MiB per 10 min; a Python process's "
        f"RSS moves by a few MiB from sample to sample under load (allocator arenas, gRPC "
        f"buffers), so the bound is {bound_mib:g} MiB per 10 min, about 2.5x that: room for noise, "
        f"yet at the measured {rate:,.0f} calls/s a leak of {per_call} per call would cross it. "
        "PASS needs the growth within the bound and, on runs of 10 minutes or more, the slope too"
    )
    return Verdict(bound_mib, allowed, passed, why)


@dataclass
class SoakReport:
    date: str
    command: str
    machine: str
    model: str
    images: str
    gateway: str
    load: str
    concurrency: int
    concurrency_from: str
    warmup_s: float
    duration_s: float
    sample_interval_s: float
    ramp: list[CellResult]
    warmup: CellResult
    soak: CellResult
    codes: dict[str, int]
    """The gateway's Classify calls during the soak by status code (its own counter)."""
    memory: MemoryFigures
    verdict: Verdict
    load_average: dict[str, list[float]]
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def sparkline(values: list[float]) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = high - low or 1.0
    return "".join(
        " " if math.isnan(v) else SPARK[min(len(SPARK) - 1, int((v - low) / span * len(SPARK)))]
        for v in values
    )


def _minute_rows(report: SoakReport) -> list[str]:
    """One row a minute (or a tenth of the run, if shorter) of the samples after the warm-up."""
    after = [s for s in report.samples if s.phase == "soak"]
    if not after:
        return []
    step = max(report.sample_interval_s, min(60.0, report.duration_s / 10))
    base = after[0]
    rows, last, next_t = [], base, base.t_s
    for sample in after:
        if sample.t_s + 1e-6 < next_t and sample is not after[-1]:
            continue
        elapsed = sample.t_s - last.t_s
        calls = sample.classify_calls - last.classify_calls
        rate = f"{calls / elapsed:,.1f}" if elapsed > 0 and not math.isnan(calls) else "—"
        rows.append(
            f"| {_clock(sample.t_s - base.t_s)} | {sample.gateway_rss_mib:.1f} "
            f"| {sample.gateway_rss_mib - base.gateway_rss_mib:+.1f} | {rate} "
            f"| {sample.host_rss_mib:.1f} |"
        )
        last, next_t = sample, sample.t_s + step
    return rows


def _processes(memory: MemoryFigures) -> str:
    low, high = memory.gateway_processes_min, memory.gateway_processes
    return str(high) if low == high else f"{low} to {high}"


def _span(seconds: float) -> str:
    return f"{seconds / 60:g}-minute" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g} s"


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def render(report: SoakReport) -> str:
    mem, verdict_, soak = report.memory, report.verdict, report.soak
    status = "PASS" if verdict_.passed else "FAIL"
    errors = sum(n for code, n in report.codes.items() if code != "OK")
    codes = ", ".join(f"{code} {n:,}" for code, n in report.codes.items()) or "—"
    lines = [
        "# Soak: gateway memory under saturating load",
        "",
        f"Generated by `{report.command}` on {report.date} (`make soak`; `bench/soak.py`).",
        "",
        f"**{status}**: gateway RSS grew {mem.growth_mib:+.1f} MiB over the "
        f"{_span(report.duration_s)} soak after a {_span(report.warmup_s)} warm-up, slope "
        f"{mem.slope_mib_per_10min:+.1f} MiB per 10 min; bound {verdict_.bound_mib_per_10min:g} "
        "MiB per 10 min.",
        "",
        "| Figure | Value |",
        "|---|---|",
        f"| Concurrency | {report.concurrency} ({report.concurrency_from}) |",
        f"| Throughput (soak) | {soak.throughput:,.1f} img/s ({soak.completed:,} calls) |",
        f"| Latency p50 / p99 (soak) | {soak.p50_ms:.2f} ms / {soak.p99_ms:.2f} ms |",
        f"| Errors seen by the client | {soak.errors:,} |",
        f"| Classify calls by status code (gateway's counter) | {codes} |",
        f"| Gateway RSS idle, after start | {mem.idle_mib:.1f} MiB |",
        f"| Gateway RSS at end of warm-up | {mem.warmup_end_mib:.1f} MiB |",
        f"| Gateway RSS at end | {mem.end_mib:.1f} MiB |",
        f"| Growth after warm-up | {mem.growth_mib:+.1f} MiB |",
        f"| Slope (least squares, {mem.samples_after_warmup} samples) "
        f"| {mem.slope_mib_per_10min:+.1f} MiB per 10 min |",
        f"| RSS range after warm-up | {mem.min_after_warmup_mib:.1f} to "
        f"{mem.max_after_warmup_mib:.1f} MiB |",
        "| Of which the gateway's main process, end of warm-up → end "
        f"| {mem.main_warmup_end_mib:.1f} → {mem.main_end_mib:.1f} MiB |",
        f"| Gateway processes (itself + children) | {_processes(mem)} |",
        f"| Model host RSS, end of warm-up → end | {mem.host_warmup_end_mib:.1f} → "
        f"{mem.host_end_mib:.1f} MiB |",
        "| Server CPU cores busy (soak) | "
        + ", ".join(f"{n} {c:.2f}" for n, c in soak.server_cores.items())
        + f"; load generator {soak.loadgen_cores:.2f} |",
        "| Load average (1, 5, 15 min) start → end | "
        + " → ".join(", ".join(f"{v:.2f}" for v in la) for la in report.load_average.values())
        + " |",
        "",
        f"Bound: {verdict_.why}.",
        "",
    ]
    if errors or soak.errors:
        lines += ["Error samples (client side): " + "; ".join(soak.error_samples or ["—"]), ""]
    if soak.errors > errors:
        lines += [
            f"{soak.errors - errors:,} of the client's errors are not in the gateway's counter: "
            "those calls failed in the gRPC transport, before the gateway's code saw them.",
            "",
        ]
    if report.ramp:
        lines += [
            "## Ramp",
            "",
            "| Concurrency | Throughput (img/s) | p50 (ms) | p99 (ms) | Errors |",
            "|---:|---:|---:|---:|---:|",
            *(
                f"| {c.concurrency} | {c.throughput:,.1f} | {c.p50_ms:.2f} | {c.p99_ms:.2f} "
                f"| {c.errors} |"
                for c in report.ramp
            ),
            "",
        ]
    series = [s for s in report.samples if s.phase in ("warm-up", "soak")]
    values = [s.gateway_rss_mib for s in series]
    finite = [v for v in values if not math.isnan(v)]
    lines += [
        "## The RSS series",
        "",
        f"Gateway RSS every {report.sample_interval_s:g} s from the start of the warm-up "
        f"({len(series)} samples, {min(finite, default=0):.1f} to {max(finite, default=0):.1f} "
        "MiB; the warm-up ends at the bar):",
        "",
        "```",
        sparkline([s.gateway_rss_mib for s in series if s.phase == "warm-up"])
        + "|"
        + sparkline([s.gateway_rss_mib for s in series if s.phase == "soak"]),
        "```",
        "",
        "| Into the soak (m:ss) | Gateway RSS (MiB) | vs end of warm-up (MiB) "
        "| Classify calls/s since the row before | Model host RSS (MiB) |",
        "|---:|---:|---:|---:|---:|",
        *_minute_rows(report),
        "",
        "## How it was measured",
        "",
        f"- Machine: {report.machine}. Other work may share it: see the load average.",
        f"- Model: {report.model}. Images: {report.images}.",
        f"- Gateway: {report.gateway}.",
        f"- Load: {report.load}; warm-up and soak are two windows of the same concurrency, "
        "one after the other (the end-of-warm-up sample falls between them).",
        "- RSS: psutil, the gateway process plus all its children (decode workers), summed, so "
        "pages they share count once per process (PSS would split them, but it also moves with "
        "whatever else on the machine maps the same libraries); the model host separately (it "
        "stands in for TF Serving, so its figure is for information).",
        "- Status codes: the gateway's `imgclf_gateway_requests_total` for Classify, scraped "
        "at the end of the warm-up and at the end (calls in flight at either edge may fall on "
        "either side).",
        *(f"- {note}" for note in report.notes),
        "",
        "Every sample is in `docs/soak.json`.",
        "",
    ]
    return "\n".join(lines)
