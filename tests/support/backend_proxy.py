"""A real gRPC proxy in front of a model backend, which a test can make slow or failing per model.

Every unary call is forwarded as raw bytes to the real backend. Before forwarding a `Predict`, the
proxy asks its `rule(model_name)`: `None` forwards at once; `"hold"` waits until `release()`;
`"fail"` answers INTERNAL without forwarding. So a test can stall or break one model (a shadow
arm's, say) while the others are served by the real host as usual.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
from tensorflow_serving.apis import predict_pb2

Rule = Callable[[str], str | None]


class BackendProxy:
    def __init__(self, target: str, rule: Rule) -> None:
        self._target = target
        self.rule = rule
        self._released = asyncio.Event()
        self.held = 0
        self.forwarded: dict[str, int] = {}
        self._server: grpc.aio.Server | None = None
        self._channel: grpc.aio.Channel | None = None

    def release(self) -> None:
        self._released.set()

    async def start(self, credentials: grpc.ServerCredentials | None = None) -> int:
        """Starts listening on 127.0.0.1 (over TLS with `credentials`); returns the port."""
        self._channel = grpc.aio.insecure_channel(
            self._target, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )
        self._server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )
        self._server.add_generic_rpc_handlers([_Forwarder(self)])
        port = (
            self._server.add_insecure_port("127.0.0.1:0")
            if credentials is None
            else self._server.add_secure_port("127.0.0.1:0", credentials)
        )
        await self._server.start()
        return port

    async def stop(self) -> None:
        self.release()
        if self._server is not None:
            await self._server.stop(0)
        if self._channel is not None:
            await self._channel.close()

    async def forward(self, method: str, request: bytes, context: Any) -> bytes:
        if method.endswith("/Predict"):
            model = predict_pb2.PredictRequest.FromString(request).model_spec.name
            action = self.rule(model)
            if action == "hold":
                self.held += 1
                await self._released.wait()
            elif action == "fail":
                await context.abort(grpc.StatusCode.INTERNAL, "the proxy fails this model")
            self.forwarded[model] = self.forwarded.get(model, 0) + 1
        assert self._channel is not None
        call = self._channel.unary_unary(method)
        try:
            return await call(request, timeout=context.time_remaining())  # type: ignore[no-any-return]
        except grpc.aio.AioRpcError as error:
            await context.abort(error.code(), error.details() or "")
            raise


class _Forwarder(grpc.GenericRpcHandler):
    def __init__(self, proxy: BackendProxy) -> None:
        self._proxy = proxy

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method = handler_call_details.method

        async def handle(request: bytes, context: Any) -> bytes:
            return await self._proxy.forward(method, request, context)

        return grpc.unary_unary_rpc_method_handler(handle)
