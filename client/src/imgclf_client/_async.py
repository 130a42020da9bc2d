"""`AsyncClient`: the asyncio client, the twin of `Client` with coroutine methods."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Self

import grpc
import grpc.aio
from imgclf.v1 import classifier_pb2, classifier_pb2_grpc

from . import _convert
from ._base import BaseClient, translate_errors
from ._config import USE_CLIENT_DEFAULT, TimeoutTypes
from ._exceptions import ServerError
from ._images import ImageInput
from ._types import Classification, ModelInfo, ModelStatus


class AsyncClient(BaseClient):
    """An asyncio client for the Classifier service, over one `grpc.aio` channel.

    Create it inside a running event loop and use it from that loop. Use it as an async
    context manager, or await `close()`, to release the channel.
    """

    _channel: grpc.aio.Channel
    _stub: classifier_pb2_grpc.ClassifierAsyncStub

    def _connect(self) -> None:
        if self._credentials is None:
            self._channel = grpc.aio.insecure_channel(self._target, options=self._options)
        else:
            self._channel = grpc.aio.secure_channel(
                self._target, self._credentials, options=self._options
            )
        self._stub = classifier_pb2_grpc.ClassifierStub(self._channel)

    async def classify(
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
        """Classifies one image; see `Client.classify`.

        An image given as a path is read in the event loop's thread before the call.
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
            response = await self._stub.Classify(request, timeout=self._deadline(timeout))
        return _convert.classification(response)

    async def classify_many(
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
            answers = [a async for a in call]
        return [_convert.stream_outcome(answer) for answer in answers]

    async def list_models(self, *, timeout: TimeoutTypes = USE_CLIENT_DEFAULT) -> list[ModelStatus]:
        """Lists the served models; see `Client.list_models`."""
        with translate_errors():
            response = await self._stub.ListModels(
                classifier_pb2.ListModelsRequest(), timeout=self._deadline(timeout)
            )
        return _convert.model_statuses(response)

    async def get_model(
        self,
        model: str,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: TimeoutTypes = USE_CLIENT_DEFAULT,
    ) -> ModelInfo:
        """Describes one model version; see `Client.get_model`."""
        request = _convert.get_model_request(model, version=version, label=label)
        with translate_errors():
            response = await self._stub.GetModel(request, timeout=self._deadline(timeout))
        return _convert.model_info(response)

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        await self._channel.close(None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
