"""Predict, step by step as TF Serving's predict_impl.cc / predict_util.cc do it.

1. ModelSpec -> a pinned version (errors from the core: NOT_FOUND, label INVALID_ARGUMENT).
2. The signature (empty name -> `serving_default`), else FAILED_PRECONDITION.
3. The response's model_spec: requested name, resolved version, signature name.
4. Input checks in TF Serving's order: the count of inputs, each signature input present (or a
   default), each tensor parseable, then output_filter, then the dtypes (what Session::Run
   rejects first), then the shapes (the host's own check).
5. Run the signature's graph function; outputs written as typed fields (AsProtoField).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import predict_pb2

from server.model_host import errors
from server.model_host.core import ModelHostCore
from server.model_host.servable import Signature
from server.model_host.tensors import (
    ParsedTensor,
    format_shape,
    parse_tensor,
    shape_compatible,
    type_name,
    write_tensor,
)

DEFAULT_SIGNATURE = "serving_default"
_ALLOWED_METHODS = frozenset(
    {"tensorflow/serving/predict", "tensorflow/serving/classify", "tensorflow/serving/regress"}
)


def predict(
    core: ModelHostCore, request: predict_pb2.PredictRequest
) -> predict_pb2.PredictResponse:
    """Answers a PredictRequest; raises ServingError with TF Serving's code and message."""
    if not request.HasField("model_spec"):
        raise errors.missing_model_spec()
    with core.resolve(request.model_spec) as handle:
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = handle.servable.signatures.get(signature_name)
        if signature is None:
            raise errors.signature_not_found(signature_name)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.signature_name = signature_name
        response.model_spec.version.value = handle.version
        if (
            core.options.enable_signature_method_name_check
            and signature.method_name not in _ALLOWED_METHODS
        ):
            raise errors.bad_signature_method(signature.method_name)
        feeds = _parsed_inputs(signature, request.inputs)
        aliases = _output_aliases(signature, list(request.output_filter))
        _check_feeds(signature, feeds)
        results = signature.run({alias: tensor.to_numpy() for alias, tensor in feeds.items()})
    for alias in aliases:
        write_tensor(np.asarray(results[alias]), response.outputs[alias])
    return response


def _parsed_inputs(
    signature: Signature, sent: Mapping[str, tensor_pb2.TensorProto]
) -> dict[str, ParsedTensor]:
    # predict_util.cc VerifyRequestInputsSize, then cc/saved_model/util.cc GetInputValues.
    expected = signature.inputs
    if len(sent) > len(expected) or (len(sent) < len(expected) and not signature.defaults):
        raise errors.input_size_mismatch(sent.keys(), expected.keys())
    feeds: dict[str, ParsedTensor] = {}
    used: set[str] = set()
    for alias, spec in expected.items():
        if alias in sent:
            proto = sent[alias]
            used.add(alias)
        elif alias in signature.defaults:
            proto = signature.defaults[alias]
        else:
            raise errors.input_alias_not_in_request(
                alias, spec.feed_name, sent.keys(), signature.defaults.keys()
            )
        parsed = parse_tensor(proto)
        if parsed is None:
            raise errors.tensor_parsing_error(alias)
        feeds[alias] = parsed
    if sent and len(used) != len(sent):
        raise errors.invalid_input_names(used, sent.keys())
    return feeds


def _output_aliases(signature: Signature, output_filter: list[str]) -> list[str]:
    # predict_util.cc PreProcessPrediction: no filter means every output.
    if not output_filter:
        return list(signature.outputs)
    seen: list[str] = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise errors.output_alias_not_found(alias, signature.outputs)
        if alias in seen:
            raise errors.duplicate_output_alias(alias)
        seen.append(alias)
    return seen


def _check_feeds(signature: Signature, feeds: Mapping[str, ParsedTensor]) -> None:
    # Feeds go to the graph in the signature's (sorted) input order; arg[i] counts in it.
    for index, (alias, tensor) in enumerate(feeds.items()):
        expected = signature.inputs[alias].dtype
        if tensor.dtype != expected:
            raise errors.dtype_mismatch(index, type_name(expected), type_name(tensor.dtype))
    for index, (alias, tensor) in enumerate(feeds.items()):
        expected_shape = signature.inputs[alias].shape
        if not shape_compatible(expected_shape, tensor.shape):
            raise errors.shape_mismatch(
                index, alias, format_shape(expected_shape), format_shape(tensor.shape)
            )
