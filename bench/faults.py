"""Fault benchmark (issue 10): how fast the gateway's health and its answers follow a backend
that dies or freezes, and how fast they recover. Writes docs/faults.md and docs/faults.json.

    python -m bench.faults [--repeats 5] [--model-root DIR]

The model host and the gateway run as real processes (`bench.stack`), the gateway with its
settings as deployed (readiness checked every `readiness_interval_s`, backend calls capped at
`backend_timeout_s`, a circuit breaker). Then, `--repeats` times each:

- **kill**: SIGKILL the model host; poll, every 20 ms on the gateway's port, (a) the health
  service (grpc.health.v1, service "") until NOT_SERVING and (b) Classify until it answers
  UNAVAILABLE. Restart the model host on the same port and poll (c) health until SERVING, (d)
  Classify until it succeeds, and the model host itself (Predict, direct) to tell its own start
  (TensorFlow, the model) from the gateway's lag;
- **freeze**: SIGSTOP the model host; poll health until NOT_SERVING while a Classify call (with a
  caller deadline of `--deadline`) starts every `--freeze-call-interval` s for `--freeze-seconds`
  s; once they have all ended, SIGCONT, and poll health until SERVING and Classify until it
  succeeds.

Every figure is a time from the signal; the report gives the median and the max over the
repeats. A figure not reached within its cap is counted as missing, not as a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import stack
from bench.faults_report import (
    POLL_S,
    SETTINGS_SHOWN,
    Call,
    FreezeTrial,
    KillTrial,
    Poll,
    render,
    summarise,
)
from bench.faults_report import seconds_shown as _s
from bench.manifest import Manifest
from bench.runner import say
from bench.servers import REPO_ROOT, ChildFailed, Server, ServerGroup
from server.gateway.settings import GatewaySettings

KILL_CAP_S = 30.0
START_CAP_S = 300.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 20),
    ("grpc.min_reconnect_backoff_ms", 20),
    ("grpc.max_reconnect_backoff_ms", 100),
]
"""For the orchestrator's own channel to the model host, so its poll sees the host at once."""
GATEWAY_LOG = f"{stack.GATEWAY}.log"
BREAKER_OPENED = "circuit open for"
"""What server/gateway/circuit_breaker.py logs (WARNING) when the breaker opens."""


def _code(error: grpc.aio.AioRpcError) -> str:
    return str(error.code().name)


class Probe:
    """The orchestrator's view of the gateway: its health service and Classify, by raw bytes."""

    def __init__(self, channel: grpc.aio.Channel, manifest: Manifest, deadline_s: float) -> None:
        self._health = health_pb2_grpc.HealthStub(channel)
        self._classify = channel.unary_unary(
            manifest.classify_method, request_serializer=None, response_deserializer=None
        )
        self._body = stack.first_body(manifest.blobs.classify)
        self.deadline_s = deadline_s

    async def health(self) -> str:
        try:
            response = await self._health.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1
            )
        except grpc.aio.AioRpcError as error:
            return _code(error)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    async def classify(self) -> tuple[str, float]:
        began = time.monotonic()
        try:
            await self._classify(self._body, timeout=self.deadline_s)
            code = "OK"
        except grpc.aio.AioRpcError as error:
            code = _code(error)
        return code, time.monotonic() - began


async def poll(
    check: Callable[[], Awaitable[tuple[str, float]]], wanted: str, since: float, cap_s: float
) -> Poll:
    """Calls `check` every POLL_S until it answers `wanted`, for at most `cap_s` from `since`."""
    seen: Counter[str] = Counter()
    slowest = 0.0
    while time.monotonic() - since < cap_s:
        answer, took = await check()
        seen[answer] += 1
        slowest = max(slowest, took)
        if answer == wanted:
            return Poll(round(time.monotonic() - since, 4), dict(seen), round(slowest, 4))
        await asyncio.sleep(POLL_S)
    return Poll(None, dict(seen), round(slowest, 4))


async def _exited(process: subprocess.Popen[str]) -> None:
    while process.poll() is None:
        await asyncio.sleep(0.05)


async def _timed_health(probe: Probe) -> tuple[str, float]:
    began = time.monotonic()
    return await probe.health(), time.monotonic() - began


