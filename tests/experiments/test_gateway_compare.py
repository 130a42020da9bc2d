"""Compare on a real gateway: one image through several models or versions, each answer with its
version and latency, one bad reference failing alone."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from imgclf.v1 import classifier_pb2

from server.gateway.server import Gateway
from tests.experiments.conftest import GatewayFactory, Stubs, raw_image


def selector(
    name: str, *, version: int = 0, label: str = "", experiment: str = ""
) -> classifier_pb2.ModelSelector:
    message = classifier_pb2.ModelSelector(name=name, experiment=experiment)
    if version:
        message.version = version
    if label:
        message.label = label
    return message


async def test_one_image_through_several_references(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    stub = connect(await make_gateway(store_url="")).classifier
    models = [
        selector("cnn", version=1),
        selector("cnn", label="canary"),
        selector("shadow"),
        selector("cnn", version=9),
    ]
    reply = await stub.Compare(
        classifier_pb2.CompareRequest(raw=raw_image(4), models=models, top_k=0)
    )
    assert [a.model for a in reply.answers] == models
    served = [(a.result.model_name, a.result.model_version) for a in reply.answers[:3]]
    assert served == [("cnn", 1), ("cnn", 2), ("shadow", 1)]
    assert all(a.latency_ms > 0 for a in reply.answers)
    for answer, model in zip(reply.answers[:3], models[:3], strict=True):
        alone = await stub.Classify(
            classifier_pb2.ClassifyRequest(raw=raw_image(4), model=model, top_k=0)
        )
        assert [s.probability for s in answer.result.scores] == [
            s.probability for s in alone.scores
        ]
    failed = reply.answers[3]
    assert failed.WhichOneof("outcome") == "error"
    assert failed.error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "version 9" in failed.error.message
    assert reply.request_id


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ([selector("cnn")], "2 to 8 models"),
        ([selector("cnn")] * 9, "2 to 8 models"),
        ([selector("cnn"), selector("", experiment="ab")], "not experiments"),
        ([selector("cnn"), selector("")], "model name is required"),
    ],
)
async def test_bad_compare_requests(
    make_gateway: GatewayFactory,
    connect: Callable[[Gateway], Stubs],
    models: list[classifier_pb2.ModelSelector],
    message: str,
) -> None:
    stub = connect(await make_gateway(store_url="")).classifier
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Compare(classifier_pb2.CompareRequest(raw=raw_image(0), models=models))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as no_image:
        await stub.Compare(
            classifier_pb2.CompareRequest(models=[selector("cnn"), selector("shadow")])
        )
    assert no_image.value.code() == grpc.StatusCode.INVALID_ARGUMENT
