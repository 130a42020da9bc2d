"""Predict, GetModelMetadata and GetModelStatus on a healthy host: what a gateway relies on."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from server.model_host import HostOptions
from server.model_host.options import parse_channel_arguments
from tests.model_host.helpers import (
    CLASS_NAMES,
    RunningHost,
    add_version,
    images,
    model_config,
    predict_request,
    write_config,
)

Reference = Callable[[int, np.ndarray], np.ndarray]


@pytest.mark.parametrize(
    ("version", "label", "expected_version", "seed"),
    [
        (None, None, 2, 1),
        (1, None, 1, 0),
        (2, None, 2, 1),
        (None, "stable", 1, 0),
        (None, "canary", 2, 1),
    ],
)
def test_predict_resolves_the_requested_version(
    shared_host: RunningHost,
    reference: Reference,
    version: int | None,
    label: str | None,
    expected_version: int,
    seed: int,
) -> None:
    batch = images(3, seed=7)
    response = shared_host.predict.Predict(
        predict_request(batch=batch, version=version, label=label), timeout=10
    )
    assert response.model_spec.name == "cnn"
    assert response.model_spec.version.value == expected_version
    assert response.model_spec.signature_name == "serving_default"
    probabilities = tf.make_ndarray(response.outputs["probabilities"])
    assert probabilities.shape == (3, len(CLASS_NAMES))
    np.testing.assert_allclose(probabilities, reference(seed, batch), rtol=1e-5, atol=1e-6)


def test_outputs_are_typed_fields_like_tf_serving(shared_host: RunningHost) -> None:
    response = shared_host.predict.Predict(predict_request(batch=images(2)), timeout=10)
    tensor = response.outputs["probabilities"]
    assert tensor.dtype == types_pb2.DT_FLOAT
    assert [d.size for d in tensor.tensor_shape.dim] == [2, 10]
    assert not tensor.tensor_content
    assert len(tensor.float_val) == 20


def test_batch_of_32(shared_host: RunningHost, reference: Reference) -> None:
    batch = images(32, seed=3)
    response = shared_host.predict.Predict(predict_request(batch=batch), timeout=10)
    probabilities = tf.make_ndarray(response.outputs["probabilities"])
    assert probabilities.shape == (32, 10)
    np.testing.assert_allclose(probabilities, reference(1, batch), rtol=1e-5, atol=1e-6)


def test_input_as_int_val_is_accepted(shared_host: RunningHost, reference: Reference) -> None:
    batch = images(1, seed=5)
    request = predict_request()
    tensor = request.inputs["images"]
    tensor.dtype = types_pb2.DT_UINT8
    for size in batch.shape:
        tensor.tensor_shape.dim.add(size=size)
    tensor.int_val.extend(batch.ravel().tolist())
    response = shared_host.predict.Predict(request, timeout=10)
    np.testing.assert_allclose(
        tf.make_ndarray(response.outputs["probabilities"]), reference(1, batch), rtol=1e-5
    )


def test_explicit_signature_name_and_output_filter(shared_host: RunningHost) -> None:
    request = predict_request(batch=images(1), signature="serving_default")
    request.output_filter.append("probabilities")
    response = shared_host.predict.Predict(request, timeout=10)
    assert list(response.outputs) == ["probabilities"]
    assert response.model_spec.signature_name == "serving_default"


@pytest.mark.parametrize("version", [None, 1])
def test_metadata_signature_through_predict_with_no_inputs(
    shared_host: RunningHost, version: int | None
) -> None:
    response = shared_host.predict.Predict(
        predict_request(signature="metadata", version=version), timeout=10
    )
    assert response.model_spec.signature_name == "metadata"
    assert response.model_spec.version.value == (version or 2)
    names = tf.make_ndarray(response.outputs["class_names"])
    assert [n.decode() for n in names] == list(CLASS_NAMES)
    assert response.outputs["class_names"].dtype == types_pb2.DT_STRING
    assert list(response.outputs["input_size"].int_val) == [32, 32, 3]
    assert response.outputs["input_size"].dtype == types_pb2.DT_INT32


@pytest.mark.parametrize(("version", "expected"), [(None, 2), (1, 1)])
def test_get_model_metadata_returns_the_signature_defs(
    shared_host: RunningHost, version: int | None, expected: int
) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "cnn"
    if version is not None:
        request.model_spec.version.value = version
    response = shared_host.predict.GetModelMetadata(request, timeout=10)
    assert response.model_spec.name == "cnn"
    assert response.model_spec.version.value == expected
    any_proto = response.metadata["signature_def"]
    assert any_proto.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert any_proto.Unpack(signature_defs)
    assert {"serving_default", "metadata"} <= set(signature_defs.signature_def)
    serving = signature_defs.signature_def["serving_default"]
    assert serving.method_name == "tensorflow/serving/predict"
    images_info = serving.inputs["images"]
    assert images_info.name == "serving_default_images:0"
    assert images_info.dtype == types_pb2.DT_UINT8
    assert [d.size for d in images_info.tensor_shape.dim] == [-1, 32, 32, 3]
    assert serving.outputs["probabilities"].dtype == types_pb2.DT_FLOAT
    metadata = signature_defs.signature_def["metadata"]
    assert not metadata.inputs
    assert set(metadata.outputs) == {"class_names", "input_size"}


def test_get_model_status_lists_versions_highest_first(shared_host: RunningHost) -> None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "cnn"
    response = shared_host.models.GetModelStatus(request, timeout=10)
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert [(s.version, s.state) for s in response.model_version_status] == [
        (2, available),
        (1, available),
    ]
    for status in response.model_version_status:
        assert status.status.error_code == 0
        assert status.status.error_message == ""


def test_get_model_status_of_one_version(shared_host: RunningHost) -> None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "cnn"
    request.model_spec.version.value = 1
    response = shared_host.models.GetModelStatus(request, timeout=10)
    assert [s.version for s in response.model_version_status] == [1]


def test_predict_round_trip_is_fast(shared_host: RunningHost) -> None:
    """A loose gate (the gateway's whole budget is p50 <= 10 ms); see bench_predict for numbers."""
    request = predict_request(batch=images(1))
    for _ in range(10):
        shared_host.predict.Predict(request, timeout=10)
    timings = []
    for _ in range(100):
        start = time.perf_counter()
        shared_host.predict.Predict(request, timeout=10)
        timings.append(time.perf_counter() - start)
    assert float(np.median(timings)) < 0.010


def test_requests_far_over_grpcs_4_mib_default_are_accepted(shared_host: RunningHost) -> None:
    batch = images(2048)  # 6 MiB of pixels
    response = shared_host.predict.Predict(predict_request(batch=batch), timeout=30)
    assert [d.size for d in response.outputs["probabilities"].tensor_shape.dim] == [2048, 10]


def test_message_limits_can_be_set_like_tf_serving(
    tmp_path: Path, templates: dict[int, Path], start_host: Callable[..., RunningHost]
) -> None:
    add_version(tmp_path / "cnn", templates[0])
    config = write_config(tmp_path / "models.config", model_config("cnn", tmp_path / "cnn"))
    options = HostOptions(
        grpc_channel_arguments=parse_channel_arguments("grpc.max_receive_message_length=65536")
    )
    running = start_host(config, options=options)
    running.predict.Predict(predict_request(batch=images(1)), timeout=10)
    with pytest.raises(grpc.RpcError) as caught:
        running.predict.Predict(predict_request(batch=images(64)), timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
