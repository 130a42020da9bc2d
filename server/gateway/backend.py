"""Adapter to the model backend: TensorFlow Serving's gRPC API (real TF Serving or the local host).

It owns the one channel to the backend, builds `PredictionService`/`ModelService` requests,
propagates deadlines, and turns the backend's gRPC errors into the gateway's domain errors with
messages about the caller's request (not about TF Serving's internals).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import numpy as np
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from common.serving_contract import (
    CLASS_NAMES_KEY,
    INPUT_KEY,
    INPUT_SIZE_KEY,
    METADATA_SIGNATURE,
    OUTPUT_KEY,
    SERVING_SIGNATURE,
)
from server.gateway.circuit_breaker import CircuitBreaker
from server.gateway.domain import ModelInfo, ModelRef, ModelStatus, VersionStatus
from server.gateway.errors import (
    BackendFailed,
    BackendUnavailable,
    DeadlineExceeded,
    GatewayError,
    InvalidRequest,
    NotFound,
)
from server.gateway.tensors import TensorDecodeError, to_numpy, to_strings, uint8_tensor

_STATE_NAMES = {
    get_model_status_pb2.ModelVersionStatus.State.Value(name): name
    for name in ("UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END")
}


def _model_spec(ref: ModelRef, signature: str = "") -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=ref.name, signature_name=signature)
    if ref.version is not None:
        spec.version.value = ref.version
    elif ref.label is not None:
        spec.version_label = ref.label
    return spec


def translate_error(error: grpc.aio.AioRpcError, ref: ModelRef) -> GatewayError:
    """The domain error for a backend failure on a call about `ref`."""
    code, details = error.code(), error.details() or ""
    if code == grpc.StatusCode.NOT_FOUND:
        if ref.version is not None:
            return NotFound(
                f"{ref.describe()} is not loaded; see ListModels for the available versions"
            )
        return NotFound(f"unknown model '{ref.name}'; see ListModels for the models served")
    if code == grpc.StatusCode.INVALID_ARGUMENT and "version label" in details:
        return NotFound(
            f"model '{ref.name}' has no label '{ref.label}'; see ListModels for its labels"
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        return BackendUnavailable(f"the model backend is unavailable ({details}); retry shortly")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(f"the deadline passed while {ref.describe()} was predicting")
    if code == grpc.StatusCode.CANCELLED:
        return DeadlineExceeded("the call was cancelled before the backend answered")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return BackendUnavailable(f"the model backend is overloaded ({details}); retry shortly")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidRequest(f"the backend rejected the request for {ref.describe()}: {details}")
    return BackendFailed(f"the backend failed for {ref.describe()} ({code.name}: {details})")


T = TypeVar("T")
_SILENT = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED})


class TFServingBackend:
    """Talks to one TF Serving endpoint over a single reused channel.

    Every call waits at most `call_timeout_s` (shorter than callers' deadlines, so a hung
    backend is noticed while callers can still retry); predictions go through a circuit breaker.
    """

    def __init__(
        self,
        target: str,
        *,
        max_message_bytes: int,
        call_timeout_s: float | None = None,
        breaker: CircuitBreaker | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        server_name: str = "",
    ) -> None:
        self._call_timeout_s = call_timeout_s
        self._breaker = breaker
        options: list[tuple[str, str | int]] = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        else:
            if server_name:
                options.append(("grpc.ssl_target_name_override", server_name))
            self._channel = grpc.aio.secure_channel(target, credentials, options=options)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self.target = target

    async def close(self) -> None:
        await self._channel.close(None)

    async def _call(
        self, method: Callable[..., Awaitable[T]], request: Any, timeout: float | None
    ) -> T:
        """One RPC within the backend's own timeout (UNAVAILABLE when that, not the caller's
        deadline, ran out)."""
        capped = timeout
        if self._call_timeout_s is not None and (timeout is None or timeout > self._call_timeout_s):
            capped = self._call_timeout_s
        try:
            return await method(request, timeout=capped)
        except grpc.aio.AioRpcError as error:
            if capped != timeout and error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise BackendUnavailable(
                    f"the model backend did not answer within {capped:g} s; retry shortly"
                ) from error
            raise

    async def _guarded(
        self, method: Callable[..., Awaitable[T]], request: Any, timeout: float | None
    ) -> T:
        """`_call` through the breaker (predictions: a backend that answers metadata but hangs
        on Predict must open it)."""
        if self._breaker is None:
            return await self._call(method, request, timeout)
        probe = self._breaker.before_call()
        try:
            response = await self._call(method, request, timeout)
        except BackendUnavailable:
            self._breaker.failed(probe)  # no answer within the backend timeout
            raise
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE:
                self._breaker.failed(probe)
            elif error.code() in _SILENT:
                self._breaker.abandoned(probe)  # the caller's deadline or cancellation
            else:
                self._breaker.succeeded(probe)  # it answered, about the request
            raise
        except BaseException:
            self._breaker.abandoned(probe)
            raise
        self._breaker.succeeded(probe)
        return response

    async def resolve_version(self, ref: ModelRef, *, timeout: float | None) -> int:
        """The version number `ref` points at now (its label or the latest), per the backend."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=_model_spec(ref), metadata_field=["signature_def"]
        )
        try:
            response = await self._call(self._predict.GetModelMetadata, request, timeout)
        except grpc.aio.AioRpcError as error:
            raise translate_error(error, ref) from error
        return int(response.model_spec.version.value)

    async def model_info(self, name: str, version: int, *, timeout: float | None) -> ModelInfo:
        """Input size and class names of one version, from its `metadata` signature."""
        ref = ModelRef(name, version=version)
        request = predict_pb2.PredictRequest(model_spec=_model_spec(ref, METADATA_SIGNATURE))
        try:
            response = await self._call(self._predict.Predict, request, timeout)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise BackendFailed(
                    f"{ref.describe()} has no '{METADATA_SIGNATURE}' signature; "
                    "export it with training.export"
                ) from error
            raise translate_error(error, ref) from error
        try:
            size = to_numpy(response.outputs[INPUT_SIZE_KEY]).astype(int).tolist()
            names = to_strings(response.outputs[CLASS_NAMES_KEY])
        except (KeyError, TensorDecodeError) as error:
            raise BackendFailed(f"{ref.describe()} returned malformed metadata") from error
        if len(size) != 3 or not names:
            raise BackendFailed(f"{ref.describe()} returned malformed metadata")
        return ModelInfo(name, version, (size[0], size[1], size[2]), tuple(names))

    async def predict(
        self, name: str, version: int, images: np.ndarray, *, timeout: float | None
    ) -> np.ndarray:
        """Probabilities `[batch, classes]` for uint8 `images` `[batch, height, width, 3]`."""
        ref = ModelRef(name, version=version)
        request = predict_pb2.PredictRequest(model_spec=_model_spec(ref, SERVING_SIGNATURE))
        request.inputs[INPUT_KEY].CopyFrom(uint8_tensor(images))
        request.output_filter.append(OUTPUT_KEY)
        try:
            response = await self._guarded(self._predict.Predict, request, timeout)
        except grpc.aio.AioRpcError as error:
            raise translate_error(error, ref) from error
        try:
            probabilities = to_numpy(response.outputs[OUTPUT_KEY])
        except (KeyError, TensorDecodeError) as error:
            raise BackendFailed(f"{ref.describe()} returned no usable '{OUTPUT_KEY}'") from error
        if probabilities.ndim != 2 or probabilities.shape[0] != images.shape[0]:
            raise BackendFailed(
                f"{ref.describe()} returned probabilities of shape {probabilities.shape}"
            )
        return probabilities

    async def model_status(self, name: str, *, timeout: float | None) -> ModelStatus:
        """Every version the backend knows of `name`, with its state."""
        request = get_model_status_pb2.GetModelStatusRequest(
            model_spec=model_pb2.ModelSpec(name=name)
        )
        try:
            response = await self._call(self._models.GetModelStatus, request, timeout)
        except grpc.aio.AioRpcError as error:
            raise translate_error(error, ModelRef(name)) from error
        versions = tuple(
            VersionStatus(
                version=int(v.version),
                state=_STATE_NAMES.get(v.state, "UNKNOWN"),
                error_message=v.status.error_message,
            )
            for v in response.model_version_status
        )
        return ModelStatus(name, tuple(sorted(versions, key=lambda v: -v.version)))
