"""The gateway's small HTTP side: one minimal HTTP server class, and the two route tables it serves.

The gateway runs two of these servers, each on its own address, so that each port answers only
what it is for (a scraper reaches no experiment data, a rollout tool no metrics):

- the metrics server (`metrics_host:metrics_port`, 9464), `metrics_routes`:
  `GET /metrics`, Prometheus' text format, and nothing else;
- the report server (`report_host:report_port`, 9465), `report_routes`:
  `GET /experiments/NAME/verdict`, the experiment's verdict as JSON (what Argo Rollouts' `web`
  metric provider and Flagger webhooks read), e.g.
  `{"experiment": "cnn-ab", "outcome": "WINNER", "winner": "canary", "p_value": 0.003, ...}`,
  and `GET /experiments/NAME/report`, the whole report as JSON (the `ExperimentReport` message).

On both: a path matches a route exactly (segment by segment; the query string is ignored, a
trailing slash or an extra segment is another path). Anything else is 404, whatever the method;
a served path asked with a method other than GET or HEAD is 405 (with `Allow`). A request line
that is not `METHOD TARGET HTTP/x.y` is 400. Requests are read with a size and a time limit and
answers written with a time limit, one request per connection, with a cap on open connections
(more are answered 503 at once), on the gateway's event loop. Error bodies are JSON
`{"error": ...}`: a domain error's message, or a fixed one (never an unexpected exception's text).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from google.protobuf import json_format
from imgclf.v1 import experiments_pb2 as xpb
from prometheus_client import CONTENT_TYPE_LATEST

from server.gateway.errors import GatewayError, NotFound, StoreUnavailable

log = logging.getLogger(__name__)
MAX_HEAD_BYTES = 16 * 1024
READ_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 10.0
REFUSE_READ_S = 1.0
MAX_CONNECTIONS = 64
JSON = "application/json"
CAPTURE = "{}"
"""In a route's path, a segment that matches any one non-empty segment (passed on, unquoted)."""
ReportSource = Callable[[str], Awaitable[xpb.ExperimentReport]]
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip
_METHODS = ("GET", "HEAD")
_REQUEST_LINE = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP/\d\.\d")


@dataclass(frozen=True)
class Reply:
    """A whole answer: status, body and its content type (HEAD sends all but the body)."""

    status: int
    body: bytes
    content_type: str = JSON


Handler = Callable[[tuple[str, ...]], Awaitable[Reply]]
"""Answers a GET (or HEAD) of a route, given the segments its `{}` captured."""


@dataclass(frozen=True)
class Route:
    """A path such as `/metrics` or `/experiments/{}/verdict`, and what answers it."""

    path: str
    handler: Handler

    def match(self, segments: Sequence[str]) -> tuple[str, ...] | None:
        """The captured segments when `segments` (of a request's path) is this route's path."""
        pattern = self.path.split("/")[1:]
        if len(pattern) != len(segments):
            return None
        captured: list[str] = []
        for want, got in zip(pattern, segments, strict=True):
            if want == CAPTURE and got:
                captured.append(unquote(got))
            elif want != got:
                return None
        return tuple(captured)

    def shown(self) -> str:
        return self.path.replace(CAPTURE, "NAME")


def error_reply(status: int, message: str) -> Reply:
    return Reply(status, json.dumps({"error": message}).encode())


