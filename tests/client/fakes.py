"""A scripted, recording Classifier servicer and `AnyClient`, for the client tests.

`AnyClient` calls a `Client` or an `AsyncClient` the same way, so every behaviour test
runs once per client kind, which is how parity between the two is checked.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import Message
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc as pb_grpc
from imgclf_client import AsyncClient, Classification, Client, ModelInfo, ModelStatus

from tests.cifar10_names import CIFAR10_CLASSES

MODEL = "cnn"
CLASS_NAMES = list(CIFAR10_CLASSES)
LABELS = {"stable": 3, "canary": 4}
LATEST_VERSION = 4
SERVER_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass
class Recorded:
    """One call the servicer received."""

    method: str
    request: Message
    time_remaining: float


@dataclass
class FakeClassifier(pb_grpc.ClassifierServicer):
    """Answers from the request, after aborting with each queued failure in turn.

    Classify scores class i with probability (i + 1) / 55, so "truck" is always best and
    the ten probabilities sum to 1; the version served is the requested one, the label's,
    or LATEST_VERSION; the request id is echoed or made up.
    """

    calls: list[Recorded] = field(default_factory=list)
    failures: list[tuple[grpc.StatusCode, str]] = field(default_factory=list)
    delay: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.failures.clear()
            self.delay = 0.0

    def requests(self, method: str) -> list[Any]:
        return [call.request for call in self.calls if call.method == method]

    def Classify(self, request: pb.ClassifyRequest, context: Any) -> pb.ClassifyResponse:
        self._begin("Classify", request, context)
        version = self._resolve(request.model, context)
        ranked = sorted(range(len(CLASS_NAMES)), reverse=True)
        top_k = request.top_k or len(ranked)
        return pb.ClassifyResponse(
            scores=[
                pb.ClassScore(index=i, name=CLASS_NAMES[i], probability=(i + 1) / 55)
                for i in ranked[:top_k]
            ],
            model_name=request.model.name,
            model_version=version,
            request_id=request.request_id or "generated-id",
        )

    def ListModels(self, request: pb.ListModelsRequest, context: Any) -> pb.ListModelsResponse:
        self._begin("ListModels", request, context)
        available = pb.VersionState.VERSION_STATE_AVAILABLE
        return pb.ListModelsResponse(
            models=[
                pb.ModelStatus(
                    name=MODEL,
                    versions=[
                        pb.ModelVersionStatus(version=3, state=available, labels=["stable"]),
                        pb.ModelVersionStatus(version=4, state=available, labels=["canary"]),
                        pb.ModelVersionStatus(
                            version=5,
                            state=pb.VersionState.VERSION_STATE_END,
                            error_message="could not load",
                        ),
                        pb.ModelVersionStatus(version=6, state=42),  # type: ignore[arg-type]
                    ],
                    labels=LABELS,
                ),
                pb.ModelStatus(name="xception"),
            ]
        )

    def GetModel(self, request: pb.GetModelRequest, context: Any) -> pb.GetModelResponse:
        self._begin("GetModel", request, context)
        return pb.GetModelResponse(
            name=request.model.name,
            version=self._resolve(request.model, context),
            input_size=pb.ImageSize(height=32, width=32, channels=3),
            class_names=CLASS_NAMES,
        )

    def _begin(self, method: str, request: Message, context: Any) -> None:
        with self._lock:
            self.calls.append(Recorded(method, request, context.time_remaining()))
            failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            context.abort(*failure)
        end = time.monotonic() + self.delay
        while context.is_active() and time.monotonic() < end:
            time.sleep(0.01)

    def _resolve(self, selector: pb.ModelSelector, context: Any) -> int:
        if selector.name != MODEL:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {selector.name!r}")
        choice = selector.WhichOneof("version_choice")
        if choice == "version":
            return selector.version
        if choice == "label":
            if selector.label not in LABELS:
                context.abort(grpc.StatusCode.NOT_FOUND, f"unknown label {selector.label!r}")
            return LABELS[selector.label]
        return LATEST_VERSION


@dataclass
class Server:
    """The running test server: its servicer and its two addresses."""

    servicer: FakeClassifier
    target: str
    local_credentials_target: str


class AnyClient:
    """Calls a `Client` or an `AsyncClient` the same way, so one test covers both."""

    def __init__(self, client: Client | AsyncClient) -> None:
        self.client = client

    async def classify(self, *args: Any, **kwargs: Any) -> Classification:
        result: Classification = await self._call("classify", *args, **kwargs)
        return result

    async def list_models(self, **kwargs: Any) -> list[ModelStatus]:
        result: list[ModelStatus] = await self._call("list_models", **kwargs)
        return result

    async def get_model(self, *args: Any, **kwargs: Any) -> ModelInfo:
        result: ModelInfo = await self._call("get_model", *args, **kwargs)
        return result

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, method)(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result


Connect = Callable[..., AnyClient]
"""The `connect` fixture: `connect(target=..., **client_kwargs) -> AnyClient`."""
