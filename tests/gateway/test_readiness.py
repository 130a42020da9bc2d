"""Health tells the truth: NOT_SERVING while the backend is down or serves no version of a
configured model, SERVING again by itself once it does; calls meanwhile are UNAVAILABLE."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

from server.gateway.server import create_server
from tests.gateway.conftest import gateway_settings, start_model_host
from tests.model_factory import publish_tiny, write_models_config

PHOTO = Path(__file__).resolve().parents[3] / "shared/testdata/images/odd/jpeg_baseline_rgb.jpg"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICES = ("", "imgclf.v1.Classifier")


async def statuses(channel: grpc.aio.Channel) -> set[int]:
    health = health_pb2_grpc.HealthStub(channel)
    return {
        (await health.Check(health_pb2.HealthCheckRequest(service=s), timeout=5)).status
        for s in SERVICES
    }


async def until(channel: grpc.aio.Channel, wanted: int, within_s: float = 20.0) -> float:
    """Seconds until every service reports `wanted`."""
    started = time.monotonic()
    while (found := await statuses(channel)) != {wanted}:
        assert time.monotonic() - started < within_s, f"health stayed {found}"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def classify() -> pb.ClassifyRequest:
    return pb.ClassifyRequest(encoded=PHOTO.read_bytes(), model=pb.ModelSelector(name="cnn"))


async def test_a_killed_backend_turns_health_not_serving_until_it_is_back(
    models_config: Path,
) -> None:
    host, port = start_model_host(models_config)
    gateway = await create_server(
        gateway_settings(port, models_config, readiness_interval_s=0.1, default_timeout_s=2.0)
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = classifier_pb2_grpc.ClassifierStub(channel)
            assert await statuses(channel) == {SERVING}
            host.stop(None).wait()
            await until(channel, NOT_SERVING)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Classify(classify(), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            host, _ = start_model_host(models_config, port)
            await until(channel, SERVING)
            assert len((await stub.Classify(classify(), timeout=10)).scores) == 10
    finally:
        await gateway.stop(0)
        host.stop(None)


async def test_no_available_version_is_not_serving_until_one_loads(tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "cnn").mkdir(parents=True)
    config = write_models_config(tmp_path / "models.config", root)
    host, port = start_model_host(config)
    gateway = await create_server(gateway_settings(port, config, readiness_interval_s=0.1))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            assert await statuses(channel) == {NOT_SERVING}
            publish_tiny(root, "cnn", seed=0)
            await until(channel, SERVING)
            stub = classifier_pb2_grpc.ClassifierStub(channel)
            assert (await stub.Classify(classify(), timeout=10)).model_version == 1
    finally:
        await gateway.stop(0)
        host.stop(None)
