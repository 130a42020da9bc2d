"""Raw HTTP/1.1 exchanges with the gateway's HTTP servers (metrics, reports), over a plain socket,
so a test can send what no well-behaved client would: odd methods, paths and request lines."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(port: int, request: bytes, timeout_s: float = 10.0) -> HttpReply:
    """Sends `request` as it is to 127.0.0.1:port and reads the reply until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(request)
        chunks: list[bytes] = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return HttpReply(int(status_line.split(" ")[1]), headers, body)


def request(port: int, path: str, method: str = "GET") -> HttpReply:
    """`METHOD path HTTP/1.1` with a Host header and nothing else."""
    return exchange(port, f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
