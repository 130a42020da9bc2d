"""The errors the local model host answers with: TF Serving 2.21's own codes and messages.

Every message here was read in TF Serving's (or TensorFlow's) source; the docstring of each
constructor names the file and function it comes from, so a reviewer can check the wording. The
messages that are the host's own are `shape_mismatch` (TF Serving does not check shapes before
running the graph; see its docstring) and those at the end: `internal`, `not_implemented` and the
refusals of HandleReloadConfigRequest (TF Serving has no such control).

`ServingError` carries a gRPC status code and the message; `server.model_host.servicers` is the
only place that turns it into a gRPC status (truncated like TF Serving's `ToGRPCStatus`).
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc

_MESSAGE_LIMIT = 1024


class ServingError(Exception):
    """A request or config failure, with the status code and message TF Serving would return."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def numeric_code(self) -> int:
        """The `tensorflow.error.Code` value (the same numbers as gRPC status codes)."""
        return int(self.code.value[0])

    def status_string(self) -> str:
        """Like absl::Status::ToString(): `INVALID_ARGUMENT: message`."""
        return f"{self.code.name}: {self.message}"


def grpc_message(message: str) -> str:
    """Truncates like TF Serving's ToGRPCStatus (model_servers/grpc_status_util.cc)."""
    if len(message) > _MESSAGE_LIMIT:
        return message[:_MESSAGE_LIMIT] + "...TRUNCATED"
    return message


def _joined(names: Iterable[str]) -> str:
    return ",".join(sorted(names))


# --- ModelSpec resolution -------------------------------------------------------------------


def missing_model_spec() -> ServingError:
    """servables/tensorflow/predict_impl.cc (Predict), get_model_metadata_impl.cc,
    model_servers/get_model_status_impl.cc."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")


def no_model_name() -> ServingError:
    """model_servers/server_core.cc, ServerCore::ServableRequestFromModelSpec."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")


def unknown_version_label(label: str) -> ServingError:
    """model_servers/server_core.cc, ServerCore::GetModelVersionForLabel."""
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}"
    )


def labels_not_initialised(label: str) -> ServingError:
    """model_servers/server_core.cc, ServerCore::GetModelVersionForLabel (no config yet)."""
    return ServingError(grpc.StatusCode.UNAVAILABLE, f"Model labels does not init yet.{label}")


def servable_not_found(model: str, version: int | None) -> ServingError:
    """core/basic_manager.cc, ServingMap::GetUntypedServableHandle, with the request printed
    by ServableRequest::DebugString (core/manager.h): `Latest(name)` or `Specific(name, 7)`."""
    request = f"Latest({model})" if version is None else f"Specific({model}, {version})"
    return ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}")


# --- Predict ---------------------------------------------------------------------------------


def signature_not_found(signature_name: str) -> ServingError:
    """servables/tensorflow/predict_util.cc, internal::RunPredict."""
    return ServingError(
        grpc.StatusCode.FAILED_PRECONDITION,
        f'Serving signature key "{signature_name}" not found.',
    )


def bad_signature_method(method_name: str) -> ServingError:
    """servables/tensorflow/predict_util.cc, VerifySignature (only with
    --enable_signature_method_name_check)."""
    return ServingError(
        grpc.StatusCode.INTERNAL,
        "Expected prediction signature method_name to be one of {tensorflow/serving/predict, "
        "tensorflow/serving/classify, tensorflow/serving/regress}. Was: " + method_name,
    )


def input_size_mismatch(sent: Iterable[str], expected: Iterable[str]) -> ServingError:
    """servables/tensorflow/predict_util.cc, VerifyRequestInputsSize."""
    sent_set, expected_set = set(sent), set(expected)
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"input size does not match signature: {len(sent_set)}!={len(expected_set)} "
        f"len({{{_joined(sent_set)}}}) != len({{{_joined(expected_set)}}}). "
        f"Sent extra: {{{_joined(sent_set - expected_set)}}}. "
        f"Missing but required: {{{_joined(expected_set - sent_set)}}}.",
    )


