"""Builds request messages from call arguments and converts responses to dataclasses.

Validation of arguments happens here, before any call is made, and raises `InvalidInput`.
"""

from __future__ import annotations

from imgclf.v1 import classifier_pb2

from ._exceptions import InvalidInput, ServerError, from_status
from ._images import ImageInput, set_image
from ._types import Classification, ClassScore, ModelInfo, ModelStatus, ModelVersion

UINT32_MAX = 2**32 - 1
MAX_NAME_LENGTH = 128
MAX_ROUTING_KEY_BYTES = 256


def model_selector(
    model: str, *, version: int | None, label: str | None
) -> classifier_pb2.ModelSelector:
    """A ModelSelector naming `model` and at most one of `version` or `label`."""
    if not model:
        raise InvalidInput("model must be a non-empty model name")
    if version is not None and label is not None:
        raise InvalidInput("give either version or label, not both")
    selector = classifier_pb2.ModelSelector(name=model)
    if version is not None:
        if version <= 0:
            raise InvalidInput(f"version must be a positive number, not {version}")
        selector.version = version
    elif label is not None:
        if not label:
            raise InvalidInput("label must not be empty")
        selector.label = label
    return selector


def target_selector(
    model: str | None, *, version: int | None, label: str | None, experiment: str | None
) -> classifier_pb2.ModelSelector:
    """The selector of a classification: a model (and version or label), or an experiment."""
    if experiment is not None:
        if model is not None or version is not None or label is not None:
            raise InvalidInput("give either experiment or model (with version or label), not both")
        if not experiment or len(experiment) > MAX_NAME_LENGTH:
            raise InvalidInput("experiment must be a non-empty experiment name")
        return classifier_pb2.ModelSelector(experiment=experiment)
    if model is None:
        raise InvalidInput("give model= (e.g. 'cnn') or experiment=")
    return model_selector(model, version=version, label=label)


def classify_request(
    image: ImageInput,
    *,
    model: str | None,
    version: int | None,
    label: str | None,
    top_k: int,
    routing_key: str | None,
    request_id: str | None,
    experiment: str | None = None,
) -> classifier_pb2.ClassifyRequest:
    """The ClassifyRequest for one image; `top_k=0` asks for every class."""
    if not 0 <= top_k <= UINT32_MAX:
        raise InvalidInput(f"top_k must be from 0 (every class) to {UINT32_MAX}, not {top_k}")
    if routing_key is not None and len(routing_key.encode()) > MAX_ROUTING_KEY_BYTES:
        raise InvalidInput(f"routing_key must be at most {MAX_ROUTING_KEY_BYTES} bytes")
    request = classifier_pb2.ClassifyRequest(
        model=target_selector(model, version=version, label=label, experiment=experiment),
        top_k=top_k,
        routing_key=routing_key or "",
        request_id=request_id or "",
    )
    set_image(request, image)
    return request


def get_model_request(
    model: str, *, version: int | None, label: str | None
) -> classifier_pb2.GetModelRequest:
    """The GetModelRequest for one model version."""
    return classifier_pb2.GetModelRequest(model=model_selector(model, version=version, label=label))


def classification(response: classifier_pb2.ClassifyResponse) -> Classification:
    """A Classification from a ClassifyResponse."""
    return Classification(
        scores=[ClassScore(s.index, s.name, s.probability) for s in response.scores],
        model=response.model_name,
        version=response.model_version,
        request_id=response.request_id,
        experiment=response.experiment,
        arm=response.arm,
    )


def model_statuses(response: classifier_pb2.ListModelsResponse) -> list[ModelStatus]:
    """ModelStatus objects from a ListModelsResponse."""
    return [
        ModelStatus(
            name=model.name,
            versions=[
                ModelVersion(
                    version=v.version,
                    state=version_state(v.state),
                    labels=list(v.labels),
                    error_message=v.error_message,
                )
                for v in model.versions
            ],
            labels=dict(model.labels),
        )
        for model in response.models
    ]


def model_info(response: classifier_pb2.GetModelResponse) -> ModelInfo:
    """A ModelInfo from a GetModelResponse."""
    size = response.input_size
    return ModelInfo(
        name=response.name,
        version=response.version,
        input_size=(size.height, size.width, size.channels),
        class_names=list(response.class_names),
    )


def version_state(state: int) -> str:
    """The state's name without its enum prefix, e.g. "AVAILABLE"; "STATE_<n>" if unknown."""
    try:
        name = classifier_pb2.VersionState.Name(state)  # type: ignore[arg-type]
    except ValueError:
        return f"STATE_{state}"
    return name.removeprefix("VERSION_STATE_")


def stream_outcome(answer: classifier_pb2.ClassifyStreamResponse) -> Classification | ServerError:
    """One stream answer: the classification, or the error of that image."""
    if answer.WhichOneof("outcome") == "result":
        return classification(answer.result)
    return from_status(answer.error.code, answer.error.message)
