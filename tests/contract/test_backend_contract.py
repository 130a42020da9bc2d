"""What the gateway relies on from its backend, checked against every backend there is here:
the local model host always, and real `tensorflow_model_server` when it is on PATH (production's
server; it cannot be installed on the development machines, so that half is skipped there)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from server.gateway.tensors import to_numpy, to_strings, uint8_tensor
from server.model_host import create_server
from tests.model_factory import CIFAR10_CLASSES, publish_tiny, write_models_config

REAL_SERVER = shutil.which("tensorflow_model_server")
READY_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(target: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with grpc.insecure_channel(target) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = get_model_status_pb2.GetModelStatusRequest(
            model_spec=model_pb2.ModelSpec(name="cnn")
        )
        while time.monotonic() < deadline:
            try:
                status = stub.GetModelStatus(request, timeout=2)
                states = {v.version: v.state for v in status.model_version_status}
                if all(
                    states.get(v) == get_model_status_pb2.ModelVersionStatus.AVAILABLE
                    for v in (1, 2)
                ):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise AssertionError(f"backend at {target} never served cnn versions 1 and 2")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("contract")
    publish_tiny(root, seed=0)
    publish_tiny(root, seed=1)
    return write_models_config(
        root / "models.config", root, labels={"stable": 1, "canary": 2}, policy="all {}"
    )


@pytest.fixture(
    scope="module",
    params=[
        "local model host",
        pytest.param(
            "tensorflow_model_server",
            marks=pytest.mark.skipif(
                REAL_SERVER is None, reason="tensorflow_model_server not on PATH"
            ),
        ),
    ],
)
def backend(request: pytest.FixtureRequest, config: Path) -> Iterator[grpc.Channel]:
    if request.param == "local model host":
        host, port = create_server(config, port=0, allow_version_labels_for_unavailable_models=True)
        stop = lambda: host.stop(None)  # noqa: E731
    else:
        port = free_port()
        process = subprocess.Popen(
            [
                str(REAL_SERVER),
                f"--port={port}",
                "--rest_api_port=0",
                f"--model_config_file={config}",
                "--allow_version_labels_for_unavailable_models=true",
            ]
        )
        stop = process.terminate
    try:
        wait_ready(f"127.0.0.1:{port}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        stop()


def spec(**fields: object) -> model_pb2.ModelSpec:
    version = fields.pop("version", None)
    model_spec = model_pb2.ModelSpec(name="cnn", **fields)  # type: ignore[arg-type]
    if version is not None:
        model_spec.version.value = int(version)  # type: ignore[call-overload]
    return model_spec


def predict_request(model_spec: model_pb2.ModelSpec) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=model_spec)
    request.inputs["images"].CopyFrom(uint8_tensor(np.zeros((2, 32, 32, 3), np.uint8)))
    return request


def error_of(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_labels_resolve_through_model_metadata(backend: grpc.Channel) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(backend)
    for selector, version in (
        ({"version_label": "stable"}, 1),
        ({"version_label": "canary"}, 2),
        ({}, 2),
    ):
        response = stub.GetModelMetadata(
            get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec=spec(**selector), metadata_field=["signature_def"]
            )
        )
        assert response.model_spec.version.value == version


def test_metadata_signature_has_no_inputs(backend: grpc.Channel) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(backend)
    response = stub.Predict(
        predict_pb2.PredictRequest(model_spec=spec(version=1, signature_name="metadata"))
    )
    assert tuple(to_strings(response.outputs["class_names"])) == CIFAR10_CLASSES
    assert to_numpy(response.outputs["input_size"]).tolist() == [32, 32, 3]


def test_predict_returns_probabilities_and_the_version(backend: grpc.Channel) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(backend)
    response = stub.Predict(predict_request(spec(version_label="canary")))
    assert response.model_spec.version.value == 2
    probabilities = to_numpy(response.outputs["probabilities"])
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_errors_the_gateway_translates(backend: grpc.Channel) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(backend)
    unknown_model = predict_request(spec())
    unknown_model.model_spec.name = "nope"
    assert error_of(lambda: stub.Predict(unknown_model)).code() == grpc.StatusCode.NOT_FOUND
    assert error_of(lambda: stub.Predict(predict_request(spec(version=7)))).code() == (
        grpc.StatusCode.NOT_FOUND
    )
    label = error_of(lambda: stub.Predict(predict_request(spec(version_label="nope"))))
    assert label.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Unrecognized servable version label" in (label.details() or "")
    signature = error_of(lambda: stub.Predict(predict_request(spec(signature_name="nope"))))
    assert signature.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_model_status_lists_versions(backend: grpc.Channel) -> None:
    stub = model_service_pb2_grpc.ModelServiceStub(backend)
    status = stub.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec=spec()))
    states = {v.version: v.state for v in status.model_version_status}
    assert states == {
        1: get_model_status_pb2.ModelVersionStatus.AVAILABLE,
        2: get_model_status_pb2.ModelVersionStatus.AVAILABLE,
    }