def input_alias_not_in_request(
    alias: str, feed_name: str, sent: Iterable[str], defaults: Iterable[str]
) -> ServingError:
    """tensorflow/cc/saved_model/util.cc, GetInputValues (called by predict_util.cc)."""
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"Signature input alias: {alias}(feed name: {feed_name}) not found in request and no "
        f"default value provided. Inputs expected to be in the request {{{_joined(sent)}}}, "
        f"or default input alias set: {_joined(defaults)}",
    )


def tensor_parsing_error(alias: str) -> ServingError:
    """tensorflow/cc/saved_model/util.cc, GetInputValues (Tensor::FromProto failed)."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"tensor parsing error: {alias}")


def invalid_input_names(used: Iterable[str], sent: Iterable[str]) -> ServingError:
    """tensorflow/cc/saved_model/util.cc, GetInputValues (a sent alias is not in the
    signature while defaults filled the count)."""
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"Inputs contains invalid name. Used request inputs: {_joined(used)}, "
        f"request input: {_joined(sent)}",
    )


def output_alias_not_found(alias: str, outputs: Iterable[str]) -> ServingError:
    """servables/tensorflow/predict_util.cc, PreProcessPrediction (output_filter)."""
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"output tensor alias not found in signature: {alias} Outputs expected to be in the "
        f"set {{{_joined(outputs)}}}.",
    )


def duplicate_output_alias(alias: str) -> ServingError:
    """servables/tensorflow/predict_util.cc, PreProcessPrediction (output_filter)."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"duplicate output tensor alias: {alias}")


def dtype_mismatch(index: int, expected: str, got: str) -> ServingError:
    """tensorflow/core/framework/function.cc, FunctionCallFrame::SetArgs, which TF Serving's
    Session::Run (DirectSession::RunInternal) returns for a feed of the wrong dtype."""
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"Expects arg[{index}] to be {expected} but {got} is provided",
    )


def shape_mismatch(index: int, alias: str, expected: str, got: str) -> ServingError:
    """The host's own message, worded like `dtype_mismatch`. Real TF Serving feeds any shape to
    the graph and answers with whatever op fails first (e.g. INVALID_ARGUMENT "Input to reshape
    is a tensor with 3 values, but the requested shape has 12"), or even succeeds; the host
    checks the signature's shape up front so a caller learns what was expected."""
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"Expects arg[{index}] ({alias}) to have shape {expected} but {got} is provided",
    )


# --- GetModelMetadata ------------------------------------------------------------------------


def metadata_field_required() -> ServingError:
    """servables/tensorflow/get_model_metadata_impl.cc, ValidateGetModelMetadataRequest."""
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "GetModelMetadataRequest must specify at least one metadata_field",
    )


def metadata_field_not_supported(field: str) -> ServingError:
    """servables/tensorflow/get_model_metadata_impl.cc, ValidateGetModelMetadataRequest.
    TF Serving passes a printf-style "%s" to errors::InvalidArgument, which concatenates, so the
    real message reads "Metadata field %s is not supported<field>"; reproduced as is."""
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field %s is not supported{field}"
    )


# --- GetModelStatus --------------------------------------------------------------------------


def version_status_not_found(model: str, version: int) -> ServingError:
    """model_servers/get_model_status_impl.cc, GetModelStatusWithModelSpec."""
    return ServingError(
        grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {model}"
    )


def model_status_not_found(model: str) -> ServingError:
    """model_servers/get_model_status_impl.cc, GetModelStatusWithModelSpec."""
    return ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {model}")


# --- Config (startup, HandleReloadConfigRequest, config-file polling) ------------------------


