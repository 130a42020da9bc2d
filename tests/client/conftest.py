"""Fixtures: a real gRPC server running `FakeClassifier` on free ports, and clients for it.

The server is a threaded `grpc.server`, so the blocking `Client` and the `AsyncClient` can
both call it from the test's event loop thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from imgclf.v1 import classifier_pb2_grpc as pb_grpc
from imgclf_client import AsyncClient, Client

from tests.client.fakes import SERVER_MAX_MESSAGE_BYTES, AnyClient, Connect, FakeClassifier, Server

LOCAL_TCP = grpc.LocalConnectionType.LOCAL_TCP


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    servicer = FakeClassifier()
    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[
            ("grpc.max_receive_message_length", SERVER_MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", SERVER_MAX_MESSAGE_BYTES),
        ],
    )
    pb_grpc.add_ClassifierServicer_to_server(servicer, grpc_server)
    port = grpc_server.add_insecure_port("[::]:0")
    local_port = grpc_server.add_secure_port(
        "localhost:0", grpc.local_server_credentials(LOCAL_TCP)
    )
    grpc_server.start()
    yield Server(servicer, f"localhost:{port}", f"localhost:{local_port}")
    grpc_server.stop(grace=None)


@pytest.fixture
def servicer(server: Server) -> FakeClassifier:
    server.servicer.reset()
    return server.servicer


@pytest.fixture
def target(server: Server, servicer: FakeClassifier) -> str:
    return server.target


@pytest.fixture(params=["sync", "async"])
async def connect(request: pytest.FixtureRequest, target: str) -> AsyncIterator[Connect]:
    """Makes clients of the parametrized kind (to `target` unless given); closes them after."""
    kind = Client if request.param == "sync" else AsyncClient
    opened: list[Client | AsyncClient] = []

    def make(address: str = target, **kwargs: Any) -> AnyClient:
        client = kind(address, **kwargs)
        opened.append(client)
        return AnyClient(client)

    yield make
    for client in opened:
        if isinstance(client, AsyncClient):
            await client.close()
        else:
            client.close()


@pytest.fixture
def client(connect: Connect) -> AnyClient:
    return connect()
