"""`Client`: the blocking client."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Self

import grpc
from imgclf.v1 import classifier_pb2, classifier_pb2_grpc

from . import _convert
from ._base import BaseClient, translate_errors
from ._config import USE_CLIENT_DEFAULT, TimeoutTypes
from ._exceptions import ServerError
from ._images import ImageInput
from ._types import Classification, ModelInfo, ModelStatus


class Client(BaseClient):
    """A blocking client for the Classifier service, over one gRPC channel.

    Thread-safe. Use it as a context manager, or call `close()`, to release the channel.
    """

    _channel: grpc.Channel
    _stub: classifier_pb2_grpc.ClassifierStub

    def _connect(self) -> None:
        if self._credentials is None:
            self._channel = grpc.insecure_channel(self._target, options=self._options)
        else:
            self._channel = grpc.secure_channel(
                self._target, self._credentials, options=self._options
            )
        self._stub = classifier_pb2_grpc.ClassifierStub(self._channel)

    def classify(
        self,
        image: ImageInput,
        *,
        model: str,
        version: int | None = None,
        label: str | None = None,
        top_k: int = 5,
        routing_key: str | None = None,
        request_id: str | None = None,
        timeout: TimeoutTypes = USE_CLIENT_DEFAULT,
    ) -> Classification:
        """Classifies one image with a model version.

        Args:
            image: encoded image bytes (JPEG, PNG, ...), the path of an image file, or a
                numpy uint8 array shaped (H, W), (H, W, 1), (H, W, 3) or (H, W, 4).
            model: the model name, e.g. "cnn".
            version: a version number; at most one of `version` and `label`. With neither,
                the highest available version serves.
            label: a version label such as "stable" or "canary".
            top_k: how many classes to return, best first; 0 returns every class.
            routing_key: a key for sticky routing in experiments, e.g. a user id.
            request_id: an id for the gateway's logs; the gateway makes one when None.
            timeout: this call's deadline in seconds; None means no deadline.

        Raises:
            InvalidInput: a bad argument; nothing was sent.
            ServerError: the call failed; the subclass names the status code.
        """
        request = _convert.classify_request(
            image,
            model=model,
            version=version,
            label=label,
            top_k=top_k,
            routing_key=routing_key,
            request_id=request_id,
        )
        with translate_errors():
            response = self._stub.Classify(request, timeout=self._deadline(timeout))
        return _convert.classification(response)

    def classify_many(
        self,
        images: Iterable[ImageInput],
        *,
        model: str,
        version: int | None = None,
        label: str | None = None,
        top_k: int = 5,
        timeout: TimeoutTypes = USE_CLIENT_DEFAULT,
    ) -> list[Classification | ServerError]:
        """Classifies many images over one stream: the throughput path.

        The gateway works on the images concurrently and batches them; the answers come back in
        the order of `images`, one per image: a `Classification`, or the `ServerError` of that
        image alone (e.g. `InvalidArgument` for a file that is not an image). Every request is
        built (and checked) before the first is sent.

        Raises:
            InvalidInput: a bad argument or image; nothing was sent.
            ServerError: the stream itself failed (backend unreachable, deadline, ...).
        """
        requests = [
            _convert.classify_request(
                image,
                model=model,
                version=version,
                label=label,
                top_k=top_k,
                routing_key=None,
                request_id=None,
            )
            for image in images
        ]
        with translate_errors():
            call = self._stub.ClassifyStream(iter(requests), timeout=self._deadline(timeout))
            answers = list(call)
        return [_convert.stream_outcome(answer) for answer in answers]

    def list_models(self, *, timeout: TimeoutTypes = USE_CLIENT_DEFAULT) -> list[ModelStatus]:
        """Lists the served models with their versions, version states and labels."""
        with translate_errors():
            response = self._stub.ListModels(
                classifier_pb2.ListModelsRequest(), timeout=self._deadline(timeout)
            )
        return _convert.model_statuses(response)

    def get_model(
        self,
        model: str,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: TimeoutTypes = USE_CLIENT_DEFAULT,
    ) -> ModelInfo:
        """Describes one model version (the highest available one by default)."""
        request = _convert.get_model_request(model, version=version, label=label)
        with translate_errors():
            response = self._stub.GetModel(request, timeout=self._deadline(timeout))
        return _convert.model_info(response)

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
