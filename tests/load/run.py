"""`make loadtest`: a headless locust run against the gateway, gated by thresholds.

    python -m tests.load.run [--host localhost:50051] [--users 32] [--spawn-rate 8]
                             [--run-time 2m] [--tags stable,experiment] [--profile default]
                             [--tls --ca-cert ca.pem] [--out runs/loadtest]

When nothing answers at a local `--host`, the local stack (`python -m server.dev_stack`, what
`make serve` runs) is started first and stopped afterwards; a remote host is never started. Each
run writes locust's CSV files (statistics, failures, per-second history), its HTML report and the
served-version counts into its own folder `OUT/<time>/`, then checks the figures of all requests
against `tests/load/thresholds.toml` (`--profile`): failure ratio, p95, p99 and throughput. The
exit status is 0 when every threshold holds, 1 when one fails, 2 when the run could not happen.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import time
import tomllib
from datetime import datetime
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
THRESHOLDS = Path(__file__).resolve().parent / "thresholds.toml"
STACK_TIMEOUT_S = 600.0
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.load.run", description=__doc__)
    add = parser.add_argument
    add("--host", default=os.environ.get("IMGCLF_TARGET", "localhost:50051"), help="gateway")
    add("--users", type=int, default=32, help="simulated users (calls in flight)")
    add("--spawn-rate", type=float, default=8.0, help="users started per second")
    add("--run-time", default="1m", help="e.g. 15s, 2m")
    add("--tags", default="", help="only these scenarios (comma-separated locust tags)")
    add("--profile", default="default", help="the thresholds table to check")
    add("--thresholds", type=Path, default=THRESHOLDS)
    add("--out", type=Path, default=REPO / "runs/loadtest", help="a folder per run goes here")
    add("--tls", action="store_true", help="TLS to the gateway")
    add("--ca-cert", default="", help="CA certificate for --tls")
    add("--no-stack", action="store_true", help="never start the local stack")
    return parser


def _answers(host: str, credentials: grpc.ChannelCredentials | None) -> bool:
    channel = grpc.secure_channel(host, credentials) if credentials else grpc.insecure_channel(host)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=3
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _start_stack(port: int) -> subprocess.Popen[str]:
    print(f"[loadtest] nothing answers on port {port}: starting the local stack", flush=True)
    stack = subprocess.Popen(
        [sys.executable, "-m", "server.dev_stack"],
        cwd=REPO,
        env={**os.environ, "GATEWAY_PORT": str(port)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert stack.stdout is not None
    deadline = time.monotonic() + STACK_TIMEOUT_S
    for line in stack.stdout:
        print(f"[stack] {line}", end="", flush=True)
        if "Ctrl-C stops both servers" in line:
            return stack
        if time.monotonic() > deadline:
            break
    _stop_stack(stack)
    raise RuntimeError("the local stack did not come up")


def _stop_stack(stack: subprocess.Popen[str]) -> None:
    if stack.poll() is None:
        stack.send_signal(signal.SIGINT)
        try:
            stack.wait(60)
        except subprocess.TimeoutExpired:
            stack.kill()


def _aggregate(stats_csv: Path, exceptions_csv: Path) -> dict[str, float]:
    with stats_csv.open() as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    total = rows["Aggregated"]
    requests = float(total["Request Count"])
    task_errors = 0.0
    if exceptions_csv.is_file():
        with exceptions_csv.open() as handle:
            task_errors = sum(float(row["Count"]) for row in csv.DictReader(handle))
    return {
        "requests": requests,
        "task_errors": task_errors,
        "failures": float(total["Failure Count"]),
        "failure_ratio": float(total["Failure Count"]) / requests if requests else 1.0,
        "rps": float(total["Requests/s"]),
        "p50_ms": float(total["50%"]),
        "p95_ms": float(total["95%"]),
        "p99_ms": float(total["99%"]),
    }


def check(figures: dict[str, float], limits: dict[str, float]) -> list[str]:
    """The thresholds the figures miss, as sentences."""
    missed = []
    if figures["requests"] == 0:
        missed.append("no request completed")
    if figures.get("task_errors", 0.0) > 0:
        # A task that raised made no call that locust could count: never a pass.
        missed.append(f"{figures['task_errors']:.0f} task errors (see locust_exceptions.csv)")
    if figures["failure_ratio"] > limits.get("max_failure_ratio", 0.0):
        missed.append(
            f"failure ratio {figures['failure_ratio']:.4f} > {limits.get('max_failure_ratio', 0.0)}"
        )
    for key, bound in (("p95_ms", "max_p95_ms"), ("p99_ms", "max_p99_ms")):
        if bound in limits and figures[key] > limits[bound]:
            missed.append(f"{key} {figures[key]:.0f} > {limits[bound]:g}")
    if "min_rps" in limits and figures["rps"] < limits["min_rps"]:
        missed.append(f"throughput {figures['rps']:.1f} req/s < {limits['min_rps']:g}")
    return missed


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    profiles = tomllib.loads(args.thresholds.read_text())
    if args.profile not in profiles:
        print(f"error: no profile '{args.profile}' in {args.thresholds}", file=sys.stderr)
        return 2
    folder = args.out / datetime.now().strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    credentials = None
    if args.tls:
        root = Path(args.ca_cert).read_bytes() if args.ca_cert else None
        credentials = grpc.ssl_channel_credentials(root_certificates=root)
    name, _, port = args.host.rpartition(":")
    stack = None
    if not _answers(args.host, credentials):
        if args.no_stack or name not in LOCAL_HOSTS or args.tls:
            print(f"error: nothing answers at {args.host}", file=sys.stderr)
            return 2
        stack = _start_stack(int(port))
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        args.host,
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        args.run_time,
        "--csv",
        str(folder / "locust"),
        "--csv-full-history",
        "--html",
        str(folder / "report.html"),
        "--only-summary",
        "--exit-code-on-error",
        "0",
    ]
    if args.tags:
        command += ["--tags", *args.tags.split(",")]
    if args.tls:
        command += ["--tls", *(["--ca-cert", args.ca_cert] if args.ca_cert else [])]
    try:
        done = subprocess.run(command, cwd=REPO)
    finally:
        if stack is not None:
            _stop_stack(stack)
    stats = folder / "locust_stats.csv"
    if done.returncode != 0 or not stats.is_file():
        print(f"error: locust failed ({done.returncode}); see {folder}", file=sys.stderr)
        return 2
    figures = _aggregate(stats, folder / "locust_exceptions.csv")
    missed = check(figures, profiles[args.profile])
    print(
        f"[loadtest] {figures['requests']:.0f} requests, {figures['failures']:.0f} failed, "
        f"{figures['rps']:.1f} req/s, p50 {figures['p50_ms']:.0f} ms, p95 {figures['p95_ms']:.0f} "
        f"ms, p99 {figures['p99_ms']:.0f} ms; reports in {folder}",
        flush=True,
    )
    for sentence in missed:
        print(f"[loadtest] threshold missed ({args.profile}): {sentence}", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
