"""Helpers for the model host tests: tiny models, configs, requests, bounded waits, stubs.

`add_version` copies a SavedModel into a model directory as the next version, atomically like
`training.export.publish` (hidden temp name, then rename), which is much faster than exporting
again. Waiting is always a bounded poll (`wait_until`), never a sleep assumed to suffice.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from server.model_host import ModelHost
from training.export import TEMP_PREFIX, next_version

POLL_SECONDS = 0.1
WAIT_SECONDS = 30.0
CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
SEEDS = (0, 1, 2)

T = TypeVar("T")


def tiny_classifier(seed: int) -> keras.Model:
    """Rescaling, global average pooling, a dense softmax: a real model in a few kilobytes."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(len(CLASS_NAMES), activation="softmax")
    model = keras.Model(inputs, dense(x))
    kernel, bias = dense.get_weights()
    dense.set_weights([rng.normal(0, 3, kernel.shape), rng.normal(0, 1, bias.shape)])
    return model


def add_version(model_dir: Path, template: Path, version: int | None = None) -> int:
    """Copies `template` into `model_dir` as `version` (default: the next one), atomically."""
    model_dir.mkdir(parents=True, exist_ok=True)
    temp = model_dir / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    shutil.copytree(template, temp)
    number = version if version is not None else next_version(model_dir)
    temp.rename(model_dir / str(number))
    return number


def add_corrupt_version(model_dir: Path, template: Path) -> int:
    """A version whose saved_model.pb is garbage."""
    model_dir.mkdir(parents=True, exist_ok=True)
    temp = model_dir / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    shutil.copytree(template, temp)
    (temp / "saved_model.pb").write_bytes(b"\x08\x01 this is not a SavedModel \xff\xff")
    number = next_version(model_dir)
    temp.rename(model_dir / str(number))
    return number


def model_config(
    name: str,
    base_path: Path | str,
    *,
    policy: str = "",
    labels: Mapping[str, int] | None = None,
    platform: str = "tensorflow",
) -> model_server_config_pb2.ModelConfig:
    """One `config { ... }` entry; `policy` is the text inside model_version_policy."""
    text = f'name: "{name}" base_path: "{base_path}" model_platform: "{platform}"'
    if policy:
        text += f" model_version_policy {{ {policy} }}"
    for label, version in (labels or {}).items():
        text += f' version_labels {{ key: "{label}" value: {version} }}'
    return text_format.Parse(text, model_server_config_pb2.ModelConfig())


def server_config(
    *models: model_server_config_pb2.ModelConfig,
) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.extend(models)
    return config


def write_config(path: Path, *models: model_server_config_pb2.ModelConfig) -> Path:
    """Writes the config atomically, so a polling host never reads half a file."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    temp.write_text(text_format.MessageToString(server_config(*models)))
    temp.rename(path)
    return path


def wait_until(
    probe: Callable[[], T | None], what: str, timeout: float = WAIT_SECONDS, interval: float = 0.02
) -> T:
    """Polls `probe` until it returns a truthy value; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def images(batch: int = 1, seed: int = 0, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)


def predict_request(
    model: str = "cnn",
    batch: np.ndarray | None = None,
    *,
    version: int | None = None,
    label: str | None = None,
    signature: str = "",
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    if batch is not None:
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(batch))
    return request


class Stubs:
    """TF Serving's two stubs over one channel, with state helpers."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(channel)

    def states(self, model: str = "cnn") -> dict[int, str]:
        """Version -> state name; empty if the host knows no version of the model."""
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        try:
            response = self.models.GetModelStatus(request, timeout=5)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return {}
            raise
        names = get_model_status_pb2.ModelVersionStatus.State.Name
        return {s.version: names(s.state) for s in response.model_version_status}

    def wait_states(self, expected: Mapping[int, str], model: str = "cnn") -> None:
        wait_until(
            lambda: self.states(model) == dict(expected),
            f"states {dict(expected)} of {model} (last: {self.states(model)})",
        )


class RunningHost(Stubs):
    """A host started in process, with stubs to call it."""

    def __init__(self, host: ModelHost, port: int) -> None:
        super().__init__(grpc.insecure_channel(f"127.0.0.1:{port}"))
        self.host = host
        self.port = port


def poller_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("model-host-poll")]


def assert_rpc_error(
    call: Callable[[], object], code: grpc.StatusCode, details: str | Sequence[str]
) -> None:
    """The call fails with `code` and exactly `details` (or one of several)."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error: Any = caught.value
    allowed = [details] if isinstance(details, str) else list(details)
    assert (error.code(), error.details()) in [(code, d) for d in allowed], (
        f"got {error.code()}: {error.details()!r}"
    )