class Faults:
    def __init__(self, args: argparse.Namespace, manifest: Manifest, servers: ServerGroup) -> None:
        self.args, self.manifest, self.servers = args, manifest, servers
        self.host: Server | None = None
        self.predict = stack.first_body(manifest.blobs.predict)
        self.crashes: list[str] = []
        """Restarted model hosts that died on their own (not the gateway's doing)."""

    def health_until(
        self, probe: Probe, wanted: int, since: float, cap_s: float
    ) -> Awaitable[Poll]:
        name = str(health_pb2.HealthCheckResponse.ServingStatus.Name(wanted))
        return poll(lambda: _timed_health(probe), name, since, cap_s)

    async def host_answers(self, target: str, since: float) -> Poll:
        """Predict straight to the model host until it answers (its own start)."""
        async with grpc.aio.insecure_channel(target, options=FAST_RECONNECT) as channel:
            call = channel.unary_unary(
                self.manifest.predict_method, request_serializer=None, response_deserializer=None
            )

            async def predict() -> tuple[str, float]:
                began = time.monotonic()
                try:
                    await call(self.predict, timeout=5)
                    return "OK", time.monotonic() - began
                except grpc.aio.AioRpcError as error:
                    return _code(error), time.monotonic() - began

            return await poll(predict, "OK", since, START_CAP_S)

    async def steady(self, probe: Probe) -> None:
        """Waits until health is SERVING and a Classify succeeds (the start of every trial),
        first starting a new model host should the last one have died by itself."""
        assert self.host is not None
        if self.host.process.poll() is not None:
            self.crashes.append(f"model host: exited with {self.host.process.returncode}")
            say(f"   the model host died ({self.crashes[-1]}); starting another")
            port = self.host.port
            self.servers.stop(self.host)
            self.host = await asyncio.to_thread(
                stack.start_model_host, self.servers, self.manifest, port
            )
        since = time.monotonic()
        serving = await self.health_until(probe, SERVING, since, START_CAP_S)
        answered = await poll(probe.classify, "OK", since, START_CAP_S)
        if serving.seconds is None or answered.seconds is None:
            raise RuntimeError(f"the stack did not settle: health {serving}, Classify {answered}")

    async def kill(self, probe: Probe) -> KillTrial | None:
        """One kill and restart; None when the restarted model host itself died before the
        gateway recovered (counted in `self.crashes`, and a fresh host is started)."""
        assert self.host is not None
        host, port = self.host, self.host.port
        killed = time.monotonic()
        host.process.kill()
        not_serving, unavailable = await asyncio.gather(
            self.health_until(probe, NOT_SERVING, killed, KILL_CAP_S),
            poll(probe.classify, "UNAVAILABLE", killed, KILL_CAP_S),
        )
        self.servers.stop(host)  # reaps it
        restarted = time.monotonic()
        args = stack.model_host_args(self.manifest, port)
        recovery = asyncio.gather(
            self.host_answers(f"127.0.0.1:{port}", restarted),
            self.health_until(probe, SERVING, restarted, START_CAP_S),
            poll(probe.classify, "OK", restarted, START_CAP_S),
        )
        try:
            self.host = await asyncio.to_thread(
                self.servers.start_on_port, stack.MODEL_HOST, args, port
            )
            exited = asyncio.ensure_future(_exited(self.host.process))
            first: list[asyncio.Future[Any]] = [recovery, exited]
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            exited.cancel()
            if not recovery.done():
                raise ChildFailed(f"model host: exited with {self.host.process.returncode}")
        except ChildFailed as exc:
            recovery.cancel()
            await asyncio.gather(recovery, return_exceptions=True)
            self.crashes.append(str(exc).splitlines()[0])
            say(f"   the restarted model host died ({self.crashes[-1]}); starting another")
            self.servers.stop(self.host)
            self.host = await asyncio.to_thread(
                stack.start_model_host, self.servers, self.manifest, port
            )
            return None
        host_answers, serving, classify_ok = recovery.result()
        return KillTrial(not_serving, unavailable, host_answers, serving, classify_ok)

    async def freeze(self, probe: Probe) -> FreezeTrial:
        assert self.host is not None
        pid = self.host.process.pid
        frozen = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:
            not_serving, calls = await asyncio.gather(
                self.health_until(probe, NOT_SERVING, frozen, KILL_CAP_S),
                self.calls_while_frozen(probe, frozen),
            )
        finally:
            thawed = time.monotonic()
            os.kill(pid, signal.SIGCONT)
        serving, classify_ok = await asyncio.gather(
            self.health_until(probe, SERVING, thawed, START_CAP_S),
            poll(probe.classify, "OK", thawed, START_CAP_S),
        )
        return FreezeTrial(not_serving, calls, serving, classify_ok)

    async def calls_while_frozen(self, probe: Probe, frozen: float) -> list[Call]:
        async def one() -> Call:
            sent = time.monotonic() - frozen
            code, took = await probe.classify()
            return Call(round(sent, 4), round(took, 4), code)

        tasks = []
        while time.monotonic() - frozen < self.args.freeze_seconds:
            tasks.append(asyncio.create_task(one()))
            await asyncio.sleep(self.args.freeze_call_interval)
        return list(await asyncio.gather(*tasks))

    async def run(self) -> tuple[list[KillTrial], list[FreezeTrial]]:
        say("starting the model host and the gateway")
        self.host = stack.start_model_host(self.servers, self.manifest)
        gateway = stack.start_gateway(self.servers, self.manifest, self.host)
        kills: list[KillTrial] = []
        freezes: list[FreezeTrial] = []
        async with grpc.aio.insecure_channel(gateway.target) as channel:
            probe = Probe(channel, self.manifest, self.args.deadline)
            attempts = 0
            while len(kills) < self.args.repeats and attempts < 2 * self.args.repeats:
                attempts += 1
                await self.steady(probe)
                kill = await self.kill(probe)
                if kill is None:
                    continue
                kills.append(kill)
                say(
                    f"   kill {len(kills)}: NOT_SERVING {_s(kill.not_serving.seconds)}, "
                    f"UNAVAILABLE {_s(kill.classify_unavailable.seconds)}; restart: host answers "
                    f"{_s(kill.host_answers.seconds)}, SERVING {_s(kill.serving.seconds)}, "
                    f"Classify OK {_s(kill.classify_ok.seconds)}"
                )
            for repeat in range(1, self.args.repeats + 1):
                await self.steady(probe)
                freeze = await self.freeze(probe)
                freezes.append(freeze)
                say(
                    f"   freeze {repeat}: NOT_SERVING {_s(freeze.not_serving.seconds)}, first "
                    f"UNAVAILABLE {_s(freeze.first_unavailable_s())}, failing fast from "
                    f"{_s(freeze.fail_fast_from_s())}, {freeze.held_over_1s()} of "
                    f"{len(freeze.calls)} calls held > 1 s; thaw: SERVING "
                    f"{_s(freeze.serving.seconds)}, Classify OK {_s(freeze.classify_ok.seconds)}"
                )
        return kills, freezes


