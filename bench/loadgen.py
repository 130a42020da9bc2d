"""The load generator: one process, `concurrency` asyncio workers, precomputed request bodies.

    python -m bench.loadgen '<LoadSpec as JSON>'

gRPC: one `grpc.aio` channel for the whole process, bytes in and bytes out (no protobuf work per
call). HTTP: one keep-alive connection per worker, opened before the start (HTTP/1.1 carries one
request at a time per connection). Workers send back to back, each cycling through the bodies
from its own offset. With `kinds` > 1 the bodies interleave that many kinds of call (body i is
of kind i % kinds) and every counted call keeps its kind, so one window measures them side by
side under the same load.

Protocol with the orchestrator: the process connects, prints `ready`, reads the start time
(`time.monotonic()`, one clock for every process on the machine) from stdin, then warms up for
`warmup_s` and measures for `duration_s`: a call counts if it completes inside the measured
window. It prints one JSON line: latencies of the counted calls, errors, and its own CPU time
over the window (user + system, every thread of the process), which is how the report shows that
the generator is not the bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass

import grpc

from bench.blobs import read_blobs
from bench.results import LoadResult

Send = Callable[[bytes], Awaitable[None]]
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class LoadSpec:
    kind: str  # "grpc" or "http"
    target: str  # host:port
    method: str  # gRPC method path; unused for HTTP (the path is in the request bytes)
    blobs: str  # file of request bodies (bench.blobs)
    concurrency: int
    warmup_s: float
    duration_s: float
    offset: int = 0  # first body index of this process's workers
    timeout_s: float = 30.0
    kinds: int = 1  # the bodies alternate between this many kinds of call (body index % kinds)


class HttpError(Exception):
    pass


class _HttpConnection:
    """One keep-alive HTTP/1.1 connection; reads Content-Length framed responses."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    async def send(self, request: bytes) -> None:
        if self._writer is None or self._reader is None:
            await self.open()
        assert self._writer is not None and self._reader is not None
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines if line)
        }
        body = await self._reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
            self._reader = self._writer = None
        status = int(status_line.split()[1])
        if status != 200:
            raise HttpError(f"HTTP {status}: {body[:200]!r}")


async def _run(spec: LoadSpec) -> LoadResult:
    bodies = read_blobs(spec.blobs)
    result = LoadResult()
    async with AsyncExitStack() as stack:
        senders = await _connect(spec, stack)
        print("ready", flush=True)
        start = float(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
        measure_from = start + spec.warmup_s
        measure_to = measure_from + spec.duration_s
        await asyncio.sleep(max(0.0, start - time.monotonic()))

        async def worker(index: int, send: Send) -> None:
            position = spec.offset + index
            while (began := time.monotonic()) < measure_to:
                at = position % len(bodies)
                body, kind = bodies[at], at % spec.kinds
                position += spec.concurrency
                error = None
                try:
                    await send(body)
                except (
                    grpc.aio.AioRpcError,
                    HttpError,
                    OSError,
                    asyncio.IncompleteReadError,
                ) as exc:
                    error = exc
                ended = time.monotonic()
                if not measure_from <= ended < measure_to:
                    continue
                if error is None:
                    result.completed += 1
                    result.latencies_us.append(round((ended - began) * 1e6))
                    if spec.kinds > 1:
                        result.call_kinds.append(kind)
                else:
                    result.errors += 1
                    if spec.kinds > 1:
                        result.error_kinds.append(kind)
                    if len(result.error_samples) < 5:
                        result.error_samples.append(_describe(error))

        async def cpu_meter() -> None:
            await asyncio.sleep(max(0.0, measure_from - time.monotonic()))
            cpu_start, wall_start = time.process_time(), time.monotonic()
            await asyncio.sleep(max(0.0, measure_to - time.monotonic()))
            result.cpu_s = time.process_time() - cpu_start
            result.window_s = time.monotonic() - wall_start

        await asyncio.gather(cpu_meter(), *(worker(i, s) for i, s in enumerate(senders)))
    return result


def _describe(error: Exception) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"[:300]
    return repr(error)[:300]


async def _connect(spec: LoadSpec, stack: AsyncExitStack) -> list[Send]:
    """One sender per worker: the shared channel's call (gRPC) or its own connection (HTTP)."""
    if spec.kind == "grpc":
        channel = grpc.aio.insecure_channel(
            spec.target,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        stack.push_async_callback(channel.close)
        await asyncio.wait_for(channel.channel_ready(), timeout=30)
        call = channel.unary_unary(spec.method)  # no serializers: bytes in, bytes out

        async def send(body: bytes) -> None:
            await call(body, timeout=spec.timeout_s)

        return [send] * spec.concurrency
    if spec.kind == "http":
        host, _, port = spec.target.rpartition(":")
        connections = [_HttpConnection(host, int(port)) for _ in range(spec.concurrency)]
        for connection in connections:
            await connection.open()
            stack.push_async_callback(connection.close)
        return [connection.send for connection in connections]
    raise ValueError(f"unknown kind {spec.kind!r}")


def main() -> None:
    spec = LoadSpec(**json.loads(sys.argv[1]))
    result = asyncio.run(_run(spec))
    print(json.dumps(asdict(result)), flush=True)


if __name__ == "__main__":
    main()