def invalid_protobuf_file(path: str) -> ServingError:
    """model_servers/server.cc, ParseProtoTextFile."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid protobuf file: '{path}'")


def reload_config_type_not_supported() -> ServingError:
    """model_servers/model_service_impl.cc, HandleReloadConfigRequest."""
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
        "ModelConfigList is currently supported",
    )


def illegal_config_transition() -> ServingError:
    """model_servers/server_core.cc, ServerCore::ReloadConfig."""
    return ServingError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "Cannot transition to requested config. It is only legal to transition from one "
        "ModelConfigList to another.",
    )


def custom_model_config_not_supported() -> ServingError:
    """model_servers/server.cc, LoadCustomModelConfig (a LOG(FATAL) there)."""
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT, "ModelServer does not yet support custom model config."
    )


def duplicate_model(name: str) -> ServingError:
    """model_servers/server_core.cc, ValidateModelConfigList."""
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"Illegal to list model {name} multiple times in config list",
    )


def platform_type_and_name() -> ServingError:
    """model_servers/server_core.cc, GetPlatform."""
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "Illegal setting both ModelServerConfig::model_type (deprecated) and "
        "ModelServerConfig::model_platform.",
    )


def platform_type_not_supported(model_type: int) -> ServingError:
    """model_servers/server_core.cc, GetPlatform."""
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"ModelServerConfig::model_type choice {model_type} not supported.",
    )


def platform_missing() -> ServingError:
    """model_servers/server_core.cc, GetPlatform."""
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
        "ModelServerConfig::model_platform.",
    )


def platform_changed(name: str, old: str, new: str) -> ServingError:
    """model_servers/server_core.cc, ValidateNoModelsChangePlatforms."""
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"Illegal to change a model's platform. For model {name} platform was {old} and new "
        f"platform requested is {new}",
    )


def platform_unsupported(name: str, platform: str) -> ServingError:
    """model_servers/server_core.cc, ServerCore::CreateStoragePathRoutes."""
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT, f"Model {name} requests unsupported platform {platform}"
    )


def label_version_unavailable(model: str, version: int) -> ServingError:
    """model_servers/server_core.cc, ServerCore::UpdateModelVersionLabelMap."""
    return ServingError(
        grpc.StatusCode.FAILED_PRECONDITION,
        f"Request to assign label to version {version} of model {model}, which is not "
        "currently available for inference",
    )


def models_not_available(failures: Iterable[tuple[str, int, str]]) -> ServingError:
    """model_servers/server_core.cc, ServerCore::WaitUntilModelsAvailable; each failure is
    (model, version, status string) and prints as ServableId::DebugString plus the error."""
    failures = list(failures)
    parts = "".join(
        f"{{{{name: {model} version: {version}}}"
        + (f" due to error: {error}" if error else "")
        + "}, "
        for model, version, error in failures
    )
    return ServingError(
        grpc.StatusCode.UNKNOWN,
        f"{len(failures)} model(s) did not become available: {{{parts}}}",
    )


# --- The host's own ----------------------------------------------------------------------------


INTERNAL_MESSAGE = "internal error in the local model host; the details are in its log"


def internal() -> ServingError:
    """An unexpected failure; the details go to the log, never to the caller."""
    return ServingError(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)


def not_implemented(method: str) -> ServingError:
    """Classify, Regress and MultiInference: real TF Serving implements them; the local host
    serves only what the gateway uses."""
    return ServingError(
        grpc.StatusCode.UNIMPLEMENTED,
        f"{method} is not implemented by the local model host; use Predict",
    )


# Who may manage the host (server.model_host.management): TF Serving has no such control.


def management_disabled() -> ServingError:
    """HandleReloadConfigRequest on a host started with --enable_model_management=false."""
    return ServingError(
        grpc.StatusCode.PERMISSION_DENIED,
        "HandleReloadConfigRequest is turned off on this model host "
        "(--enable_model_management=false); change its --model_config_file instead",
    )


def management_not_local() -> ServingError:
    """HandleReloadConfigRequest without a configured token, from another machine."""
    return ServingError(
        grpc.StatusCode.PERMISSION_DENIED,
        "HandleReloadConfigRequest without a token is accepted from this machine only; start "
        "the model host with --management_token_file to manage it from elsewhere",
    )


def management_token_missing() -> ServingError:
    """No (or malformed) `authorization` metadata where a token is required."""
    return ServingError(
        grpc.StatusCode.UNAUTHENTICATED,
        "HandleReloadConfigRequest on this model host needs metadata "
        "'authorization: Bearer <token>' with the token of its --management_token_file",
    )


def management_token_wrong() -> ServingError:
    """A bearer token that is not the host's management token."""
    return ServingError(
        grpc.StatusCode.PERMISSION_DENIED,
        "the bearer token is not this model host's management token",
    )
