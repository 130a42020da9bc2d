"""Failed calls answer TF Serving 2.21's codes and messages (see server/model_host/errors.py)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
)

from server.model_host import errors
from tests.model_host.helpers import RunningHost, assert_rpc_error, images, predict_request

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _with_input(request: predict_pb2.PredictRequest, key: str, value: np.ndarray) -> None:
    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))


def test_unknown_model(shared_host: RunningHost) -> None:
    assert_rpc_error(
        lambda: shared_host.predict.Predict(predict_request("nope", images(1)), timeout=10),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    )


def test_version_not_loaded(shared_host: RunningHost) -> None:
    assert_rpc_error(
        lambda: shared_host.predict.Predict(predict_request(batch=images(1), version=7)),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Specific(cnn, 7)",
    )


def test_unknown_label(shared_host: RunningHost) -> None:
    assert_rpc_error(
        lambda: shared_host.predict.Predict(predict_request(batch=images(1), label="beta")),
        INVALID,
        "Unrecognized servable version label: beta",
    )


def test_label_of_unknown_model_is_an_unknown_label(shared_host: RunningHost) -> None:
    assert_rpc_error(
        lambda: shared_host.predict.Predict(predict_request("nope", images(1), label="stable")),
        INVALID,
        "Unrecognized servable version label: stable",
    )


def test_unknown_signature(shared_host: RunningHost) -> None:
    assert_rpc_error(
        lambda: shared_host.predict.Predict(predict_request(batch=images(1), signature="x")),
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "x" not found.',
    )


def test_missing_model_spec(shared_host: RunningHost) -> None:
    assert_rpc_error(
        lambda: shared_host.predict.Predict(predict_pb2.PredictRequest()),
        INVALID,
        "Missing ModelSpec",
    )


def test_model_spec_without_name(shared_host: RunningHost) -> None:
    assert_rpc_error(
        lambda: shared_host.predict.Predict(predict_request("", images(1))),
        INVALID,
        "ModelSpec has no name specified.",
    )


def test_wrong_input_key(shared_host: RunningHost) -> None:
    request = predict_request()
    _with_input(request, "pixels", images(1))
    assert_rpc_error(
        lambda: shared_host.predict.Predict(request),
        INVALID,
        "Signature input alias: images(feed name: serving_default_images:0) not found in "
        "request and no default value provided. Inputs expected to be in the request {pixels}, "
        "or default input alias set: ",
    )


def test_extra_input(shared_host: RunningHost) -> None:
    request = predict_request(batch=images(1))
    _with_input(request, "extra", images(1))
    assert_rpc_error(
        lambda: shared_host.predict.Predict(request),
        INVALID,
        "input size does not match signature: 2!=1 len({extra,images}) != len({images}). "
        "Sent extra: {extra}. Missing but required: {}.",
    )


def test_no_input(shared_host: RunningHost) -> None:
    assert_rpc_error(
        lambda: shared_host.predict.Predict(predict_request()),
        INVALID,
        "input size does not match signature: 0!=1 len({}) != len({images}). Sent extra: {}. "
        "Missing but required: {images}.",
    )


def test_input_to_a_signature_without_inputs(shared_host: RunningHost) -> None:
    assert_rpc_error(
        lambda: shared_host.predict.Predict(predict_request(batch=images(1), signature="metadata")),
        INVALID,
        "input size does not match signature: 1!=0 len({images}) != len({}). Sent extra: "
        "{images}. Missing but required: {}.",
    )


@pytest.mark.parametrize(
    ("array", "got"),
    [
        (np.zeros((1, 32, 32, 3), np.float32), "float"),
        (np.zeros((1, 32, 32, 3), np.int32), "int32"),
        (np.zeros((1, 32, 32, 3), np.float64), "double"),
        (np.array([b"x"], dtype=object), "string"),
    ],
)
def test_wrong_dtype(shared_host: RunningHost, array: np.ndarray, got: str) -> None:
    request = predict_request()
    _with_input(request, "images", array)
    assert_rpc_error(
        lambda: shared_host.predict.Predict(request),
        INVALID,
        f"Expects arg[0] to be uint8 but {got} is provided",
    )


@pytest.mark.parametrize(
    ("shape", "printed"),
    [((1, 16, 16, 3), "[1,16,16,3]"), ((32, 32, 3), "[32,32,3]"), ((1, 32, 32, 4), "[1,32,32,4]")],
)
def test_wrong_shape(shared_host: RunningHost, shape: tuple[int, ...], printed: str) -> None:
    request = predict_request()
    _with_input(request, "images", np.zeros(shape, np.uint8))
    assert_rpc_error(
        lambda: shared_host.predict.Predict(request),
        INVALID,
        f"Expects arg[0] (images) to have shape [?,32,32,3] but {printed} is provided",
    )


def _malformed(kind: str) -> tensor_pb2.TensorProto:
    proto = tf.make_tensor_proto(images(1))
    if kind == "short content":
        proto.tensor_content = proto.tensor_content[:-1]
    elif kind == "long content":
        proto.tensor_content += b"\x00"
    elif kind == "negative dimension":
        proto.tensor_shape.dim[0].size = -1
    elif kind == "no dtype":
        proto.dtype = types_pb2.DT_INVALID
    elif kind == "reference dtype":
        proto.dtype = types_pb2.DT_UINT8_REF
    elif kind == "unknown dtype":
        proto.dtype = 999
    elif kind == "overflowing shape":
        for d in proto.tensor_shape.dim:
            d.size = 2**40
    return proto


@pytest.mark.parametrize(
    "kind",
    [
        "short content",
        "long content",
        "negative dimension",
        "no dtype",
        "reference dtype",
        "unknown dtype",
        "overflowing shape",
    ],
)
def test_malformed_tensor(shared_host: RunningHost, kind: str) -> None:
    request = predict_request()
    request.inputs["images"].CopyFrom(_malformed(kind))
    assert_rpc_error(
        lambda: shared_host.predict.Predict(request), INVALID, "tensor parsing error: images"
    )
    # and the host is still fine
    shared_host.predict.Predict(predict_request(batch=images(1)), timeout=10)


def test_unknown_output_filter(shared_host: RunningHost) -> None:
    request = predict_request(batch=images(1))
    request.output_filter.append("logits")
    assert_rpc_error(
        lambda: shared_host.predict.Predict(request),
        INVALID,
        "output tensor alias not found in signature: logits Outputs expected to be in the set "
        "{probabilities}.",
    )


def test_duplicate_output_filter(shared_host: RunningHost) -> None:
    request = predict_request(batch=images(1))
    request.output_filter.extend(["probabilities", "probabilities"])
    assert_rpc_error(
        lambda: shared_host.predict.Predict(request),
        INVALID,
        "duplicate output tensor alias: probabilities",
    )


def test_long_messages_are_truncated_like_tf_serving(shared_host: RunningHost) -> None:
    name = "m" * 2000
    expected = f"Servable not found for request: Latest({name})"[:1024] + "...TRUNCATED"
    assert_rpc_error(
        lambda: shared_host.predict.Predict(predict_request(name, images(1))),
        grpc.StatusCode.NOT_FOUND,
        expected,
    )


def test_unexpected_failure_is_internal_without_details(
    shared_host: RunningHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("server.model_host.servicers.predict", explode)
    assert_rpc_error(
        lambda: shared_host.predict.Predict(predict_request(batch=images(1))),
        grpc.StatusCode.INTERNAL,
        errors.INTERNAL_MESSAGE,
    )


def test_classify_is_unimplemented(shared_host: RunningHost) -> None:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "cnn"
    assert_rpc_error(
        lambda: shared_host.predict.Classify(request),
        grpc.StatusCode.UNIMPLEMENTED,
        "Classify is not implemented by the local model host; use Predict",
    )


def _status_request(model: str, version: int | None = None) -> object:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    return request


def test_status_of_unknown_model(shared_host: RunningHost) -> None:
    assert_rpc_error(
        lambda: shared_host.models.GetModelStatus(_status_request("nope")),
        grpc.StatusCode.NOT_FOUND,
        "Could not find any versions of model nope",
    )


def test_status_of_unknown_version(shared_host: RunningHost) -> None:
    assert_rpc_error(
        lambda: shared_host.models.GetModelStatus(_status_request("cnn", 7)),
        grpc.StatusCode.NOT_FOUND,
        "Could not find version 7 of model cnn",
    )


def test_status_without_model_spec(shared_host: RunningHost) -> None:
    assert_rpc_error(
        lambda: shared_host.models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest()),
        INVALID,
        "Missing ModelSpec",
    )


@pytest.mark.parametrize(
    ("fields", "model", "code", "message"),
    [
        ([], "cnn", INVALID, "GetModelMetadataRequest must specify at least one metadata_field"),
        (["labels"], "cnn", INVALID, "Metadata field %s is not supportedlabels"),
        (
            ["signature_def"],
            "nope",
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Latest(nope)",
        ),
    ],
)
def test_get_model_metadata_errors(
    shared_host: RunningHost, fields: list[str], model: str, code: grpc.StatusCode, message: str
) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
    request.model_spec.name = model
    assert_rpc_error(lambda: shared_host.predict.GetModelMetadata(request), code, message)


def test_get_model_metadata_without_model_spec(shared_host: RunningHost) -> None:
    assert_rpc_error(
        lambda: shared_host.predict.GetModelMetadata(
            get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        ),
        INVALID,
        "Missing ModelSpec",
    )
