"""The gateway's small HTTP side, on the metrics port: Prometheus metrics and experiment verdicts.

- `GET /metrics`: Prometheus' text format;
- `GET /experiments/NAME/verdict`: the experiment's verdict as JSON (what Argo Rollouts' `web`
  metric provider and Flagger webhooks read), e.g.
  `{"experiment": "cnn-ab", "outcome": "WINNER", "winner": "canary", "p_value": 0.003, ...}`;
- `GET /experiments/NAME/report`: the whole report as JSON (the `ExperimentReport` message).

Anything else is 404 (405 for methods other than GET/HEAD). Requests are read with a size and a
time limit, one request per connection, on the gateway's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from google.protobuf import json_format
from imgclf.v1 import experiments_pb2 as xpb
from prometheus_client import CONTENT_TYPE_LATEST

from server.gateway.errors import GatewayError, NotFound, StoreUnavailable

log = logging.getLogger(__name__)
MAX_HEAD_BYTES = 16 * 1024
READ_TIMEOUT_S = 10.0
ReportSource = Callable[[str], Awaitable[xpb.ExperimentReport]]
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


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


class HttpApi:
    def __init__(self, metrics: Callable[[], bytes], reports: ReportSource) -> None:
        self._metrics = metrics
        self._reports = reports
        self._server: asyncio.Server | None = None

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
        method = "GET"
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            method, path = _request_line(head)
            status, content_type, body = await self._answer(method, path)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            status, content_type, body = 400, "application/json", _error_body("bad request")
        except ConnectionError:
            writer.close()
            return
        except Exception:
            log.exception("HTTP request failed")
            status, content_type, body = 500, "application/json", _error_body("internal error")
        reply = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        with contextlib.suppress(ConnectionError):
            writer.write(reply + (b"" if method == "HEAD" else body))
            await writer.drain()
        writer.close()

    async def _answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return 405, "application/json", _error_body("only GET is served here")
        route = path.split("?", 1)[0]
        if route == "/metrics":
            return 200, CONTENT_TYPE_LATEST, self._metrics()
        parts = route.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "experiments" and parts[2] in ("verdict", "report"):
            name = unquote(parts[1])
            try:
                report = await self._reports(name)
            except NotFound as error:
                return 404, "application/json", _error_body(error.message)
            except StoreUnavailable as error:
                return 503, "application/json", _error_body(error.message)
            except GatewayError as error:
                return 400, "application/json", _error_body(error.message)
            document = verdict_json(report) if parts[2] == "verdict" else message_json(report)
            return 200, "application/json", json.dumps(document).encode()
        return (
            404,
            "application/json",
            _error_body("not found; try /metrics or /experiments/NAME/verdict"),
        )


def _request_line(head: bytes) -> tuple[str, str]:
    if len(head) > MAX_HEAD_BYTES:
        raise asyncio.LimitOverrunError("request head too long", len(head))
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3:
        raise asyncio.IncompleteReadError(head, None)
    return parts[0].upper(), parts[1]


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()
