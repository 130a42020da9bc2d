"""The `imgclf.v1.Classifier` servicer: thin, proto in, domain call, proto out.

Errors are not handled here; they propagate to `server.gateway.interceptor`, which also gives
every request a request id before it arrives here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

from server.gateway import converters
from server.gateway.classification import ClassificationService
from server.gateway.streaming import classify_stream


def call_timeout(context: grpc.aio.ServicerContext, default: float) -> float:
    """Seconds left of the caller's deadline, or `default` when the caller set none."""
    remaining = context.time_remaining()
    return default if remaining is None else max(remaining, 0.0)


class ClassifierServicer(classifier_pb2_grpc.ClassifierServicer):
    def __init__(self, service: ClassificationService, *, default_timeout_s: float) -> None:
        self._service = service
        self._default_timeout = default_timeout_s

    async def Classify(
        self, request: pb.ClassifyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClassifyResponse:
        result = await self._service.classify(
            converters.classify_input(request, request.request_id),
            timeout=call_timeout(context, self._default_timeout),
        )
        return converters.classify_response(result)

    async def ClassifyStream(
        self,
        request_iterator: AsyncIterator[pb.ClassifyRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.ClassifyStreamResponse]:
        async def classify_one(request: pb.ClassifyRequest) -> pb.ClassifyResponse:
            result = await self._service.classify(
                converters.classify_input(request, request.request_id),
                timeout=call_timeout(context, self._default_timeout),
            )
            return converters.classify_response(result)

        async for answer in classify_stream(request_iterator, classify_one):
            yield answer

    async def GetModel(
        self, request: pb.GetModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetModelResponse:
        info = await self._service.get_model(
            converters.model_ref(request.model),
            timeout=call_timeout(context, self._default_timeout),
        )
        return converters.model_response(info)

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        models = await self._service.list_models(
            timeout=call_timeout(context, self._default_timeout)
        )
        return converters.list_models_response(models)
