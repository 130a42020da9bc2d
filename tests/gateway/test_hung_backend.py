"""A hung backend, through the real gateway: calls are answered UNAVAILABLE after the backend
timeout (not the caller's deadline), then at once while the circuit is open, and served again
once the backend answers. Plus the breaker's states on a simulated clock."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

from server.gateway.circuit_breaker import CircuitBreaker
from server.gateway.errors import BackendUnavailable
from server.gateway.server import Gateway, create_server
from tests.gateway.conftest import gateway_settings
from tests.support.backend_proxy import BackendProxy

PHOTO = Path(__file__).resolve().parents[3] / "shared/testdata/images/odd/jpeg_baseline_rgb.jpg"
BACKEND_TIMEOUT_S = 0.5
OPEN_S = 1.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_fails_fast_probes_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures_to_open=3, open_s=2.0, clock=clock)
    for _ in range(2):
        breaker.failed(breaker.before_call())
    assert not breaker.is_open
    breaker.succeeded(breaker.before_call())  # an answer resets the count
    for _ in range(3):
        breaker.failed(breaker.before_call())
    assert breaker.is_open
    with pytest.raises(BackendUnavailable, match="failing fast"):
        breaker.before_call()
    clock.now += 2.0
    assert breaker.before_call() is True  # the probe
    with pytest.raises(BackendUnavailable):
        breaker.before_call()  # one probe at a time
    breaker.failed(True)  # the probe failed: open again for open_s
    with pytest.raises(BackendUnavailable):
        breaker.before_call()
    clock.now += 2.0
    probe = breaker.before_call()
    breaker.succeeded(probe)
    assert not breaker.is_open
    assert breaker.before_call() is False


@pytest.fixture
async def proxied(
    backend_port: int, models_config: Path
) -> AsyncIterator[tuple[Gateway, BackendProxy]]:
    proxy = BackendProxy(f"127.0.0.1:{backend_port}", rule=lambda model: None)
    port = await proxy.start()
    gateway = await create_server(
        gateway_settings(
            port,
            models_config,
            backend_timeout_s=BACKEND_TIMEOUT_S,
            breaker_failures=2,
            breaker_open_s=OPEN_S,
            readiness_interval_s=60.0,  # only the calls below reach the backend
        )
    )
    yield gateway, proxy
    proxy.release()
    await gateway.stop(0)
    await proxy.stop()


def request() -> pb.ClassifyRequest:
    return pb.ClassifyRequest(encoded=PHOTO.read_bytes(), model=pb.ModelSelector(name="cnn"))


async def timed(stub: classifier_pb2_grpc.ClassifierStub) -> tuple[grpc.StatusCode, str, float]:
    started = time.monotonic()
    try:
        await stub.Classify(request(), timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or "", time.monotonic() - started
    return grpc.StatusCode.OK, "", time.monotonic() - started


async def test_a_hung_backend_is_noticed_then_failed_fast_then_served_again(
    proxied: tuple[Gateway, BackendProxy],
) -> None:
    gateway, proxy = proxied
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = classifier_pb2_grpc.ClassifierStub(channel)
        assert (await timed(stub))[0] == grpc.StatusCode.OK  # metadata read and cached
        proxy.rule = lambda model: "hold"  # the backend stops answering Predict
        for _ in range(2):
            code, details, seconds = await timed(stub)
            assert code == grpc.StatusCode.UNAVAILABLE
            assert f"did not answer within {BACKEND_TIMEOUT_S:g} s" in details
            assert seconds < 5  # the backend timeout, not the caller's 10 s
        code, details, seconds = await timed(stub)
        assert code == grpc.StatusCode.UNAVAILABLE
        assert "failing fast" in details
        proxy.rule = lambda model: None
        proxy.release()
        deadline = time.monotonic() + 20
        while (outcome := await timed(stub))[0] != grpc.StatusCode.OK:
            assert outcome[0] == grpc.StatusCode.UNAVAILABLE, outcome
            assert time.monotonic() < deadline, "the gateway never served again"
        assert (await timed(stub))[0] == grpc.StatusCode.OK
