"""What the client sends: the image field for each kind of image, the model selector,
top_k and the optional ids, and the arguments it refuses before making any call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from imgclf_client import InvalidInput

from tests.client.fakes import AnyClient, FakeClassifier

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def sent(servicer: FakeClassifier) -> Any:
    (request,) = servicer.requests("Classify")
    return request


@pytest.mark.parametrize("image", [PNG, bytearray(PNG), memoryview(PNG)], ids=type)
async def test_encoded_bytes_are_sent_as_they_are(
    client: AnyClient, servicer: FakeClassifier, image: bytes
) -> None:
    await client.classify(image, model="cnn")
    request = sent(servicer)
    assert request.WhichOneof("image") == "encoded"
    assert request.encoded == PNG


@pytest.mark.parametrize("as_path", [str, Path], ids=["str", "Path"])
async def test_a_file_path_sends_the_file_bytes(
    client: AnyClient, servicer: FakeClassifier, tmp_path: Path, as_path: type
) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(PNG)
    await client.classify(as_path(path), model="cnn")
    assert sent(servicer).encoded == PNG


@pytest.mark.parametrize(
    ("shape", "channels"),
    [((4, 5), 1), ((4, 5, 1), 1), ((4, 5, 3), 3), ((4, 5, 4), 4)],
    ids=["HxW", "HxWx1", "HxWx3", "HxWx4"],
)
async def test_arrays_are_sent_as_raw_pixels(
    client: AnyClient, servicer: FakeClassifier, shape: tuple[int, ...], channels: int
) -> None:
    pixels = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    await client.classify(pixels, model="cnn")
    request = sent(servicer)
    assert request.WhichOneof("image") == "raw"
    assert (request.raw.height, request.raw.width, request.raw.channels) == (4, 5, channels)
    assert request.raw.pixels == pixels.tobytes()


async def test_non_contiguous_arrays_are_sent_row_major(
    client: AnyClient, servicer: FakeClassifier
) -> None:
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(3, 2, 3).transpose(1, 0, 2)
    await client.classify(pixels, model="cnn")
    raw = sent(servicer).raw
    assert (raw.height, raw.width, raw.channels) == (2, 3, 3)
    assert raw.pixels == np.ascontiguousarray(pixels).tobytes()


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((4, 4, 3), dtype=np.float32),
        np.zeros((4, 4), dtype=np.int16),
        np.zeros((4, 4, 2), dtype=np.uint8),
        np.zeros((4, 4, 3, 1), dtype=np.uint8),
        np.zeros(16, dtype=np.uint8),
        np.zeros((0, 4, 3), dtype=np.uint8),
        b"",
        12345,
    ],
    ids=["float32", "int16", "2-channels", "4-D", "1-D", "empty-array", "empty-bytes", "int"],
)
async def test_bad_images_are_refused_before_any_call(
    client: AnyClient, servicer: FakeClassifier, image: Any
) -> None:
    with pytest.raises(InvalidInput) as raised:
        await client.classify(image, model="cnn")
    assert isinstance(raised.value, ValueError)
    assert servicer.calls == []


async def test_an_unreadable_file_is_refused_before_any_call(
    client: AnyClient, servicer: FakeClassifier, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="cannot read image file"):
        await client.classify(tmp_path / "missing.png", model="cnn")
    with pytest.raises(InvalidInput, match="Is a directory"):
        await client.classify(tmp_path, model="cnn")
    assert servicer.calls == []


async def test_version_is_sent_in_the_selector_and_served(
    client: AnyClient, servicer: FakeClassifier
) -> None:
    result = await client.classify(PNG, model="cnn", version=7)
    selector = sent(servicer).model
    assert (selector.name, selector.WhichOneof("version_choice"), selector.version) == (
        "cnn",
        "version",
        7,
    )
    assert result.version == 7


async def test_label_is_sent_in_the_selector(client: AnyClient, servicer: FakeClassifier) -> None:
    result = await client.classify(PNG, model="cnn", label="stable")
    selector = sent(servicer).model
    assert (selector.WhichOneof("version_choice"), selector.label) == ("label", "stable")
    assert result.version == 3


async def test_no_version_nor_label_leaves_the_choice_to_the_server(
    client: AnyClient, servicer: FakeClassifier
) -> None:
    result = await client.classify(PNG, model="cnn")
    assert sent(servicer).model.WhichOneof("version_choice") is None
    assert result.version == 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"version": 3, "label": "stable"},
        {"label": ""},
        {"version": -1},
        {"top_k": -1},
        {"top_k": 2**32},
        {"timeout": 0},
        {"timeout": -1.0},
    ],
    ids=["version-and-label", "empty-label", "negative-version", "negative-top-k",
         "huge-top-k", "zero-timeout", "negative-timeout"],
)  # fmt: skip
async def test_bad_arguments_are_refused_before_any_call(
    client: AnyClient, servicer: FakeClassifier, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInput):
        await client.classify(PNG, model="cnn", **kwargs)
    with pytest.raises(InvalidInput):
        await client.classify(PNG, model="")
    assert servicer.calls == []


@pytest.mark.parametrize(("top_k", "expected"), [(None, 5), (0, 10), (3, 3), (100, 10)])
async def test_top_k(
    client: AnyClient, servicer: FakeClassifier, top_k: int | None, expected: int
) -> None:
    kwargs = {} if top_k is None else {"top_k": top_k}
    result = await client.classify(PNG, model="cnn", **kwargs)
    assert sent(servicer).top_k == (5 if top_k is None else top_k)
    assert len(result.scores) == expected


async def test_routing_key_and_request_id_are_sent(
    client: AnyClient, servicer: FakeClassifier
) -> None:
    result = await client.classify(PNG, model="cnn", routing_key="user-1", request_id="req-9")
    request = sent(servicer)
    assert (request.routing_key, request.request_id) == ("user-1", "req-9")
    assert result.request_id == "req-9"


async def test_without_a_request_id_the_server_makes_one(
    client: AnyClient, servicer: FakeClassifier
) -> None:
    result = await client.classify(PNG, model="cnn")
    request = sent(servicer)
    assert (request.routing_key, request.request_id) == ("", "")
    assert result.request_id == "generated-id"


async def test_get_model_sends_the_selector(client: AnyClient, servicer: FakeClassifier) -> None:
    await client.get_model("cnn", label="canary")
    (request,) = servicer.requests("GetModel")
    assert (request.model.name, request.model.label) == ("cnn", "canary")
    with pytest.raises(InvalidInput):
        await client.get_model("cnn", version=1, label="canary")
    assert len(servicer.calls) == 1
