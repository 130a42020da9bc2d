"""What the client returns: frozen dataclasses converted from every response field."""

from __future__ import annotations

import dataclasses

import pytest
from imgclf_client import ClassScore, ModelInfo, ModelStatus, ModelVersion, NotFound

from tests.client.fakes import CLASS_NAMES, AnyClient


async def test_classification(client: AnyClient) -> None:
    result = await client.classify(b"image", model="cnn", top_k=3)
    assert [(s.index, s.name) for s in result.scores] == [(9, "truck"), (8, "ship"), (7, "horse")]
    assert [s.probability for s in result.scores] == pytest.approx([10 / 55, 9 / 55, 8 / 55])
    assert all(isinstance(s, ClassScore) for s in result.scores)
    assert (result.model, result.version, result.request_id) == ("cnn", 4, "generated-id")
    assert result.top is result.scores[0]


async def test_every_class_best_first(client: AnyClient) -> None:
    result = await client.classify(b"image", model="cnn", top_k=0)
    probabilities = [score.probability for score in result.scores]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sorted(score.name for score in result.scores) == sorted(CLASS_NAMES)
    assert sum(probabilities) == pytest.approx(1.0)


async def test_results_are_frozen(client: AnyClient) -> None:
    result = await client.classify(b"image", model="cnn")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.version = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.top.probability = 1.0  # type: ignore[misc]


async def test_list_models(client: AnyClient) -> None:
    assert await client.list_models() == [
        ModelStatus(
            name="cnn",
            versions=[
                ModelVersion(3, "AVAILABLE", ["stable"], ""),
                ModelVersion(4, "AVAILABLE", ["canary"], ""),
                ModelVersion(5, "END", [], "could not load"),
                ModelVersion(6, "STATE_42", [], ""),
            ],
            labels={"stable": 3, "canary": 4},
        ),
        ModelStatus(name="xception", versions=[], labels={}),
    ]


async def test_get_model(client: AnyClient) -> None:
    assert await client.get_model("cnn", label="stable") == ModelInfo(
        name="cnn", version=3, input_size=(32, 32, 3), class_names=CLASS_NAMES
    )
    assert (await client.get_model("cnn")).version == 4
    assert (await client.get_model("cnn", version=2)).version == 2


async def test_get_model_of_an_unknown_model(client: AnyClient) -> None:
    with pytest.raises(NotFound, match="unknown model 'resnet'"):
        await client.get_model("resnet")
