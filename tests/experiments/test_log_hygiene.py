"""What the gateway logs carries no secret and no user data: over calls with a routing key, an
encoded image, feedback and admin calls with a right and a wrong token, at DEBUG, no log line
holds the token, the routing key or the image's bytes (and a bad call still logs its outcome)."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from imgclf.v1 import admin_pb2, classifier_pb2

from server.gateway.server import Gateway
from server.logs import JsonFormatter
from tests.experiments.conftest import ADMIN_TOKEN, EXPERIMENT, GatewayFactory, Stubs, through

PHOTO = Path(__file__).resolve().parents[3] / "shared/testdata/images/odd/jpeg_baseline_rgb.jpg"
ROUTING_KEY = "user-7f3a9c-jane.doe@example.com"
WRONG_TOKEN = "wrong-secret-6d1e"


async def test_logs_carry_no_token_routing_key_or_image_bytes(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        gateway = await make_gateway()
        stubs = connect(gateway)
        answer = await stubs.classifier.Classify(through(key=ROUTING_KEY, request_id="req-1"))
        photo = PHOTO.read_bytes()
        await stubs.classifier.Classify(
            classifier_pb2.ClassifyRequest(
                encoded=photo,
                model=classifier_pb2.ModelSelector(experiment=EXPERIMENT),
                routing_key=ROUTING_KEY,
            )
        )
        await stubs.classifier.Feedback(
            classifier_pb2.FeedbackRequest(request_id=answer.request_id, class_name="cat")
        )
        end = admin_pb2.EndExperimentRequest(name=EXPERIMENT)
        with pytest.raises(grpc.aio.AioRpcError):
            await stubs.admin.EndExperiment(
                end, metadata=(("authorization", f"Bearer {WRONG_TOKEN}"),)
            )
        await stubs.admin.EndExperiment(end, metadata=(("authorization", f"Bearer {ADMIN_TOKEN}"),))
        await gateway.stop(0)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    text = stream.getvalue()
    assert '"method": "Classify"' in text and '"method": "EndExperiment"' in text
    assert "UNAUTHENTICATED" in text or "PERMISSION_DENIED" in text
    for secret in (ADMIN_TOKEN, WRONG_TOKEN, ROUTING_KEY, "jane.doe"):
        assert secret not in text, secret
    for encoding in (
        photo[100:132].hex(),
        base64.b64encode(photo[120:150]).decode(),
        repr(photo[100:116])[2:-1],
    ):
        assert encoding not in text
