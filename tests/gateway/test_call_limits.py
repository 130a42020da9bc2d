"""Concurrent-call limits through the real gateway: calls over the per-client or the global
limit are RESOURCE_EXHAUSTED at once (counted), health probes always get through, and slots come
back when calls end."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

from server.gateway.call_limits import CallLimits, client_of
from server.gateway.errors import LimitExceeded
from server.gateway.server import Gateway, create_server
from tests.gateway.conftest import gateway_settings
from tests.gateway.test_observability import sample, scrape
from tests.support.backend_proxy import BackendProxy


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


PHOTO = Path(__file__).resolve().parents[3] / "shared/testdata/images/odd/jpeg_baseline_rgb.jpg"


def test_clients_are_addresses_without_their_port() -> None:
    assert client_of("ipv4:10.0.0.7:5123") == "ipv4:10.0.0.7"
    assert client_of("ipv6:[::1]:5123") == "ipv6:[::1]"
    assert client_of("unix:/tmp/s") == "unix:/tmp/s"


def test_slots_are_counted_per_client_and_in_all_and_given_back() -> None:
    limits = CallLimits(max_calls=3, max_calls_per_client=2)
    with limits.slot("ipv4:1.1.1.1:1"), limits.slot("ipv4:1.1.1.1:2"):
        with (
            pytest.raises(LimitExceeded, match="this client already has 2 calls"),
            limits.slot("ipv4:1.1.1.1:3"),
        ):
            pass
        with (
            limits.slot("ipv4:2.2.2.2:1"),
            pytest.raises(LimitExceeded, match="limit of 3 concurrent calls"),
            limits.slot("ipv4:3.3.3.3:1"),
        ):
            pass
    assert limits.in_flight == 0
    unlimited = CallLimits(max_calls=0, max_calls_per_client=0)
    with unlimited.slot("a"), unlimited.slot("a"), unlimited.slot("a"):
        assert unlimited.in_flight == 3


@pytest.fixture
async def proxy(backend_port: int) -> AsyncIterator[tuple[BackendProxy, int]]:
    """A proxy that, once its rule is set to "hold", holds every Predict until released."""
    running = BackendProxy(f"127.0.0.1:{backend_port}", rule=lambda model: None)
    port = await running.start()
    yield running, port
    await running.stop()


@pytest.fixture
async def limited(proxy: tuple[BackendProxy, int], models_config: Path) -> AsyncIterator[Gateway]:
    holding, port = proxy
    gateway = await create_server(
        gateway_settings(
            port,
            models_config,
            host="[::]",  # so that 127.0.0.1 and [::1] are two clients
            batching=False,
            batch_max_in_flight=8,  # so every admitted call reaches the backend
            max_concurrent_calls=3,
            max_concurrent_calls_per_client=2,
        )
    )
    yield gateway
    holding.release()
    await gateway.stop(0)


def request() -> pb.ClassifyRequest:
    return pb.ClassifyRequest(encoded=PHOTO.read_bytes(), model=pb.ModelSelector(name="cnn"))


async def held(proxy: BackendProxy, count: int) -> None:
    async with asyncio.timeout(20):
        while proxy.held < count:
            await asyncio.sleep(0.02)


@pytest.mark.skipif(not ipv6_loopback(), reason="needs ::1 for a second client address")
async def test_calls_over_the_limits_are_refused_and_probes_pass(
    limited: Gateway, proxy: tuple[BackendProxy, int]
) -> None:
    holding = proxy[0]
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{limited.port}") as first,
        grpc.aio.insecure_channel(f"[::1]:{limited.port}") as second,
    ):
        a, b = classifier_pb2_grpc.ClassifierStub(first), classifier_pb2_grpc.ClassifierStub(second)
        await a.Classify(request(), timeout=30)  # the model's metadata read and cached
        holding.rule = lambda model: "hold"
        in_flight = [asyncio.ensure_future(a.Classify(request(), timeout=30)) for _ in range(2)]
        await held(holding, 2)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await a.Classify(request(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "this client already has 2 calls in flight" in caught.value.details()

        in_flight.append(asyncio.ensure_future(b.Classify(request(), timeout=30)))
        await held(holding, 3)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await b.Classify(request(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit of 3 concurrent calls" in caught.value.details()

        probe = await health_pb2_grpc.HealthStub(first).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert probe.status == health_pb2.HealthCheckResponse.SERVING

        holding.release()
        answers = await asyncio.gather(*in_flight)
        assert all(len(answer.scores) == 10 for answer in answers)
        again = await asyncio.gather(*(a.Classify(request(), timeout=30) for _ in range(2)))
        assert len(again) == 2
    text = await asyncio.to_thread(scrape, limited.metrics_port or 0)
    refused = sample(
        text, "imgclf_gateway_requests_total", method="Classify", code="RESOURCE_EXHAUSTED"
    )
    assert refused == 2
