"""Classify, GetModel and ListModels through a real gateway in front of a real model host."""

from __future__ import annotations

from pathlib import Path

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

from server.gateway.preprocess import ImageLimits, decode_image
from server.gateway.server import create_server
from tests.gateway.conftest import gateway_settings, start_model_host
from tests.model_factory import CIFAR10_CLASSES, tiny_classifier, write_models_config

IMAGES = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "images" / "odd"
PHOTO = IMAGES / "jpeg_exif_orientation8_photo.jpg"
HOPPER = IMAGES / "jpeg_baseline_rgb.jpg"


def request(image: bytes, **selector: object) -> pb.ClassifyRequest:
    return pb.ClassifyRequest(encoded=image, model=pb.ModelSelector(**selector))  # type: ignore[arg-type]


async def expect_error(call: object, code: grpc.StatusCode, fragment: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    assert fragment in (caught.value.details() or ""), caught.value.details()


@pytest.mark.parametrize(
    ("selector", "expected_version"),
    [
        ({"name": "cnn", "label": "stable"}, 1),
        ({"name": "cnn", "label": "canary"}, 2),
        ({"name": "cnn", "version": 1}, 1),
        ({"name": "cnn"}, 2),
    ],
)
async def test_routes_to_the_requested_version(
    stub: classifier_pb2_grpc.ClassifierStub, selector: dict[str, object], expected_version: int
) -> None:
    response = await stub.Classify(request(PHOTO.read_bytes(), **selector))
    assert response.model_name == "cnn"
    assert response.model_version == expected_version
    probabilities = [s.probability for s in response.scores]
    assert len(probabilities) == 10
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert probabilities == sorted(probabilities, reverse=True)
    assert {s.name for s in response.scores} == set(CIFAR10_CLASSES)
    assert all(CIFAR10_CLASSES[s.index] == s.name for s in response.scores)


async def test_scores_match_the_model_run_in_process(
    stub: classifier_pb2_grpc.ClassifierStub, model_root: Path
) -> None:
    data = HOPPER.read_bytes()
    pixels = decode_image(data, ImageLimits(), (32, 32))
    loaded = tf.saved_model.load(str(model_root / "cnn" / "2"))
    expected = loaded.signatures["serving_default"](images=tf.constant(pixels[None]))
    expected = expected["probabilities"].numpy()[0]

    response = await stub.Classify(request(data, name="cnn", version=2))

    got = np.zeros(10, dtype=np.float32)
    for score in response.scores:
        got[score.index] = score.probability
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


async def test_versions_answer_differently(stub: classifier_pb2_grpc.ClassifierStub) -> None:
    data = HOPPER.read_bytes()
    one = await stub.Classify(request(data, name="cnn", version=1))
    two = await stub.Classify(request(data, name="cnn", version=2))
    assert [s.probability for s in one.scores] != [s.probability for s in two.scores]


async def test_top_k_and_request_id(stub: classifier_pb2_grpc.ClassifierStub) -> None:
    three = pb.ClassifyRequest(
        encoded=HOPPER.read_bytes(), model=pb.ModelSelector(name="cnn"), top_k=3, request_id="r-1"
    )
    response = await stub.Classify(three)
    assert len(response.scores) == 3
    assert response.request_id == "r-1"
    every = await stub.Classify(
        pb.ClassifyRequest(
            encoded=HOPPER.read_bytes(), model=pb.ModelSelector(name="cnn"), top_k=99
        )
    )
    assert len(every.scores) == 10
    assert [s.index for s in every.scores[:3]] == [s.index for s in response.scores]
    assert every.request_id  # made by the gateway when the caller sends none


async def test_raw_pixels_match_encoded_png(stub: classifier_pb2_grpc.ClassifierStub) -> None:
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    raw = pb.ClassifyRequest(
        raw=pb.RawImage(pixels=pixels.tobytes(), height=32, width=32, channels=3),
        model=pb.ModelSelector(name="cnn", version=1),
    )
    png = tf.io.encode_png(pixels).numpy()
    from_raw = await stub.Classify(raw)
    from_png = await stub.Classify(request(png, name="cnn", version=1))
    assert [s.index for s in from_raw.scores] == [s.index for s in from_png.scores]
    assert [s.probability for s in from_raw.scores] == pytest.approx(
        [s.probability for s in from_png.scores]
    )


async def test_request_errors(stub: classifier_pb2_grpc.ClassifierStub) -> None:
    data = HOPPER.read_bytes()
    await expect_error(
        stub.Classify(request(data, name="nope")), grpc.StatusCode.NOT_FOUND, "unknown model 'nope'"
    )
    await expect_error(
        stub.Classify(request(data, name="cnn", version=7)),
        grpc.StatusCode.NOT_FOUND,
        "version 7 is not loaded",
    )
    await expect_error(
        stub.Classify(request(data, name="cnn", label="beta")),
        grpc.StatusCode.NOT_FOUND,
        "no label 'beta'",
    )
    await expect_error(
        stub.Classify(request(data, name="")), grpc.StatusCode.INVALID_ARGUMENT, "model name"
    )
    await expect_error(
        stub.Classify(request(data, name="cnn", version=-3)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "positive integer",
    )
    await expect_error(
        stub.Classify(pb.ClassifyRequest(model=pb.ModelSelector(name="cnn"))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "no image",
    )
    await expect_error(
        stub.Classify(request(b"definitely not an image", name="cnn")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "",
    )
    short = pb.ClassifyRequest(
        raw=pb.RawImage(pixels=b"\x00" * 10, height=32, width=32, channels=3),
        model=pb.ModelSelector(name="cnn"),
    )
    await expect_error(stub.Classify(short), grpc.StatusCode.INVALID_ARGUMENT, "")


async def test_get_model(stub: classifier_pb2_grpc.ClassifierStub) -> None:
    info = await stub.GetModel(
        pb.GetModelRequest(model=pb.ModelSelector(name="cnn", label="stable"))
    )
    assert (info.name, info.version) == ("cnn", 1)
    assert (info.input_size.height, info.input_size.width, info.input_size.channels) == (32, 32, 3)
    assert tuple(info.class_names) == CIFAR10_CLASSES
    await expect_error(
        stub.GetModel(pb.GetModelRequest(model=pb.ModelSelector(name="nope"))),
        grpc.StatusCode.NOT_FOUND,
        "nope",
    )


async def test_list_models(stub: classifier_pb2_grpc.ClassifierStub) -> None:
    response = await stub.ListModels(pb.ListModelsRequest())
    (model,) = response.models
    assert model.name == "cnn"
    assert dict(model.labels) == {"stable": 1, "canary": 2}
    states = {v.version: v.state for v in model.versions}
    assert states == {1: pb.VERSION_STATE_AVAILABLE, 2: pb.VERSION_STATE_AVAILABLE}
    labels = {v.version: list(v.labels) for v in model.versions}
    assert labels == {1: ["stable"], 2: ["canary"]}


async def test_a_model_without_the_metadata_signature_is_a_clear_internal_error(
    tmp_path: Path,
) -> None:
    model = tiny_classifier(seed=3)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        lambda images: {"probabilities": model(tf.cast(images, tf.float32))},
        input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.uint8, name="images")],
    )
    archive.write_out(str(tmp_path / "models" / "cnn" / "1"), verbose=False)
    config = write_models_config(tmp_path / "models.config", tmp_path / "models")
    host, port = start_model_host(config)
    gateway = await create_server(gateway_settings(port, config))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = classifier_pb2_grpc.ClassifierStub(channel)
            await expect_error(
                stub.Classify(request(HOPPER.read_bytes(), name="cnn")),
                grpc.StatusCode.INTERNAL,
                "has no 'metadata' signature",
            )
    finally:
        await gateway.stop(0)
        host.stop(None)
