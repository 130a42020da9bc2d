"""`python -m bench` (`make bench`): the whole benchmark, in this order.

1. prepare inputs (model, images, request bodies) in a scratch directory;
2. a) the in-process limit;
3. the model host, then: the load generator against a no-op server (its ceiling), c) the
   backend directly, d) the gateway with batching on, then off, each at every concurrency;
4. b) the Flask baseline at every concurrency;
5. the tables, printed and written to docs/benchmark.md and docs/benchmark.json.

Every server is stopped at the end, also on an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from bench import gateway_stats, report
from bench.blobs import read_blobs
from bench.cells import run_cell
from bench.flask_deps import flask_pythonpath
from bench.goals import evaluate
from bench.loadgen import LoadSpec
from bench.results import (
    BACKEND,
    FLASK,
    GATEWAY_OFF,
    GATEWAY_ON,
    NOOP,
    CellResult,
    InProcessResult,
)
from bench.servers import REPO_ROOT, Server, ServerGroup, free_port, log_tail, spawn, stop

ALL_PATHS = ("inprocess", NOOP, BACKEND, GATEWAY_ON, GATEWAY_OFF, FLASK)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--warmup", type=float, default=3.0, help="seconds of warmup per cell (default 3)")
    add("--duration", type=float, default=10.0, help="measured seconds per cell (default 10)")
    add("--concurrency", default="1,8,32", help="comma-separated concurrencies")
    add("--loadgen-processes", type=int, default=1, help="load generator processes per cell")
    add("--inprocess-batches", default="1,32,64", help="batch sizes for the in-process run")
    add("--images", type=int, default=256, help="CIFAR-10 test images in the set")
    add("--paths", default=",".join(ALL_PATHS), help=f"subset of {','.join(ALL_PATHS)}")
    add("--model-root", type=Path, default=REPO_ROOT / "models")
    add("--model-name", default="cnn")
    add("--cifar-dir", type=Path, default=REPO_ROOT.parent / "shared/datasets/cifar-10-batches-py")
    add("--odd-dir", type=Path, default=REPO_ROOT.parent / "shared/testdata/images/odd")
    add("--out-dir", type=Path, default=REPO_ROOT / "docs", help="where the report goes")
    add(
        "--gateway-metrics",
        action="store_true",
        help="diagnosis: turn the gateway's metrics on and report its stage timings per cell",
    )
    add(
        "--gateway-profile",
        type=Path,
        help="diagnosis: cProfile each gateway's event loop into DIR/gateway-{on,off}.prof",
    )
    add("--keep-workdir", action="store_true", help="keep the scratch directory (logs, inputs)")
    return parser


def _terminate_on_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def _run_json_child(name: str, module_args: list[str], workdir: Path, timeout_s: float) -> str:
    """Runs a child to completion and returns its last stdout line (its JSON result)."""
    child = spawn(name, module_args, workdir)
    try:
        output, _ = child.communicate(timeout=timeout_s)
    finally:
        stop(child)
    if child.returncode != 0:
        raise RuntimeError(f"{name} failed ({child.returncode}):\n{log_tail(workdir, name)}")
    return output.strip().splitlines()[-1] if output.strip() else ""


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.paths = set(args.paths.split(","))
        self.concurrencies = [int(c) for c in args.concurrency.split(",")]
        self.cells: list[CellResult] = []
        self.inprocess: list[InProcessResult] = []
        self.notes: list[str] = []
        self.gateway_settings = "not run"
        self.flask_source = "not run"

    def say(self, text: str) -> None:
        print(f"[bench {datetime.now():%H:%M:%S}] {text}", flush=True)

    def prepare(self) -> dict[str, object]:
        self.say("preparing the model, the images and the request bodies")
        a = self.args
        _run_json_child(
            "prepare",
            [
                "bench.prepare",
                f"--workdir={self.workdir}",
                f"--model-root={a.model_root}",
                f"--model-name={a.model_name}",
                f"--cifar-dir={a.cifar_dir}",
                f"--odd-dir={a.odd_dir}",
                f"--images={a.images}",
            ],
            self.workdir,
            600,
        )
        manifest: dict[str, object] = json.loads((self.workdir / "manifest.json").read_text())
        return manifest

    def run_inprocess(self, manifest: dict[str, object]) -> None:
        self.say("a) in-process limit")
        model = manifest["model"]
        assert isinstance(model, dict)
        batches = self.args.inprocess_batches.split(",")
        line = _run_json_child(
            "inprocess",
            [
                "bench.inprocess",
                f"--model-dir={model['path']}",
                f"--pixels={manifest['pixels']}",
                f"--batches={self.args.inprocess_batches}",
                f"--warmup={self.args.warmup}",
                f"--duration={self.args.duration}",
            ],
            self.workdir,
            120 + len(batches) * (self.args.warmup + self.args.duration) * 3,
        )
        self.inprocess = [InProcessResult(**r) for r in json.loads(line)]
        for r in self.inprocess:
            self.say(f"   batch {r.batch_size}: {r.throughput:,.0f} img/s")

    def load(
        self,
        path: str,
        kind: str,
        target: str,
        method: str,
        blobs: str,
        watch: list[Server],
        metrics_port: int | None = None,
    ) -> None:
        """Runs `path`'s cells, recording the CPU use of the servers in `watch` (and, given a
        gateway's metrics port, the gateway's own stage timings)."""
        pids = {server.name: server.process.pid for server in watch}
        for concurrency in self.concurrencies if path != NOOP else [max(self.concurrencies)]:
            spec = LoadSpec(
                kind=kind,
                target=target,
                method=method,
                blobs=blobs,
                concurrency=concurrency,
                warmup_s=self.args.warmup,
                duration_s=self.args.duration,
            )
            before = gateway_stats.scrape(metrics_port) if metrics_port else {}
            cell = run_cell(path, spec, self.args.loadgen_processes, self.workdir, pids)
            if metrics_port:
                cell.gateway_stages = gateway_stats.breakdown(
                    before, gateway_stats.scrape(metrics_port)
                )
                self.say(f"   gateway's view: {_rounded(cell.gateway_stages)}")
            self.cells.append(cell)
            self.say(
                f"   {path} c={concurrency}: {cell.throughput:,.1f} img/s, p50 {cell.p50_ms:.2f} "
                f"ms, p99 {cell.p99_ms:.2f} ms, errors {cell.errors}, load-gen "
                f"{cell.loadgen_cpu_us_per_request:.0f} µs CPU/request"
            )

    def run_noop(self, manifest: dict[str, object], servers: ServerGroup) -> None:
        self.say("load generator ceiling: no-op gRPC server")
        blobs, methods = manifest["blobs"], manifest["methods"]
        assert isinstance(blobs, dict) and isinstance(methods, dict)
        noop = servers.start_reporting(
            "no-op server", ["bench.noop_server", f"--response-blobs={blobs['noop_response']}"]
        )
        self.load(NOOP, "grpc", noop.target, methods["classify"], blobs["classify"], [noop])
        servers.stop(noop)

    def run_model_host_paths(self, manifest: dict[str, object], servers: ServerGroup) -> None:
        """c) and d): the model host, loaded directly and through the gateway."""
        blobs, methods, model = manifest["blobs"], manifest["methods"], manifest["model"]
        assert isinstance(blobs, dict) and isinstance(methods, dict) and isinstance(model, dict)
        self.say("starting the model host")
        port = free_port()
        host = servers.start_on_port(
            "model host",
            [
                "server.model_host",
                f"--port={port}",
                "--address=127.0.0.1",
                f"--model_config_file={model['models_config']}",
                "--log_level=WARNING",
            ],
            port,
        )
        servers.wait_until_answers(host, methods["predict"], read_blobs(blobs["predict"])[0])
        if BACKEND in self.paths:
            self.say("c) the backend called directly")
            self.load(BACKEND, "grpc", host.target, methods["predict"], blobs["predict"], [host])
        for path, switch in ((GATEWAY_ON, "on"), (GATEWAY_OFF, "off")):
            if path not in self.paths:
                continue
            self.say(f"d) the gateway, batching {switch}")
            gateway = servers.start_reporting(
                "gateway",
                [
                    "bench.gateway_runner",
                    f"--backend={host.target}",
                    f"--models-config={model['models_config']}",
                    f"--batching={switch}",
                    *(["--metrics"] if self.args.gateway_metrics else []),
                    *self._profile_args(f"gateway-{switch}"),
                ],
            )
            servers.wait_until_answers(
                gateway, methods["classify"], read_blobs(blobs["classify"])[0]
            )
            info = json.loads(gateway.ready_info)
            if switch == "on":
                self.gateway_settings = ", ".join(f"{k} {v}" for k, v in info.items())
            self.load(
                path,
                "grpc",
                gateway.target,
                methods["classify"],
                blobs["classify"],
                [gateway, host],
                info.get("metrics_port"),
            )
            servers.stop(gateway)
        servers.stop(host)

    def _profile_args(self, name: str) -> list[str]:
        if self.args.gateway_profile is None:
            return []
        self.args.gateway_profile.mkdir(parents=True, exist_ok=True)
        return [f"--profile={self.args.gateway_profile.resolve() / name}.prof"]

    def run_flask(self, manifest: dict[str, object], servers: ServerGroup) -> None:
        source = flask_pythonpath(self.workdir)
        if source is None:
            self.flask_source = "skipped: Flask is not installed (the venv nor its base Python)"
            self.say(f"b) {self.flask_source}")
            return
        self.flask_source = (
            f"{source.description}; Flask's threaded development server (werkzeug), "
            "one keep-alive HTTP/1.1 connection per client worker"
        )
        self.say(f"b) the Flask baseline ({source.description})")
        model, blobs = manifest["model"], manifest["blobs"]
        assert isinstance(model, dict) and isinstance(blobs, dict)
        flask = servers.start_reporting(
            "flask",
            ["bench.flask_baseline", f"--model-dir={model['path']}"],
            pythonpath=source.pythonpath,
        )
        self.load(FLASK, "http", flask.target, "", blobs["flask"], [flask])
        servers.stop(flask)

    def run_info(self, manifest: dict[str, object]) -> report.RunInfo:
        machine = manifest["machine"]
        assert isinstance(machine, dict)
        a = self.args
        return report.RunInfo(
            date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            machine=(
                f"{machine['cpu']}, {machine['cpu_cores']} cores, GPUs: "
                f"{', '.join(machine['gpus']) or 'none'}; TensorFlow {machine['tensorflow']}, "
                f"Keras {machine['keras']}, Python {sys.version.split()[0]}"
            ),
            model=f"{manifest['model_description']}; input {manifest['input_size']} uint8",
            images=str(manifest["images"]),
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


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 2) for key, value in values.items()}


def _guarded(step: Callable[[], None], bench: Bench, what: str) -> None:
    try:
        step()
    except (RuntimeError, OSError) as exc:
        bench.notes.append(f"{what} failed: {str(exc).splitlines()[0]}")
        bench.say(f"{what} failed: {exc}")


def main() -> int:
    args = _parser().parse_args()
    _terminate_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="imgclf-bench-"))
    try:
        bench = Bench(args, workdir)
        manifest = bench.prepare()
        bench.say(f"model: {manifest['model_description']}")
        bench.say(f"images: {manifest['images']}")
        if "inprocess" in bench.paths:
            _guarded(lambda: bench.run_inprocess(manifest), bench, "the in-process run")
        with ServerGroup(workdir) as servers:
            if NOOP in bench.paths:
                _guarded(lambda: bench.run_noop(manifest, servers), bench, "the no-op ceiling")
            if bench.paths & {BACKEND, GATEWAY_ON, GATEWAY_OFF}:
                _guarded(
                    lambda: bench.run_model_host_paths(manifest, servers), bench, "paths c) and d)"
                )
            if FLASK in bench.paths:
                _guarded(lambda: bench.run_flask(manifest, servers), bench, "the Flask baseline")
        limit = report.limit_of(bench.inprocess)
        goals = evaluate({(c.path, c.concurrency): c for c in bench.cells}, limit)
        text = report.write(
            args.out_dir,
            bench.run_info(manifest),
            bench.inprocess,
            bench.cells,
            goals,
            os.cpu_count() or 1,
        )
        print(text)
        bench.say(f"wrote {args.out_dir / 'benchmark.md'} and benchmark.json")
        return 0
    except KeyboardInterrupt:
        print("\n[bench] interrupted; servers stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep_workdir:
            print(f"[bench] scratch directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
