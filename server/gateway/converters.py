"""Translates between the public protos (`imgclf.v1`) and the core's domain types."""

from __future__ import annotations

from imgclf.v1 import classifier_pb2 as pb

from server.gateway.domain import (
    Classification,
    ClassifyInput,
    ModelInfo,
    ModelRef,
    ModelStatus,
    RawPixels,
)
from server.gateway.errors import InvalidRequest

_STATE_TO_PROTO = {
    "START": pb.VERSION_STATE_START,
    "LOADING": pb.VERSION_STATE_LOADING,
    "AVAILABLE": pb.VERSION_STATE_AVAILABLE,
    "UNLOADING": pb.VERSION_STATE_UNLOADING,
    "END": pb.VERSION_STATE_END,
}


def model_ref(selector: pb.ModelSelector) -> ModelRef:
    choice = selector.WhichOneof("version_choice")
    if choice == "version":
        return ModelRef(selector.name, version=selector.version)
    if choice == "label":
        return ModelRef(selector.name, label=selector.label)
    return ModelRef(selector.name)


def classify_input(request: pb.ClassifyRequest, request_id: str) -> ClassifyInput:
    kind = request.WhichOneof("image")
    image: bytes | RawPixels
    if kind == "encoded":
        image = request.encoded
    elif kind == "raw":
        raw = request.raw
        image = RawPixels(raw.pixels, raw.height, raw.width, raw.channels)
    else:
        raise InvalidRequest("no image: set `encoded` (image file bytes) or `raw` (uint8 pixels)")
    return ClassifyInput(
        image=image,
        model=model_ref(request.model),
        top_k=request.top_k,
        routing_key=request.routing_key,
        request_id=request_id,
        experiment=request.model.experiment,
    )


def classify_response(result: Classification) -> pb.ClassifyResponse:
    return pb.ClassifyResponse(
        scores=[
            pb.ClassScore(index=s.index, name=s.name, probability=s.probability)
            for s in result.scores
        ],
        model_name=result.model,
        model_version=result.version,
        request_id=result.request_id,
        experiment=result.experiment,
        arm=result.arm,
    )


def model_response(info: ModelInfo) -> pb.GetModelResponse:
    height, width, channels = info.input_size
    return pb.GetModelResponse(
        name=info.name,
        version=info.version,
        input_size=pb.ImageSize(height=height, width=width, channels=channels),
        class_names=list(info.class_names),
    )


def list_models_response(models: list[ModelStatus]) -> pb.ListModelsResponse:
    response = pb.ListModelsResponse()
    for model in models:
        entry = response.models.add(name=model.name)
        entry.labels.update(model.labels)
        for version in model.versions:
            entry.versions.add(
                version=version.version,
                state=_STATE_TO_PROTO.get(version.state, pb.VERSION_STATE_UNSPECIFIED),
                labels=sorted(k for k, v in model.labels.items() if v == version.version),
                error_message=version.error_message,
            )
    return response
