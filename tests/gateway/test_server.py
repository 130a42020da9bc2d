"""Server-level behaviour: health, reflection, size limits, an unreachable backend, drain."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

from server.gateway.server import Gateway, create_server
from tests.gateway.conftest import gateway_settings

HOPPER = Path(__file__).resolve().parents[3] / "shared/testdata/images/odd/jpeg_baseline_rgb.jpg"


def classify(image: bytes) -> pb.ClassifyRequest:
    return pb.ClassifyRequest(encoded=image, model=pb.ModelSelector(name="cnn"))


async def test_health_and_reflection(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "imgclf.v1.Classifier"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def ask() -> object:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for reply in reflection.ServerReflectionInfo(ask()):
        names = {s.name for s in reply.list_services_response.service}
        assert {"imgclf.v1.Classifier", "grpc.health.v1.Health"} <= names
        break


async def started(settings_port: int, config: Path, **overrides: object) -> Gateway:
    return await create_server(gateway_settings(settings_port, config, **overrides))


async def test_limits(backend_port: int, models_config: Path) -> None:
    gateway = await started(
        backend_port, models_config, max_encoded_image_bytes=4096, max_message_bytes=64 * 1024
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = classifier_pb2_grpc.ClassifierStub(channel)
            big = HOPPER.read_bytes()
            assert len(big) > 4096
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Classify(classify(big))
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Classify(classify(b"\xff" * (100 * 1024)))
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await gateway.stop(0)


async def test_pixel_limit(backend_port: int, models_config: Path) -> None:
    gateway = await started(backend_port, models_config, max_image_pixels=100 * 100)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = classifier_pb2_grpc.ClassifierStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Classify(classify(HOPPER.read_bytes()))  # 128 x 128
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            raw = pb.ClassifyRequest(
                raw=pb.RawImage(pixels=bytes(200 * 200 * 3), height=200, width=200, channels=3),
                model=pb.ModelSelector(name="cnn"),
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Classify(raw)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await gateway.stop(0)


async def test_unreachable_backend_is_unavailable(models_config: Path) -> None:
    with socket_reserved() as port:
        gateway = await started(port, models_config, default_timeout_s=2.0)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
                stub = classifier_pb2_grpc.ClassifierStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.Classify(classify(HOPPER.read_bytes()), timeout=5)
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "backend" in (caught.value.details() or "")
        finally:
            await gateway.stop(0)


async def test_drain_turns_health_not_serving(backend_port: int, models_config: Path) -> None:
    gateway = await started(backend_port, models_config)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert (await health.Check(health_pb2.HealthCheckRequest())).status == (
            health_pb2.HealthCheckResponse.SERVING
        )
        await gateway.health.enter_graceful_shutdown()
        assert (await health.Check(health_pb2.HealthCheckRequest())).status == (
            health_pb2.HealthCheckResponse.NOT_SERVING
        )
    await gateway.stop(0)


class socket_reserved:
    """A loopback port that nothing listens on (bound, never listening) for the test's length."""

    def __enter__(self) -> int:
        import socket

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        return int(self._socket.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._socket.close()
