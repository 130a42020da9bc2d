"""ClassifyStream through the real gateway: answers in order, one per request, per-image errors
that do not end the stream, and the same answers as the unary call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

from server.gateway.server import create_server
from tests.gateway.conftest import gateway_settings
from tests.gateway.test_observability import sample, scrape

ODD = Path(__file__).resolve().parents[3] / "shared/testdata/images/odd"
GOOD = ["jpeg_baseline_rgb.jpg", "png_rgba_8bit.png", "gif_static.gif", "webp_lossy.webp"]


def requests() -> list[pb.ClassifyRequest]:
    made = [
        pb.ClassifyRequest(
            encoded=(ODD / GOOD[i % len(GOOD)]).read_bytes(),
            model=pb.ModelSelector(name="cnn", label="stable"),
            request_id=f"r{i}",
        )
        for i in range(12)
    ]
    made[3] = pb.ClassifyRequest(encoded=b"not an image", model=pb.ModelSelector(name="cnn"))
    made[7] = pb.ClassifyRequest(
        encoded=(ODD / GOOD[0]).read_bytes(), model=pb.ModelSelector(name="nope")
    )
    return made


async def feed(items: list[pb.ClassifyRequest]) -> AsyncIterator[pb.ClassifyRequest]:
    for item in items:
        yield item


async def test_stream_answers_in_order_with_per_image_errors(
    stub: classifier_pb2_grpc.ClassifierStub,
) -> None:
    sent = requests()
    answers = [a async for a in stub.ClassifyStream(feed(sent))]
    assert [a.sequence for a in answers] == list(range(len(sent)))
    assert answers[3].WhichOneof("outcome") == "error"
    assert answers[3].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert answers[3].request_id  # made up by the gateway
    assert answers[7].error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "nope" in answers[7].error.message
    for index in set(range(len(sent))) - {3, 7}:
        answer = answers[index]
        assert answer.request_id == f"r{index}"
        assert answer.result.model_version == 1
        assert len(answer.result.scores) == 10
        unary = await stub.Classify(sent[index])
        assert [s.index for s in answer.result.scores] == [s.index for s in unary.scores]


async def test_stream_items_are_batched(backend_port: int, models_config: Path) -> None:
    gateway = await create_server(gateway_settings(backend_port, models_config))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = classifier_pb2_grpc.ClassifierStub(channel)
            image = (ODD / GOOD[0]).read_bytes()
            items = [
                pb.ClassifyRequest(encoded=image, model=pb.ModelSelector(name="cnn", version=2))
                for _ in range(40)
            ]
            answers = [a async for a in stub.ClassifyStream(feed(items))]
        text = await asyncio.to_thread(scrape, gateway.metrics_port or 0)
    finally:
        await gateway.stop(0)
    assert all(a.WhichOneof("outcome") == "result" for a in answers)
    assert sample(text, "imgclf_gateway_batch_size_sum") == 40
    assert sample(text, "imgclf_gateway_batch_size_count") < 40