def breaker_openings(log: Path) -> int:
    """How often the gateway logged its circuit breaker opening."""
    try:
        return log.read_text(errors="replace").count(BREAKER_OPENED)
    except OSError:
        return 0


def gateway_settings() -> dict[str, Any]:
    """The settings the gateway runs with (it reads serving_config/gateway.toml from the
    repository root, as this does)."""
    cwd = Path.cwd()
    os.chdir(REPO_ROOT)
    try:
        settings = GatewaySettings()
    finally:
        os.chdir(cwd)
    return {name: getattr(settings, name) for name in SETTINGS_SHOWN}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.faults", description=__doc__.splitlines()[0]
    )
    add = parser.add_argument
    add("--repeats", type=int, default=5, help="trials of each fault (default 5)")
    add("--freeze-seconds", type=float, default=20.0, help="seconds Classify calls start (20)")
    add("--freeze-call-interval", type=float, default=0.1, help="seconds between them (0.1)")
    add("--deadline", type=float, default=10.0, help="the callers' deadline, seconds (10)")
    stack.add_input_arguments(parser)
    return parser


def main() -> int:
    args = _parser().parse_args()

    def measure(workdir: Path, manifest: Manifest) -> tuple[str, dict[str, Any]]:
        settings = gateway_settings()
        with ServerGroup(workdir, ready_timeout_s=START_CAP_S) as servers:
            faults = Faults(args, manifest, servers)
            kills, freezes = asyncio.run(faults.run())
        opened = breaker_openings(workdir / GATEWAY_LOG)
        report = summarise(args, manifest, settings, kills, freezes, opened, faults.crashes)
        return render(report), asdict(report)

    return stack.run_main(args, "faults", measure)


if __name__ == "__main__":
    sys.exit(main())
