"""Runs each path of the benchmark and collects its numbers (`Runner`); `bench.__main__` decides
the order and writes the report.

Each path starts its servers through a `ServerGroup` and stops them before the next path starts,
so no idle server shares the cores with the one being measured (the model host serves both c)
and d), and stays up across them).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import cpu, gateway_stats, report
from bench.blobs import read_blobs
from bench.cells import run_cell, run_paired_cell
from bench.flask_deps import flask_pythonpath
from bench.loadgen import LoadSpec
from bench.manifest import Manifest
from bench.results import (
    BACKEND,
    FLASK,
    GATEWAY_EXPERIMENT,
    GATEWAY_NAMED,
    GATEWAY_OFF,
    GATEWAY_ON,
    NOOP,
    CellResult,
    InProcessResult,
)
from bench.servers import Server, ServerGroup, free_port, log_tail, spawn, stop

EXPERIMENT_CONCURRENCIES = (1, 32)
EXPERIMENT_WINDOWS = 3  # the interleaved e) window lasts this many cells' durations


def say(text: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {text}", flush=True)


def run_to_end(name: str, module_args: list[str], workdir: Path, timeout_s: float) -> str:
    """Runs a child to completion and returns its last stdout line (its result)."""
    child = spawn(name, module_args, workdir)
    try:
        output, _ = child.communicate(timeout=timeout_s)
    finally:
        stop(child)
    if child.returncode != 0:
        raise RuntimeError(f"{name} failed ({child.returncode}):\n{log_tail(workdir, name)}")
    return output.strip().splitlines()[-1] if output.strip() else ""


class Runner:
    def __init__(self, args: argparse.Namespace, workdir: Path, manifest: Manifest) -> None:
        self.args = args
        self.workdir = workdir
        self.manifest = manifest
        self.concurrencies = [int(c) for c in args.concurrency.split(",")]
        self.cells: list[CellResult] = []
        self.inprocess: list[InProcessResult] = []
        self.notes: list[str] = []
        self.gateway_settings = "not run"
        self.flask_source = "not run"

    def run_inprocess(self) -> None:
        say("a) in-process limit")
        a = self.args
        line = run_to_end(
            "inprocess",
            [
                "bench.inprocess",
                f"--model-dir={self.manifest.model.path}",
                f"--pixels={self.manifest.pixels}",
                f"--batches={a.inprocess_batches}",
                f"--warmup={a.warmup}",
                f"--duration={a.duration}",
            ],
            self.workdir,
            120 + len(a.inprocess_batches.split(",")) * (a.warmup + a.duration) * 3,
        )
        self.inprocess = [InProcessResult(**r) for r in json.loads(line)]
        for r in self.inprocess:
            say(f"   batch {r.batch_size}: {r.throughput:,.0f} img/s")

    def load(
        self,
        path: str,
        kind: str,
        target: Server,
        method: str,
        blobs: str,
        watch: list[Server],
        metrics_port: int | None = None,
        concurrencies: list[int] | None = None,
    ) -> None:
        """Runs `path`'s cells against `target`, recording the CPU use of the servers in
        `watch` (and, given a gateway's metrics port, the gateway's own stage timings)."""
        pids = {server.name: server.process.pid for server in watch}
        levels = concurrencies or self.concurrencies
        for concurrency in levels if path != NOOP else [max(levels)]:
            spec = LoadSpec(
                kind=kind,
                target=target.target,
                method=method,
                blobs=blobs,
                concurrency=concurrency,
                warmup_s=self.args.warmup,
                duration_s=self.args.duration,
            )
            before = gateway_stats.scrape(metrics_port) if metrics_port else {}
            cell = run_cell(path, spec, self.args.loadgen_processes, self.workdir, pids)
            if metrics_port:
                after = gateway_stats.scrape(metrics_port)
                cell.gateway_stages = gateway_stats.breakdown(before, after)
                stages = {k: round(v, 2) for k, v in cell.gateway_stages.items()}
                say(f"   gateway's view: {stages}")
            self.cells.append(cell)
            say(
                f"   {path} c={concurrency}: {cell.throughput:,.1f} img/s, p50 {cell.p50_ms:.2f} "
                f"ms, p99 {cell.p99_ms:.2f} ms, errors {cell.errors}, load-gen "
                f"{cell.loadgen_cpu_us_per_request:.0f} µs CPU/request"
            )

    def run_noop(self, servers: ServerGroup) -> None:
        say("load generator ceiling: no-op gRPC server")
        m = self.manifest
        noop = servers.start_reporting(
            "no-op server", ["bench.noop_server", f"--response-blobs={m.blobs.noop_response}"]
        )
        self.load(NOOP, "grpc", noop, m.classify_method, m.blobs.classify, [noop])
        servers.stop(noop)

    def run_model_host_paths(self, servers: ServerGroup, paths: set[str]) -> None:
        """c) and d): the model host, called directly and through the gateway."""
        m = self.manifest
        say("starting the model host")
        port = free_port()
        host = servers.start_on_port(
            "model host",
            [
                "server.model_host",
                f"--port={port}",
                "--address=127.0.0.1",
                f"--model_config_file={m.model.models_config}",
                "--log_level=WARNING",
            ],
            port,
        )
        servers.wait_until_answers(host, m.predict_method, read_blobs(m.blobs.predict)[0])
        if BACKEND in paths:
            say("c) the backend called directly")
            self.load(BACKEND, "grpc", host, m.predict_method, m.blobs.predict, [host])
        for path, switch in ((GATEWAY_ON, "on"), (GATEWAY_OFF, "off")):
            if path in paths:
                self.run_gateway(servers, host, path, switch)
        if paths & {GATEWAY_NAMED, GATEWAY_EXPERIMENT}:
            self.run_experiment_gateway(servers, host, paths)
        servers.stop(host)

    def run_experiment_gateway(self, servers: ServerGroup, host: Server, paths: set[str]) -> None:
        """e) one gateway (batching on) with an experiment and a SQLite store, its calls by
        model name and through the experiment interleaved in one window, so the difference is
        what routing costs and the machine's drift from one cell to the next cancels out."""
        say("e) the gateway with an experiment: calls by model name and through it, interleaved")
        m = self.manifest
        gateway = servers.start_reporting(
            "gateway experiment",
            [
                "bench.gateway_runner",
                f"--backend={host.target}",
                f"--models-config={m.model.models_config}",
                "--batching=on",
                f"--experiments={m.experiments_file}",
                f"--store-url=sqlite+aiosqlite:///{self.workdir / 'experiments.db'}",
            ],
        )
        servers.wait_until_answers(gateway, m.classify_method, read_blobs(m.blobs.classify)[0])
        pids = {server.name: server.process.pid for server in (gateway, host)}
        duration = self.args.duration * EXPERIMENT_WINDOWS
        for concurrency in (c for c in self.concurrencies if c in EXPERIMENT_CONCURRENCIES):
            spec = LoadSpec(
                kind="grpc",
                target=gateway.target,
                method=m.classify_method,
                blobs=m.blobs.classify_paired,
                concurrency=concurrency,
                warmup_s=self.args.warmup,
                duration_s=duration,
                kinds=2,
            )
            cells = run_paired_cell(
                [GATEWAY_NAMED, GATEWAY_EXPERIMENT],
                spec,
                self.args.loadgen_processes,
                self.workdir,
                pids,
            )
            self.cells += cells
            named, through = cells
            say(
                f"   c={concurrency}: by name p50 {named.p50_ms:.2f} ms, through the experiment "
                f"p50 {through.p50_ms:.2f} ms ({through.p50_ms - named.p50_ms:+.2f} ms); "
                f"{named.throughput + through.throughput:,.1f} img/s in all, errors "
                f"{named.errors + through.errors}"
            )
        self.notes.append(
            "e) rows: the calls by model name and through the experiment alternate in one "
            f"{duration:g} s window per concurrency (at 1, call by call; at 32, half of the "
            "workers each), so both see the same load and the same moment of the machine; the "
            "img/s of each row is its half of the window's calls, and the servers' CPU is shared "
            "out by calls (each row's CPU per request is the mix's)."
        )
        servers.stop(gateway)

    def run_gateway(self, servers: ServerGroup, host: Server, path: str, switch: str) -> None:
        say(f"d) the gateway, batching {switch}")
        m = self.manifest
        gateway = servers.start_reporting(
            "gateway",
            [
                "bench.gateway_runner",
                f"--backend={host.target}",
                f"--models-config={m.model.models_config}",
                f"--batching={switch}",
                *(["--metrics"] if self.args.gateway_metrics else []),
                *self._profile_args(f"gateway-{switch}"),
            ],
        )
        servers.wait_until_answers(gateway, m.classify_method, read_blobs(m.blobs.classify)[0])
        info = json.loads(gateway.ready_info)
        if switch == "on":
            self.gateway_settings = ", ".join(f"{k} {v}" for k, v in info.items())
        self.load(
            path,
            "grpc",
            gateway,
            m.classify_method,
            m.blobs.classify,
            [gateway, host],
            info.get("metrics_port"),
        )
        servers.stop(gateway)

    def _profile_args(self, name: str) -> list[str]:
        if self.args.gateway_profile is None:
            return []
        self.args.gateway_profile.mkdir(parents=True, exist_ok=True)
        return [f"--profile={self.args.gateway_profile.resolve() / name}.prof"]

    def run_flask(self, servers: ServerGroup) -> None:
        source = flask_pythonpath(self.workdir)
        if source is None:
            self.flask_source = "skipped: Flask is not installed (the venv nor its base Python)"
            say(f"b) {self.flask_source}")
            return
        self.flask_source = (
            f"{source.description}; Flask's threaded development server (werkzeug), "
            "one keep-alive HTTP/1.1 connection per client worker"
        )
        say(f"b) the Flask baseline ({source.description})")
        flask = servers.start_reporting(
            "flask",
            ["bench.flask_baseline", f"--model-dir={self.manifest.model.path}"],
            pythonpath=source.pythonpath,
        )
        self.load(FLASK, "http", flask, "", self.manifest.blobs.flask, [flask])
        servers.stop(flask)

    def run_info(self) -> report.RunInfo:
        machine, a, m = self.manifest.machine, self.args, self.manifest
        height, width = m.input_size
        return report.RunInfo(
            date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            machine=(
                f"{machine['cpu']} ({cpu.vector_extensions()}), {machine['cpu_cores']} cores, "
                f"GPUs: {', '.join(machine['gpus']) or 'none'}; "
                f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, "
                f"Python {sys.version.split()[0]}"
            ),
            model=f"{m.model.describe()}; input {height}x{width}x3 uint8",
            images=m.images,
            durations=(
                f"{a.warmup:g} s warmup + {a.duration:g} s measured per cell, concurrency "
                f"{a.concurrency}; in-process batches {a.inprocess_batches}"
            ),
            load_generators=(
                f"{a.loadgen_processes} process(es) of `bench.loadgen` per cell (asyncio; gRPC: "
                "one grpc.aio channel per process, request bytes serialized before timing)"
            ),
            gateway_settings=(
                "serving_config/gateway.toml with "
                + ("metrics ON (diagnosis run)" if a.gateway_metrics else "metrics off")
                + f", text logs at WARNING; {self.gateway_settings}"
            ),
            flask=self.flask_source,
            command="python -m bench " + " ".join(shlex.quote(x) for x in sys.argv[1:]),
            notes=self.notes,
        )
