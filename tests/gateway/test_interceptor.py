"""The one place that maps exceptions to statuses, on a real grpc.aio server: domain errors keep
their message; anything else becomes INTERNAL with a fixed message that leaks nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from server.gateway import errors
from server.gateway.interceptor import INTERNAL_MESSAGE, ErrorMappingInterceptor

RAISED = {
    "/t.T/NotFound": errors.NotFound("model 'x' is unknown"),
    "/t.T/Limit": errors.LimitExceeded("image over 20 MiB"),
    "/t.T/Image": errors.InvalidImage("the PNG data is truncated"),
    "/t.T/Down": errors.BackendUnavailable("backend down"),
    "/t.T/Late": errors.DeadlineExceeded("too late"),
    "/t.T/Bug": RuntimeError("password=hunter2"),
}


class Raising(grpc.GenericRpcHandler):
    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        error = RAISED.get(details.method)
        if error is None:
            return None

        async def behavior(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            raise error

        return grpc.unary_unary_rpc_method_handler(behavior)


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    server.add_generic_rpc_handlers([Raising()])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as opened:
        yield opened
    await server.stop(0)


@pytest.mark.parametrize(
    ("method", "code", "details"),
    [
        ("/t.T/NotFound", grpc.StatusCode.NOT_FOUND, "model 'x' is unknown"),
        ("/t.T/Limit", grpc.StatusCode.RESOURCE_EXHAUSTED, "image over 20 MiB"),
        ("/t.T/Image", grpc.StatusCode.INVALID_ARGUMENT, "the PNG data is truncated"),
        ("/t.T/Down", grpc.StatusCode.UNAVAILABLE, "backend down"),
        ("/t.T/Late", grpc.StatusCode.DEADLINE_EXCEEDED, "too late"),
        ("/t.T/Bug", grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE),
    ],
)
async def test_status_and_details(
    channel: grpc.aio.Channel, method: str, code: grpc.StatusCode, details: str
) -> None:
    call = channel.unary_unary(method)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"")
    assert caught.value.code() == code
    assert caught.value.details() == details
