"""The metrics port of a real gateway answers `GET /metrics` and nothing else, whatever is sent:
odd paths are 404, other methods 405, broken request lines 400, too many connections 503; and
the gateway keeps serving metrics after each. (The report port: tests/experiments.)"""

from __future__ import annotations

import asyncio
import socket

import pytest

from server.gateway.http_api import MAX_CONNECTIONS, MAX_HEAD_BYTES
from server.gateway.server import Gateway
from tests.support.http import HttpReply, exchange, request


async def get(port: int, path: str, method: str = "GET") -> HttpReply:
    return await asyncio.to_thread(request, port, path, method)


async def send(port: int, raw: bytes) -> HttpReply:
    return await asyncio.to_thread(exchange, port, raw)


def metrics_port(gateway: Gateway) -> int:
    assert gateway.metrics_port
    return gateway.metrics_port


async def test_metrics_answers_get_and_head(gateway: Gateway) -> None:
    port = metrics_port(gateway)
    for path in ("/metrics", "/metrics?name[]=x", f"http://127.0.0.1:{port}/metrics"):
        reply = await get(port, path)
        assert reply.status == 200, path
        assert reply.headers["content-type"].startswith("text/plain")
        assert b"imgclf_gateway_requests_total" in reply.body
    head = await get(port, "/metrics", "HEAD")
    assert head.status == 200 and head.body == b""
    assert int(head.headers["content-length"]) > 0


@pytest.mark.parametrize(
    "path",
    [
        "/experiments/ab/verdict",
        "/experiments/ab/report",
        "/",
        "/metrics/",
        "//metrics",
        "/metrics/x",
        "/METRICS",
        "/%6detrics",
        "/x/../metrics",
        "*",
        "metrics",
        "/" + "x" * 8000,
    ],
)
async def test_every_other_path_is_404(gateway: Gateway, path: str) -> None:
    port = metrics_port(gateway)
    reply = await get(port, path)
    assert reply.status == 404
    assert reply.json() == {"error": "not found; served here: /metrics"}  # the path not echoed
    assert (await get(port, path, "POST")).status == 404
    head = await get(port, path, "HEAD")
    assert head.status == 404 and head.body == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "get"])
async def test_other_methods_on_metrics_are_405(gateway: Gateway, method: str) -> None:
    reply = await get(metrics_port(gateway), "/metrics", method)
    assert reply.status == 405
    assert reply.headers["allow"] == "GET, HEAD"
    assert b"imgclf_gateway" not in reply.body


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /metrics\r\n\r\n",  # HTTP/0.9
        b"GET  /metrics HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/1.1 extra\r\n\r\n",
        b"GET /metrics FTP/1.0\r\n\r\n",
        b"G(T /metrics HTTP/1.1\r\n\r\n",
        b"\x00\xff\xfe /metrics HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\n",  # the head never ends: the client half-closes
    ],
)
async def test_broken_requests_are_400(gateway: Gateway, raw: bytes) -> None:
    port = metrics_port(gateway)

    def half_closed() -> HttpReply:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        status = int(data.split(b" ", 2)[1])
        return HttpReply(status, {}, data)

    assert (await asyncio.to_thread(half_closed)).status == 400
    assert (await get(port, "/metrics")).status == 200


async def test_a_connection_closed_at_once_leaves_the_server_serving(gateway: Gateway) -> None:
    port = metrics_port(gateway)

    def connect_and_close() -> None:
        for _ in range(20):
            socket.create_connection(("127.0.0.1", port), timeout=10).close()

    await asyncio.to_thread(connect_and_close)
    assert (await get(port, "/metrics")).status == 200


async def test_too_many_open_connections_are_refused_then_served_again(
    fresh_gateway: Gateway,
) -> None:
    port = metrics_port(fresh_gateway)
    idle = [
        await asyncio.to_thread(socket.create_connection, ("127.0.0.1", port), 10)
        for _ in range(MAX_CONNECTIONS)
    ]
    try:
        # Every idle connection is counted before this one is served (accepted in order).
        for _ in range(100):
            await asyncio.sleep(0)
        refused = await get(port, "/metrics")
        assert refused.status == 503
        assert b"imgclf_gateway" not in refused.body
    finally:
        for sock in idle:
            sock.close()

    async def served() -> int:
        return (await get(port, "/metrics")).status

    for _ in range(50):  # the idle ones are counted out as the server sees them close
        if await served() == 200:
            break
        await asyncio.sleep(0.05)
    assert await served() == 200
