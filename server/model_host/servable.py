"""One loaded model version: its SignatureDefs and a graph function per signature.

`Servable.load` reads `saved_model.pb` itself (for the exact SignatureDefs TF Serving reports in
GetModelMetadata, and TF's own load errors, which go to the log: callers get a `LoadError.reason`
without server paths) and loads the SavedModel with
`tf.saved_model.load`, keeping each signature's concrete function: a call runs the traced graph
(no per-op eager dispatch) and is safe from many threads at once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import message, text_format
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from server.model_host.errors import ServingError
from server.model_host.tensors import shape_from_proto

log = logging.getLogger(__name__)

_SAVED_MODEL_PB = "saved_model.pb"
_SAVED_MODEL_PBTXT = "saved_model.pbtxt"
# Lines tf.function adds in front of a runtime error; TF Serving's message starts after them.
_PYTHON_PREAMBLE = re.compile(r"^(Graph execution error:|Detected at node|<stack traces)")
_OP_SUFFIX = re.compile(r" \[Op:[^\]]*\]$")
TF_LOAD_FAILED = "TensorFlow could not load the SavedModel"


@dataclass(frozen=True)
class InputSpec:
    """One signature input: its feed tensor, dtype and (partial) shape."""

    alias: str
    feed_name: str
    dtype: int
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True)
class Signature:
    """A callable SignatureDef."""

    name: str
    method_name: str
    inputs: Mapping[str, InputSpec]
    outputs: tuple[str, ...]
    defaults: Mapping[str, tensor_pb2.TensorProto]
    function: Callable[..., Mapping[str, Any]]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs the graph; a TensorFlow runtime error becomes a ServingError like TF Serving's."""
        try:
            results = self.function(**feeds)
        except tf.errors.OpError as exc:
            raise ServingError(_grpc_code(exc.error_code), runtime_error_message(exc)) from exc
        return {alias: tensor.numpy() for alias, tensor in results.items()}


class LoadError(Exception):
    """A version failed to load.

    `reason` is what callers see (GetModelStatus, a refused reload): it names the kind of
    failure, never a server path or TensorFlow's own text. `detail` is the full account (with
    paths), for the host's log only.
    """

    def __init__(self, code: grpc.StatusCode, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.code = code
        self.reason = reason
        self.detail = detail or reason


class Servable:
    """A loaded SavedModel version."""

    def __init__(
        self,
        path: Path,
        signature_defs: Mapping[str, meta_graph_pb2.SignatureDef],
        signatures: Mapping[str, Signature],
        loaded: object,
    ) -> None:
        self.path = path
        self.signatures = dict(signatures)
        self._signature_defs = dict(signature_defs)
        self._loaded = loaded  # keeps the variables the functions capture alive

    def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
        """Every SignatureDef of the served MetaGraph, as GetModelMetadata returns them."""
        result = get_model_metadata_pb2.SignatureDefMap()
        for name, definition in self._signature_defs.items():
            result.signature_def[name].CopyFrom(definition)
        return result

    @classmethod
    def load(cls, path: Path, tags: Collection[str]) -> Servable:
        """Loads the MetaGraph tagged `tags`; raises LoadError with TensorFlow's message."""
        meta_graph = _read_meta_graph(path, tags)
        try:
            loaded = tf.saved_model.load(str(path), tags=sorted(tags))
        except tf.errors.OpError as exc:
            raise LoadError(_grpc_code(exc.error_code), TF_LOAD_FAILED, exc.message) from exc
        except (OSError, ValueError) as exc:
            raise LoadError(grpc.StatusCode.INVALID_ARGUMENT, TF_LOAD_FAILED, str(exc)) from exc
        functions: Mapping[str, Any] = getattr(loaded, "signatures", {})
        signatures = {}
        for name, definition in meta_graph.signature_def.items():
            function = functions.get(name)
            if function is not None:
                signatures[name] = _signature(name, definition, function)
        return cls(path, meta_graph.signature_def, signatures, loaded)


def _read_meta_graph(path: Path, tags: Collection[str]) -> meta_graph_pb2.MetaGraphDef:
    # The checks and messages of TensorFlow's C++ loader (cc/saved_model/reader.cc,
    # tensorflow/core/platform/env.cc ReadBinaryProto), which TF Serving reports.
    saved_model = saved_model_pb2.SavedModel()
    pb, pbtxt = path / _SAVED_MODEL_PB, path / _SAVED_MODEL_PBTXT
    try:
        if pb.exists():
            saved_model.ParseFromString(pb.read_bytes())
        elif pbtxt.exists():
            text_format.Parse(pbtxt.read_text(), saved_model)
        else:
            raise LoadError(
                grpc.StatusCode.NOT_FOUND,
                "the version directory holds no saved_model.pb or saved_model.pbtxt",
                "Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
                f"{path}. Check that the directory exists and that you have the right "
                "permissions for accessing it.",
            )
    except message.DecodeError as exc:
        raise LoadError(
            grpc.StatusCode.DATA_LOSS,
            "the SavedModel is unreadable (saved_model.pb does not parse)",
            f"Can't parse {pb} as binary proto",
        ) from exc
    except text_format.ParseError as exc:
        raise LoadError(
            grpc.StatusCode.DATA_LOSS,
            "the SavedModel is unreadable (saved_model.pbtxt does not parse)",
            f"Can't parse {pbtxt} as text proto",
        ) from exc
    except OSError as exc:
        raise LoadError(
            grpc.StatusCode.UNKNOWN,
            "the SavedModel could not be read",
            f"{path}: {exc.strerror or exc}",
        ) from exc
    wanted = set(tags)
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == wanted:
            return meta_graph
    tag_set = "{ " + " ".join(sorted(wanted)) + " }"
    raise LoadError(
        grpc.StatusCode.NOT_FOUND,
        f"the SavedModel has no MetaGraph tagged {tag_set}",
        f"Could not find meta graph def matching supplied tags: {tag_set}. To inspect available "
        "tag-sets in the SavedModel, please use the SavedModel CLI: `saved_model_cli`",
    )


def _signature(
    name: str, definition: meta_graph_pb2.SignatureDef, function: Callable[..., Any]
) -> Signature:
    inputs = {
        alias: InputSpec(alias, info.name, int(info.dtype), shape_from_proto(info.tensor_shape))
        for alias, info in sorted(definition.inputs.items())
    }
    return Signature(
        name=name,
        method_name=definition.method_name,
        inputs=inputs,
        outputs=tuple(sorted(definition.outputs)),
        defaults=dict(definition.defaults),
        function=function,
    )


def runtime_error_message(exc: tf.errors.OpError) -> str:
    """The TensorFlow status message without the Python-only preamble tf.function adds."""
    lines = exc.message.split("\n")
    start = 0
    while start < len(lines) and (
        not lines[start].strip()
        or _PYTHON_PREAMBLE.match(lines[start])
        or lines[start].startswith("  ")
    ):
        start += 1
    text = "\n".join(lines[start:]) or exc.message
    return _OP_SUFFIX.sub("", text)


def _grpc_code(error_code: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == error_code:
            return code
    return grpc.StatusCode.UNKNOWN
