"""A gRPC server that answers every unary call at once with the same precomputed bytes.

    python -m bench.noop_server --response-blobs FILE

It measures the load generator's ceiling: the same generator, channel and request bodies as
against the gateway, but a server that does no work. Binds 127.0.0.1 on a free port, prints
`ready <port>`, stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc

from bench.blobs import read_blobs


class _AnswerEverything(grpc.GenericRpcHandler):
    def __init__(self, response: bytes) -> None:
        async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return response

        # No (de)serializers: the request stays bytes and the response is sent as it is.
        self._handler = grpc.unary_unary_rpc_method_handler(answer)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return self._handler


async def serve(response: bytes) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((_AnswerEverything(response),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"ready {port}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await server.stop(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--response-blobs", required=True)
    args = parser.parse_args()
    asyncio.run(serve(read_blobs(args.response_blobs)[0]))


if __name__ == "__main__":
    main()
