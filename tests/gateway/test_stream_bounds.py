"""ClassifyStream is bounded, through the real gateway: a stream that sends nothing with nothing
pending is closed after the idle timeout, a busy one is not, and streams over the gateway's
limit are refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

from server.gateway.server import Gateway, create_server
from tests.gateway.conftest import gateway_settings

PHOTO = Path(__file__).resolve().parents[3] / "shared/testdata/images/odd/jpeg_baseline_rgb.jpg"
IDLE_S = 0.5


def request() -> pb.ClassifyRequest:
    return pb.ClassifyRequest(encoded=PHOTO.read_bytes(), model=pb.ModelSelector(name="cnn"))


@pytest.fixture
async def bounded(backend_port: int, models_config: Path) -> AsyncIterator[Gateway]:
    gateway = await create_server(
        gateway_settings(
            backend_port, models_config, stream_idle_timeout_s=IDLE_S, max_concurrent_streams=2
        )
    )
    yield gateway
    await gateway.stop(0)


async def test_a_silent_stream_is_closed_after_the_idle_timeout(bounded: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{bounded.port}") as channel:
        stream = classifier_pb2_grpc.ClassifierStub(channel).ClassifyStream(timeout=30)
        await stream.write(request())
        first = await stream.read()
        assert first.WhichOneof("outcome") == "result"
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stream.read()  # nothing more is sent
        waited = time.monotonic() - started
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "sent no request for 0.5 s" in caught.value.details()
    assert waited < 20  # closed by the gateway, not by the call's own 30 s deadline


async def test_a_stream_that_keeps_sending_stays_open(bounded: Gateway) -> None:
    async def slowly() -> AsyncIterator[pb.ClassifyRequest]:
        for _ in range(6):
            yield request()
            await asyncio.sleep(IDLE_S / 2)  # 1.5 s in all, three idle timeouts

    async with grpc.aio.insecure_channel(f"127.0.0.1:{bounded.port}") as channel:
        stub = classifier_pb2_grpc.ClassifierStub(channel)
        answers = [a async for a in stub.ClassifyStream(slowly(), timeout=30)]
    assert [a.WhichOneof("outcome") for a in answers] == ["result"] * 6


async def test_streams_over_the_limit_are_refused(bounded: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{bounded.port}") as channel:
        stub = classifier_pb2_grpc.ClassifierStub(channel)
        open_streams = [stub.ClassifyStream(timeout=30) for _ in range(2)]
        for stream in open_streams:
            await stream.write(request())
            assert (await stream.read()).WhichOneof("outcome") == "result"
        third = stub.ClassifyStream(timeout=30)
        await third.write(request())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await third.read()
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit of 2 concurrent streams" in caught.value.details()
        for stream in open_streams:
            stream.cancel()
        # The slots come back once the gateway has seen the cancellations.
        deadline = time.monotonic() + 20
        while True:
            try:
                again = stub.ClassifyStream(iter([request()]), timeout=30)
                assert [a.WhichOneof("outcome") async for a in again] == ["result"]
                break
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert time.monotonic() < deadline, "the slots never came back"
                await asyncio.sleep(0.05)
