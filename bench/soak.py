"""Soak benchmark (issue 10): does the gateway's memory stay flat under load that saturates the
machine? Writes docs/soak.md and docs/soak.json.

    python -m bench.soak [--duration 600] [--warmup 60] [--concurrency N] [--model-root DIR]

1. `bench.prepare` (model, images, request bodies), then the model host and the gateway as real
   processes (`bench.stack`), the gateway with its settings as deployed and its /metrics on;
2. without `--concurrency`: a short ramp (`--ramp`, a few seconds each) and the concurrency of the
   highest throughput is the one that saturates the machine;
3. a warm-up of `--warmup` s, then the soak of `--duration` s, both `bench.loadgen` driving
   Classify; every `--sample-interval` s the resident memory (RSS) of the gateway process and of
   all its children (decode workers, if any) is sampled with psutil, and the gateway's own call
   counter (`imgclf_gateway_requests_total`) is scraped, for throughput and status codes over
   time;
4. the report: throughput, errors by status code, p50/p99, RSS at the end of the warm-up and at
   the end, the growth between them and its slope (least squares over the samples after the
   warm-up), with a PASS/FAIL against `--bound-mib` per 10 minutes.

RSS is summed over the processes, so pages they share count once per process; the figure of
interest is the change, not the level.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import gateway_stats, stack
from bench.cells import run_cell
from bench.loadgen import LoadSpec
from bench.manifest import Manifest
from bench.process_memory import tree_memory
from bench.results import GATEWAY_ON, CellResult
from bench.runner import say
from bench.servers import Server, ServerGroup
from bench.soak_report import Sample, SoakReport, memory_figures, render, verdict

RAMP_WARMUP_S = 1.0
DEFAULT_BOUND_MIB = 16.0
_CALLS = re.compile(r'^imgclf_gateway_requests_total\{(?=[^}]*method="Classify")[^}]*\}$')
_CODE = re.compile(r'code="([^"]*)"')


def classify_codes(metrics: dict[str, float]) -> dict[str, float]:
    """The gateway's Classify calls so far by status code, from a scrape of its /metrics."""
    codes: dict[str, float] = {}
    for key, value in metrics.items():
        if _CALLS.match(key):
            code = _CODE.search(key)
            name = code[1] if code else "?"
            codes[name] = codes.get(name, 0.0) + value
    return codes


class Sampler:
    """Samples the gateway (and the model host) every `interval_s` on a thread of its own."""

    def __init__(self, gateway: Server, host: Server, metrics_port: int, interval_s: float) -> None:
        self._gateway_pid, self._host_pid = gateway.process.pid, host.process.pid
        self._metrics_port = metrics_port
        self._interval_s = interval_s
        self._origin = time.monotonic()
        self._phase = "idle"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples: list[Sample] = []

    def scrape(self) -> dict[str, float]:
        try:
            return classify_codes(gateway_stats.scrape(self._metrics_port))
        except OSError:
            return {}

    def sample(self) -> Sample:
        codes = self.scrape()
        gateway = tree_memory(self._gateway_pid)
        host = tree_memory(self._host_pid)
        with self._lock:
            sample = Sample(
                t_s=round(time.monotonic() - self._origin, 2),
                phase=self._phase,
                gateway_rss_mib=round(gateway.rss_mib, 2),
                gateway_main_rss_mib=round(gateway.main_rss_mib, 2),
                gateway_processes=gateway.processes,
                host_rss_mib=round(host.rss_mib, 2),
                classify_calls=sum(codes.values()) if codes else float("nan"),
            )
            self.samples.append(sample)
        return sample

    def enter(self, phase: str) -> None:
        """From now on samples belong to `phase`; "warm-up" also resets the clock's origin."""
        with self._lock:
            if phase == "warm-up":
                now = time.monotonic()
                for earlier in self.samples:
                    earlier.t_s = round(earlier.t_s - (now - self._origin), 2)
                self._origin = now
            self._phase = phase

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.splitlines()[0]
    )
    add = parser.add_argument
    add("--duration", type=float, default=600.0, help="seconds of soak after the warm-up (600)")
    add("--warmup", type=float, default=60.0, help="seconds of warm-up (60)")
    add("--concurrency", type=int, help="Classify calls in flight (default: the ramp's best)")
    add("--ramp", default="1,8,32,64", help="concurrencies the ramp tries (default 1,8,32,64)")
    add("--ramp-seconds", type=float, default=4.0, help="measured seconds per ramp step (4)")
    add("--sample-interval", type=float, default=5.0, help="seconds between RSS samples (5)")
    add("--bound-mib", type=float, default=DEFAULT_BOUND_MIB, help="growth allowed per 10 min")
    add("--loadgen-processes", type=int, default=1, help="load generator processes")
    stack.add_input_arguments(parser)
    return parser


def _spec(gateway: Server, manifest: Manifest, concurrency: int, duration_s: float) -> LoadSpec:
    return LoadSpec(
        kind="grpc",
        target=gateway.target,
        method=manifest.classify_method,
        blobs=manifest.blobs.classify,
        concurrency=concurrency,
        warmup_s=0.0,
        duration_s=duration_s,
    )


