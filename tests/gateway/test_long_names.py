"""Names far over their limits, through the real gateway: a short INVALID_ARGUMENT that does not
echo them, bounded log lines and no metric series of their own."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import pytest
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

from server.gateway.server import Gateway
from tests.gateway.test_observability import sample, scrape

PHOTO = Path(__file__).resolve().parents[3] / "shared/testdata/images/odd/jpeg_baseline_rgb.jpg"
LONG = {"10 kB": "n" * 10_000, "1 MB": "m" * 1_000_000}


@pytest.mark.parametrize("name", LONG.values(), ids=list(LONG))
@pytest.mark.parametrize("field", ["model", "label", "experiment"])
async def test_an_overlong_name_is_refused_without_being_echoed(
    fresh_gateway: Gateway, caplog: pytest.LogCaptureFixture, field: str, name: str
) -> None:
    caplog.set_level(logging.INFO)
    selector = {
        "model": pb.ModelSelector(name=name),
        "label": pb.ModelSelector(name="cnn", label=name),
        "experiment": pb.ModelSelector(experiment=name),
    }[field]
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{fresh_gateway.port}",
        options=[("grpc.max_send_message_length", 8 * 1024 * 1024)],
    ) as channel:
        stub = classifier_pb2_grpc.ClassifierStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Classify(
                pb.ClassifyRequest(encoded=PHOTO.read_bytes(), model=selector), timeout=30
            )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert len(caught.value.details()) < 300
    lines = [r for r in caplog.records if r.name == "imgclf.access"]
    assert len(lines) == 1
    assert len(str(lines[0].__dict__.get("model", ""))) <= 128
    text = await asyncio.to_thread(scrape, fresh_gateway.metrics_port or 0)
    assert name[:100] not in text
    counted = sample(
        text, "imgclf_gateway_requests_total", method="Classify", code="INVALID_ARGUMENT"
    )
    assert counted == 1
