"""The edge of every call: errors become gRPC statuses here, and only here; every call is counted,
timed and logged here too, with its request id.

Domain errors (`server.gateway.errors`) keep their message, which is written for the caller.
Anything else is a bug: it is logged with its traceback and the caller gets INTERNAL with a fixed
message and the request's id, never the exception's text. A request that carries an empty
`request_id` field gets one made up here, before the servicer sees it. Request bytes that do not
parse are INVALID_ARGUMENT here too (`server.gateway.wire`); in a stream, that one item is.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import nullcontext
from typing import Any, Protocol

import grpc

from server.gateway import errors
from server.gateway.call_limits import CallLimits
from server.gateway.wire import MalformedMessage, tolerant

log = logging.getLogger(__name__)
access_log = logging.getLogger("imgclf.access")

STATUS_BY_ERROR: dict[type[errors.GatewayError], grpc.StatusCode] = {
    errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.LimitExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.BackendUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.BackendFailed: grpc.StatusCode.INTERNAL,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.Conflict: grpc.StatusCode.ABORTED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}
INTERNAL_MESSAGE = "internal error in the gateway; it has been logged"
MAX_REQUEST_ID_LENGTH = 128
MAX_LOGGED_NAME_LENGTH = 128
# Methods whose request id is optional and made up when empty (Feedback's names an earlier call).
MADE_UP_REQUEST_ID_METHODS = frozenset({"Classify", "Compare"})


class CallSink(Protocol):
    def call_finished(
        self, method: str, model: str, version: str, code: str, seconds: float
    ) -> None: ...


def status_for(error: errors.GatewayError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        code = STATUS_BY_ERROR.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def _status_of(error: Exception, method: str, request_id: str) -> tuple[grpc.StatusCode, str]:
    if isinstance(error, errors.GatewayError):
        code = status_for(error)
        if code == grpc.StatusCode.INTERNAL:
            log.error("%s failed: %s", method, error.message, extra={"request_id": request_id})
        return code, error.message
    log.exception(
        "%s failed with an unexpected error",
        method,
        exc_info=error,
        extra={"request_id": request_id},
    )
    suffix = f" (request id {request_id})" if request_id else ""
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE + suffix


def _ensure_request_id(request: Any, method: str) -> str:
    descriptor = getattr(request, "DESCRIPTOR", None)
    if descriptor is None or "request_id" not in descriptor.fields_by_name:
        return ""
    if not request.request_id and method in MADE_UP_REQUEST_ID_METHODS:
        request.request_id = uuid.uuid4().hex
    elif len(request.request_id) > MAX_REQUEST_ID_LENGTH:
        request.request_id = request.request_id[:MAX_REQUEST_ID_LENGTH]
    return str(request.request_id)


class _Call:
    """What one call is about, for its metrics and its log line."""

    def __init__(self, method: str, request: Any, sink: CallSink | None) -> None:
        self.method = method.rsplit("/", 1)[-1]
        self.full_method = method
        self.request_id = _ensure_request_id(request, self.method)
        selector = getattr(request, "model", None)
        # A caller's name goes to the log line cut to a bounded length (the metrics fold
        # unconfigured names into one value), whatever length the request carried.
        self.model = str(getattr(selector, "name", "") or "")[:MAX_LOGGED_NAME_LENGTH]
        self.version = ""
        self.code = grpc.StatusCode.OK
        self._sink = sink
        self._started = time.monotonic()

    def served(self, response: Any) -> None:
        version = getattr(response, "model_version", None)
        if version is None and hasattr(response, "input_size"):
            version = response.version  # GetModelResponse
        if version:
            self.version = str(version)
        model = getattr(response, "model_name", None)
        if model:
            self.model = str(model)

    def finish(self) -> None:
        seconds = time.monotonic() - self._started
        if self._sink is not None:
            self._sink.call_finished(self.method, self.model, self.version, self.code.name, seconds)
        access_log.info(
            "%s %s",
            self.method,
            self.code.name,
            extra={
                "method": self.method,
                "request_id": self.request_id,
                "model": self.model,
                "version": self.version,
                "code": self.code.name,
                "duration_ms": round(seconds * 1000, 3),
            },
        )


UNLIMITED_PREFIX = "/grpc.health.v1.Health/"


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, sink: CallSink | None = None, limits: CallLimits | None = None) -> None:
        self._sink = sink
        self._limits = limits
        # One tolerant parser per method, made on its first call (not on every call).
        self._parsers: dict[str, Callable[[bytes], Any] | None] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        limits = None if method.startswith(UNLIMITED_PREFIX) else self._limits
        for kind, make_handler, wrap in _HANDLER_KINDS:
            behavior = getattr(handler, kind)
            if behavior is not None:
                return make_handler(  # type: ignore[no-any-return]
                    wrap(behavior, method, self._sink, limits),
                    request_deserializer=self._parser(method, handler.request_deserializer),
                    response_serializer=handler.response_serializer,
                )
        return handler

    def _parser(
        self, method: str, deserializer: Callable[[bytes], Any] | None
    ) -> Callable[[bytes], Any] | None:
        if method not in self._parsers:
            self._parsers[method] = tolerant(deserializer)
        return self._parsers[method]


async def _settle(
    call: _Call, error: BaseException, context: grpc.aio.ServicerContext[Any, Any]
) -> None:
    """Records how the call ended; aborts with the mapped status for an ordinary exception."""
    if isinstance(error, grpc.aio.AbortError):
        call.code = context.code() or grpc.StatusCode.UNKNOWN
        raise error
    if not isinstance(error, Exception) or isinstance(error, asyncio.CancelledError):
        call.code = grpc.StatusCode.CANCELLED  # cancelled, or a stream the caller closed
        raise error
    call.code, message = _status_of(error, call.full_method, call.request_id)
    await context.abort(call.code, message)


def _slot(limits: CallLimits | None, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    return nullcontext() if limits is None else limits.slot(context.peer())


def _wrap_unary(
    behavior: Callable[..., Any],
    method: str,
    sink: CallSink | None,
    limits: CallLimits | None,
) -> Callable[..., Any]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        call = _Call(method, request, sink)
        try:
            with _slot(limits, context):
                if isinstance(request, MalformedMessage):
                    raise errors.InvalidRequest(request.message)
                response = await behavior(request, context)
            call.served(response)
            return response
        except BaseException as error:
            await _settle(call, error, context)
        finally:
            call.finish()

    return wrapped


def _wrap_stream(
    behavior: Callable[..., Any],
    method: str,
    sink: CallSink | None,
    limits: CallLimits | None,
) -> Callable[..., Any]:
    async def wrapped(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        call = _Call(method, request, sink)
        try:
            with _slot(limits, context):
                if isinstance(request, MalformedMessage):
                    raise errors.InvalidRequest(request.message)
                async for response in behavior(request, context):
                    yield response
        except BaseException as error:
            await _settle(call, error, context)
        finally:
            call.finish()

    return wrapped


_HANDLER_KINDS: tuple[tuple[str, Callable[..., Any], Callable[..., Any]], ...] = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler, _wrap_unary),
    ("unary_stream", grpc.unary_stream_rpc_method_handler, _wrap_stream),
    ("stream_unary", grpc.stream_unary_rpc_method_handler, _wrap_unary),
    ("stream_stream", grpc.stream_stream_rpc_method_handler, _wrap_stream),
)
