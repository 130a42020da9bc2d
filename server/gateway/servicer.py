"""The `imgclf.v1.Classifier` servicer: thin, proto in, domain call, proto out.

Errors are not handled here; they propagate to `server.gateway.interceptor`, which also gives
every request a request id before it arrives here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

from server.experiments.feedback import FeedbackService
from server.experiments.routing import ExperimentRouter
from server.gateway import converters, experiment_converters
from server.gateway.call_limits import CallLimits
from server.gateway.classification import ClassificationService
from server.gateway.errors import InvalidRequest
from server.gateway.streaming import classify_stream


def call_timeout(context: grpc.aio.ServicerContext[Any, Any], default: float) -> float:
    """Seconds left of the caller's deadline, or `default` when the caller set none."""
    remaining = context.time_remaining()
    return default if remaining is None else max(remaining, 0.0)


class ClassifierServicer(classifier_pb2_grpc.ClassifierServicer):
    def __init__(
        self,
        service: ClassificationService,
        router: ExperimentRouter,
        feedback: FeedbackService,
        *,
        default_timeout_s: float,
        stream_limits: CallLimits | None = None,
        stream_idle_timeout_s: float = 0.0,
    ) -> None:
        self._service = service
        self._router = router
        self._feedback = feedback
        self._default_timeout = default_timeout_s
        self._stream_limits = stream_limits or CallLimits(max_calls=0, max_calls_per_client=0)
        self._stream_idle_timeout_s = stream_idle_timeout_s

    async def Classify(
        self, request: pb.ClassifyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ClassifyResponse:
        result = await self._router.classify(
            converters.classify_input(request, request.request_id),
            timeout=call_timeout(context, self._default_timeout),
        )
        return converters.classify_response(result)

    async def ClassifyStream(
        self,
        request_iterator: AsyncIterator[pb.ClassifyRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.ClassifyStreamResponse]:
        async def classify_one(request: pb.ClassifyRequest) -> pb.ClassifyResponse:
            result = await self._router.classify(
                converters.classify_input(request, request.request_id),
                timeout=call_timeout(context, self._default_timeout),
            )
            return converters.classify_response(result)

        with self._stream_limits.slot(context.peer(), what="streams"):
            async for answer in classify_stream(
                request_iterator, classify_one, idle_timeout_s=self._stream_idle_timeout_s
            ):
                yield answer

    async def Feedback(
        self, request: pb.FeedbackRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.FeedbackResponse:
        outcome = await self._feedback.feedback(
            request.request_id, experiment_converters.feedback_input(request)
        )
        return experiment_converters.feedback_response(outcome)

    async def Compare(
        self, request: pb.CompareRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CompareResponse:
        probe = pb.ClassifyRequest(request_id=request.request_id)
        if request.HasField("encoded"):
            probe.encoded = request.encoded
        elif request.HasField("raw"):
            probe.raw.CopyFrom(request.raw)
        image = converters.classify_input(probe, request.request_id).image
        outcomes = await self._service.compare(
            image,
            experiment_converters.compare_refs(request),
            top_k=request.top_k,
            request_id=request.request_id,
            timeout=call_timeout(context, self._default_timeout),
        )
        return experiment_converters.compare_response(request, outcomes, request.request_id)

    async def GetModel(
        self, request: pb.GetModelRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetModelResponse:
        if request.model.experiment:
            raise InvalidRequest("GetModel takes a model, not an experiment; see ListExperiments")
        info = await self._service.get_model(
            converters.model_ref(request.model),
            timeout=call_timeout(context, self._default_timeout),
        )
        return converters.model_response(info)

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListModelsResponse:
        models = await self._service.list_models(
            timeout=call_timeout(context, self._default_timeout)
        )
        return converters.list_models_response(models)
