"""gRPC servicers for `tensorflow.serving.PredictionService` and `ModelService`.

Thin: each method calls its handler through `_answer`, the one place where errors become
statuses (the management interceptor refuses calls through the same `abort`). A ServingError
becomes its code and message (truncated at 1024 characters like TF Serving's ToGRPCStatus) and is
logged at DEBUG (TF Serving: VLOG(1)), a refused config reload at ERROR; anything else is logged
with its traceback and answered INTERNAL with a fixed message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NoReturn, TypeVar

import grpc
from google.protobuf.message import Message
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from server.model_host import errors, handlers
from server.model_host.core import ModelHostCore
from server.model_host.predict import predict

log = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)


def _answer(
    context: grpc.ServicerContext,
    method: str,
    handler: Callable[[RequestT], ResponseT],
    request: RequestT,
    failure_level: int = logging.DEBUG,
) -> ResponseT:
    try:
        return handler(request)
    except errors.ServingError as exc:
        failure = exc
        log.log(failure_level, "%s failed: %s", method, exc.status_string())
    except Exception:
        log.exception("%s failed unexpectedly", method)
        failure = errors.internal()
    abort(context, failure)


def abort(context: grpc.ServicerContext, failure: errors.ServingError) -> NoReturn:
    """Ends the call with the failure's code and (truncated) message."""
    context.abort(failure.code, errors.grpc_message(failure.message))
    raise AssertionError("context.abort returned")  # abort always raises


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata; Classify, Regress and MultiInference are UNIMPLEMENTED."""

    def __init__(self, core: ModelHostCore) -> None:
        self._core = core

    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        return _answer(context, "Predict", lambda r: predict(self._core, r), request)

    def GetModelMetadata(
        self,
        request: get_model_metadata_pb2.GetModelMetadataRequest,
        context: grpc.ServicerContext,
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return _answer(
            context,
            "GetModelMetadata",
            lambda r: handlers.get_model_metadata(self._core, r),
            request,
        )

    def Classify(
        self, request: classification_pb2.ClassificationRequest, context: grpc.ServicerContext
    ) -> classification_pb2.ClassificationResponse:
        abort(context, errors.not_implemented("Classify"))

    def Regress(
        self, request: regression_pb2.RegressionRequest, context: grpc.ServicerContext
    ) -> regression_pb2.RegressionResponse:
        abort(context, errors.not_implemented("Regress"))

    def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.ServicerContext
    ) -> inference_pb2.MultiInferenceResponse:
        abort(context, errors.not_implemented("MultiInference"))


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus and HandleReloadConfigRequest."""

    def __init__(self, core: ModelHostCore) -> None:
        self._core = core

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        return _answer(
            context, "GetModelStatus", lambda r: handlers.get_model_status(self._core, r), request
        )

    def HandleReloadConfigRequest(
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> model_management_pb2.ReloadConfigResponse:
        return _answer(
            context,
            "HandleReloadConfigRequest",
            lambda r: handlers.reload_config(self._core, r),
            request,
            failure_level=logging.ERROR,
        )