class HttpServer:
    """A minimal HTTP/1.1 server for a fixed route table: GET and HEAD, one request a connection.

    `name` appears in its log lines ("metrics", "report").
    """

    def __init__(
        self, name: str, routes: Sequence[Route], *, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        self.name = name
        self._routes = tuple(routes)
        self._max_connections = max_connections
        self._open = 0
        self._server: asyncio.Server | None = None
        served = ", ".join(route.shown() for route in self._routes)
        self._not_found = error_reply(404, f"not found; served here: {served}")

    async def start(self, host: str, port: int) -> int:
        """Listens on host:port (0 picks a port); returns the port bound."""
        self._server = await asyncio.start_server(
            self._handle, host or None, port, limit=MAX_HEAD_BYTES
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= self._max_connections:
            # Read what the client sends first (briefly), so that closing resets nothing unread.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REFUSE_READ_S)
            await _send(writer, "GET", error_reply(503, "too many connections"))
            return
        self._open += 1
        try:
            await self._serve_one(reader, writer)
        finally:
            self._open -= 1

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
        except asyncio.IncompleteReadError as error:
            if not error.partial:  # connected and closed: nothing to answer
                writer.close()
                return
            head = b""
        except (asyncio.LimitOverrunError, TimeoutError):
            head = b""
        except ConnectionError:
            writer.close()
            return
        request = _request_line(head)
        if request is None:
            await _send(writer, "GET", error_reply(400, "bad request"))
            return
        method, target = request
        try:
            reply = await self._answer(method, target)
        except Exception:
            log.exception("%s HTTP request failed", self.name)
            reply = error_reply(500, "internal error")
        await _send(writer, method, reply)

    async def _answer(self, method: str, target: str) -> Reply:
        segments = _path(target).split("/")[1:]
        for route in self._routes:
            captured = route.match(segments)
            if captured is None:
                continue
            if method not in _METHODS:
                return error_reply(405, "only GET and HEAD are served here")
            return await route.handler(captured)
        return self._not_found


async def _send(writer: asyncio.StreamWriter, method: str, reply: Reply) -> None:
    headers = (
        f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Error')}\r\n"
        f"Content-Type: {reply.content_type}\r\nContent-Length: {len(reply.body)}\r\n"
        + ("Allow: GET, HEAD\r\n" if reply.status == 405 else "")
        + "Connection: close\r\n\r\n"
    )
    try:
        writer.write(headers.encode() + (b"" if method == "HEAD" else reply.body))
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
    except (ConnectionError, TimeoutError):  # gone, or not reading: drop it
        writer.transport.abort()
        return
    writer.close()


def _request_line(head: bytes) -> tuple[str, str] | None:
    """(method, target) of `METHOD TARGET HTTP/x.y`; None for anything else."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    found = _REQUEST_LINE.fullmatch(line)
    return None if found is None else (found[1], found[2])


def _path(target: str) -> str:
    """The path of a request target (origin form `/p?q` or absolute form `http://h/p?q`);
    empty (matching no route) for anything else, such as `*`."""
    if target.startswith("/"):
        return target.split("?", 1)[0].split("#", 1)[0]
    if target.lower().startswith(("http://", "https://")):
        return urlsplit(target).path or "/"
    return ""


def metrics_routes(exposition: Callable[[], bytes]) -> list[Route]:
    """The metrics server's table: `/metrics` alone."""

    async def metrics(_: tuple[str, ...]) -> Reply:
        return Reply(200, exposition(), CONTENT_TYPE_LATEST)

    return [Route("/metrics", metrics)]


def report_routes(reports: ReportSource) -> list[Route]:
    """The report server's table: an experiment's verdict and its whole report, as JSON."""

    async def answer(name: str, document: Callable[[xpb.ExperimentReport], Any]) -> Reply:
        try:
            report = await reports(name)
        except NotFound as error:
            return error_reply(404, error.message)
        except StoreUnavailable as error:
            return error_reply(503, error.message)
        except GatewayError as error:
            return error_reply(400, error.message)
        return Reply(200, json.dumps(document(report)).encode())

    async def verdict(captured: tuple[str, ...]) -> Reply:
        return await answer(captured[0], verdict_json)

    async def whole(captured: tuple[str, ...]) -> Reply:
        return await answer(captured[0], message_json)

    return [
        Route(f"/experiments/{CAPTURE}/verdict", verdict),
        Route(f"/experiments/{CAPTURE}/report", whole),
    ]


def message_json(message: Any) -> dict[str, Any]:
    """A proto message as the JSON object the HTTP side and the CLI print."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def verdict_json(report: xpb.ExperimentReport) -> dict[str, Any]:
    """The verdict with plain JSON numbers (NaN as null), for rollout tools' conditions."""
    verdict = report.verdict
    return {
        "experiment": report.experiment.name,
        "revision": report.experiment.revision,
        "outcome": xpb.Verdict.Outcome.Name(verdict.outcome),
        "winner": verdict.winner,
        "p_value": _number(verdict.p_value),
        "summary": verdict.summary,
        "test": verdict.test,
        "alpha": _number(verdict.alpha),
        "mixture_sd": _number(verdict.mixture_sd),
        "min_samples": verdict.min_samples,
        "samples": dict(verdict.samples),
        "needed": verdict.needed,
        "comparisons": [
            {
                "control": c.control,
                "challenger": c.challenger,
                "difference": _number(c.difference),
                "p_value": _number(c.p_value),
                "significant": c.significant,
            }
            for c in verdict.comparisons
        ],
    }
