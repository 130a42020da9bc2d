"""Request bytes that are not a valid message, through the real gateway: INVALID_ARGUMENT with a
message, counted and logged like any call; in a stream only that item fails."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import pytest
from imgclf.v1 import classifier_pb2 as pb

from server.gateway.server import Gateway
from tests.gateway.test_observability import sample, scrape

PHOTO = Path(__file__).resolve().parents[3] / "shared/testdata/images/odd/jpeg_baseline_rgb.jpg"
CLASSIFY = "/imgclf.v1.Classifier/Classify"
STREAM = "/imgclf.v1.Classifier/ClassifyStream"


def with_invalid_utf8_name() -> bytes:
    """A Classify request whose model name is not UTF-8 (proto3 strings must be)."""
    good = pb.ClassifyRequest(encoded=b"x", model=pb.ModelSelector(name="AAAA")).SerializeToString()
    return good.replace(b"AAAA", b"\xff\xfe\xfd\xfc")


MALFORMED = {
    "bad wire format": b"\xff\xff\xff\xff\xff",
    "truncated field": pb.ClassifyRequest(encoded=b"0123456789").SerializeToString()[:-3],
    "invalid utf-8": with_invalid_utf8_name(),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=list(MALFORMED))
async def test_a_malformed_request_is_invalid_argument_logged_and_counted(
    fresh_gateway: Gateway,
    body: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fresh_gateway.port}") as channel:
        call = channel.unary_unary(CLASSIFY)  # bytes in, bytes out
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(body, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid imgclf.v1.ClassifyRequest message" in caught.value.details()
        # The gateway keeps serving.
        answer = pb.ClassifyResponse.FromString(
            await call(
                pb.ClassifyRequest(
                    encoded=PHOTO.read_bytes(), model=pb.ModelSelector(name="cnn")
                ).SerializeToString(),
                timeout=30,
            )
        )
        assert len(answer.scores) == 10
    access = [r for r in caplog.records if r.name == "imgclf.access"]
    assert [r.getMessage() for r in access] == ["Classify INVALID_ARGUMENT", "Classify OK"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    text = await asyncio.to_thread(scrape, fresh_gateway.metrics_port or 0)
    counted = sample(
        text, "imgclf_gateway_requests_total", method="Classify", code="INVALID_ARGUMENT"
    )
    assert counted == 1


async def test_a_malformed_item_of_a_stream_fails_alone(fresh_gateway: Gateway) -> None:
    good = pb.ClassifyRequest(
        encoded=PHOTO.read_bytes(), model=pb.ModelSelector(name="cnn")
    ).SerializeToString()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fresh_gateway.port}") as channel:
        stream = channel.stream_stream(STREAM)
        answers = [
            pb.ClassifyStreamResponse.FromString(raw)
            async for raw in stream(iter([good, MALFORMED["invalid utf-8"], good]), timeout=30)
        ]
    assert [a.sequence for a in answers] == [0, 1, 2]
    assert [a.WhichOneof("outcome") for a in answers] == ["result", "error", "result"]
    assert answers[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "not a valid imgclf.v1.ClassifyRequest message" in answers[1].error.message