def _describe(cell: CellResult) -> str:
    return (
        f"{cell.throughput:,.1f} img/s, p50 {cell.p50_ms:.2f} ms, p99 {cell.p99_ms:.2f} ms, "
        f"errors {cell.errors}"
    )


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path, manifest: Manifest) -> None:
        self.args, self.workdir, self.manifest = args, workdir, manifest
        self.notes: list[str] = []
        self.load_average: dict[str, list[float]] = {}

    def _cell(
        self, gateway: Server, pids: dict[str, int], concurrency: int, duration_s: float
    ) -> CellResult:
        spec = _spec(gateway, self.manifest, concurrency, duration_s)
        return run_cell(GATEWAY_ON, spec, self.args.loadgen_processes, self.workdir, pids)

    def ramp(self, gateway: Server, pids: dict[str, int]) -> list[CellResult]:
        cells = []
        for concurrency in (int(c) for c in self.args.ramp.split(",")):
            spec = _spec(gateway, self.manifest, concurrency, self.args.ramp_seconds)
            spec = LoadSpec(**{**asdict(spec), "warmup_s": RAMP_WARMUP_S})
            cell = run_cell(GATEWAY_ON, spec, self.args.loadgen_processes, self.workdir, pids)
            say(f"   ramp c={concurrency}: {_describe(cell)}")
            cells.append(cell)
        return cells

    def run(self, servers: ServerGroup) -> SoakReport:
        a, m = self.args, self.manifest
        say("starting the model host and the gateway")
        host = stack.start_model_host(servers, m)
        gateway = stack.start_gateway(servers, m, host, metrics=True)
        metrics_port = int(json.loads(gateway.ready_info)["metrics_port"])
        pids = {gateway.name: gateway.process.pid, host.name: host.process.pid}
        sampler = Sampler(gateway, host, metrics_port, a.sample_interval)
        sampler.sample()
        self.load_average["start"] = list(os.getloadavg())
        ramp: list[CellResult] = []
        if a.concurrency is None:
            say("ramp: which concurrency saturates the machine")
            ramp = self.ramp(gateway, pids)
            best = max(ramp, key=lambda c: (c.throughput, -c.concurrency))
            concurrency, source = best.concurrency, f"ramp ({a.ramp}; highest throughput)"
        else:
            concurrency, source = a.concurrency, "--concurrency"
        say(f"warm-up: {a.warmup:g} s at concurrency {concurrency}")
        sampler.enter("warm-up")
        sampler.start()
        try:
            warmup = self._cell(gateway, pids, concurrency, a.warmup)
            say(f"   warm-up: {_describe(warmup)}")
            sampler.enter("soak")
            warmup_end = sampler.sample()
            before = sampler.scrape()
            say(f"soak: {a.duration:g} s; gateway RSS now {warmup_end.gateway_rss_mib:.1f} MiB")
            soak = self._cell(gateway, pids, concurrency, a.duration)
        finally:
            sampler.close()
        end = sampler.sample()
        after = sampler.scrape()
        self.load_average["end"] = list(os.getloadavg())
        say(f"   soak: {_describe(soak)}; gateway RSS {end.gateway_rss_mib:.1f} MiB")
        if host.process.poll() is not None or gateway.process.poll() is not None:
            self.notes.append("a server exited during the run: see the logs (--keep-workdir)")
        codes = {c: round(after.get(c, 0.0) - before.get(c, 0.0)) for c in after}
        memory = memory_figures(sampler.samples, warmup_end, end)
        return SoakReport(
            date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            command="python -m bench.soak " + " ".join(shlex.quote(x) for x in sys.argv[1:]),
            machine=_machine(m),
            model=m.model.describe(),
            images=m.images,
            gateway=(
                "bench.gateway_runner: serving_config/gateway.toml as deployed, batching on, "
                f"/metrics on (scraped every sample), text logs at WARNING; {gateway.ready_info}"
            ),
            load=(
                f"{a.loadgen_processes} process(es) of bench.loadgen, one grpc.aio channel each, "
                "request bytes prepared before; Classify by model name, top 5"
            ),
            concurrency=concurrency,
            concurrency_from=source,
            warmup_s=a.warmup,
            duration_s=a.duration,
            sample_interval_s=a.sample_interval,
            ramp=ramp,
            warmup=warmup,
            soak=soak,
            codes=dict(sorted(codes.items())),
            memory=memory,
            verdict=verdict(memory, a.bound_mib, a.duration, soak.throughput),
            load_average=self.load_average,
            samples=sampler.samples,
            notes=self.notes,
        )


def _machine(manifest: Manifest) -> str:
    machine = manifest.machine
    return (
        f"{machine.get('cpu', '?')}, {machine.get('cpu_cores', '?')} cores; "
        f"Python {sys.version.split()[0]}"
    )


def main() -> int:
    args = _parser().parse_args()

    def measure(workdir: Path, manifest: Manifest) -> tuple[str, dict[str, Any]]:
        with ServerGroup(workdir) as servers:
            report = Soak(args, workdir, manifest).run(servers)
        return render(report), asdict(report)

    return stack.run_main(args, "soak", measure)


if __name__ == "__main__":
    sys.exit(main())
