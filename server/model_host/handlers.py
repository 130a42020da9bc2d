"""GetModelMetadata, GetModelStatus and HandleReloadConfigRequest, free of gRPC.

Each follows its TF Serving counterpart: servables/tensorflow/get_model_metadata_impl.cc,
model_servers/get_model_status_impl.cc and model_servers/model_service_impl.cc. They raise
ServingError; the servicers turn it into a status.
"""

from __future__ import annotations

from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
)

from server.model_host import errors
from server.model_host.core import ModelHostCore
from server.model_host.registry import VersionStatus

SIGNATURE_DEF_FIELD = "signature_def"


def get_model_metadata(
    core: ModelHostCore, request: get_model_metadata_pb2.GetModelMetadataRequest
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """Every SignatureDef of the resolved version, packed under the "signature_def" key."""
    if not request.HasField("model_spec"):
        raise errors.missing_model_spec()
    if not request.metadata_field:
        raise errors.metadata_field_required()
    for field in request.metadata_field:
        if field != SIGNATURE_DEF_FIELD:
            raise errors.metadata_field_not_supported(field)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    with core.resolve(request.model_spec) as handle:
        signature_defs = handle.servable.signature_def_map()
        response.model_spec.name = handle.model
        response.model_spec.version.value = handle.version
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_defs)
    return response


def get_model_status(
    core: ModelHostCore, request: get_model_status_pb2.GetModelStatusRequest
) -> get_model_status_pb2.GetModelStatusResponse:
    """The state of one version (`version` set) or of every version the model has had."""
    if not request.HasField("model_spec"):
        raise errors.missing_model_spec()
    spec = request.model_spec
    states = core.version_states(spec.name)
    if spec.HasField("version"):
        wanted = int(spec.version.value)
        states = [s for s in states if s.version == wanted]
        if not states:
            raise errors.version_status_not_found(spec.name, wanted)
    elif not states:
        raise errors.model_status_not_found(spec.name)
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in states:
        _add_version_status(response, status)
    return response


def _add_version_status(
    response: get_model_status_pb2.GetModelStatusResponse, status: VersionStatus
) -> None:
    entry = response.model_version_status.add()
    entry.version = status.version
    entry.state = status.state.value
    entry.status.error_code = status.error_code
    entry.status.error_message = status.error_message


def reload_config(
    core: ModelHostCore, request: model_management_pb2.ReloadConfigRequest
) -> model_management_pb2.ReloadConfigResponse:
    """Replaces the whole config; only a ModelConfigList is accepted."""
    if request.config.WhichOneof("config") != "model_config_list":
        raise errors.reload_config_type_not_supported()
    core.reload_config(request.config)
    return model_management_pb2.ReloadConfigResponse()
