"""TensorProto <-> numpy, with the semantics of TF Serving's C++ conversions.

Requests are read like `tensorflow::Tensor::FromProto` (the call behind TF Serving's "tensor
parsing error"): a shape with a negative dimension, an unknown dtype or a `tensor_content` whose
size is not elements x item size is refused; typed value fields (`float_val`, `int_val`, ...) may
hold fewer values than the shape (the last one repeats, none means zeros) or more (the rest are
ignored). Parsing is split from materialising so a dtype or shape mismatch is found before any
array is built.

Responses are written like `Tensor::AsProtoField`, TF Serving's default serialisation for
Predict: typed value fields, never `tensor_content`, so clients that read `float_val` directly
see what real TF Serving sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

_MAX_DIMS = 254
_INT64_MAX = 2**63 - 1

# DataTypeString() (tensorflow/core/framework/types.cc) differs from tf.DType.name for these.
_TF_TYPE_NAMES = {
    types_pb2.DT_FLOAT: "float",
    types_pb2.DT_DOUBLE: "double",
    types_pb2.DT_HALF: "half",
}

# Which typed field holds the values of each dtype (tensorflow/core/framework/tensor.cc,
# ProtoHelper<T>).
_INT_VAL_TYPES = frozenset(
    {
        types_pb2.DT_INT32,
        types_pb2.DT_INT16,
        types_pb2.DT_INT8,
        types_pb2.DT_UINT8,
        types_pb2.DT_UINT16,
        types_pb2.DT_QINT8,
        types_pb2.DT_QUINT8,
        types_pb2.DT_QINT16,
        types_pb2.DT_QUINT16,
        types_pb2.DT_QINT32,
    }
)
_FIELD_BY_TYPE: dict[int, str] = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_BFLOAT16: "half_val",
    types_pb2.DT_COMPLEX64: "scomplex_val",
    types_pb2.DT_COMPLEX128: "dcomplex_val",
    **dict.fromkeys(_INT_VAL_TYPES, "int_val"),
}
_COMPLEX_TYPES = frozenset({types_pb2.DT_COMPLEX64, types_pb2.DT_COMPLEX128})
_HALF_BITS_TYPES = frozenset({types_pb2.DT_HALF, types_pb2.DT_BFLOAT16})
# Valid TensorFlow dtypes that numpy cannot hold; they parse, and only fail the dtype check.
_OPAQUE_TYPES = frozenset({types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT})


def type_name(dtype: int) -> str:
    """The dtype as TensorFlow's DataTypeString() prints it (`float`, `uint8`, `string`)."""
    if dtype in _TF_TYPE_NAMES:
        return _TF_TYPE_NAMES[dtype]
    try:
        return str(tf.dtypes.as_dtype(dtype).name)
    except TypeError:
        return f"unknown dtype {dtype}"


def _numpy_dtype(dtype: int) -> np.dtype[Any] | None:
    if dtype == types_pb2.DT_STRING:
        return np.dtype(object)
    if dtype in _OPAQUE_TYPES or dtype not in _FIELD_BY_TYPE:
        return None
    return np.dtype(tf.dtypes.as_dtype(dtype).as_numpy_dtype)


def format_shape(dims: Sequence[int | None] | None) -> str:
    """A shape as TensorFlow prints it: `[?,32,32,3]`, `<unknown>` for an unknown rank."""
    if dims is None:
        return "<unknown>"
    return "[" + ",".join("?" if d is None or d < 0 else str(d) for d in dims) + "]"


def shape_from_proto(shape: tensor_shape_pb2.TensorShapeProto) -> tuple[int | None, ...] | None:
    """A signature's (partial) shape: None for an unknown rank, None for an unknown dimension."""
    if shape.unknown_rank:
        return None
    return tuple(None if d.size < 0 else d.size for d in shape.dim)


def shape_compatible(expected: tuple[int | None, ...] | None, got: Sequence[int]) -> bool:
    """Whether a concrete shape fits a partial one (unknown rank or dimension matches anything)."""
    if expected is None:
        return True
    if len(expected) != len(got):
        return False
    return all(e is None or e == g for e, g in zip(expected, got, strict=True))


@dataclass(frozen=True)
class ParsedTensor:
    """A TensorProto that Tensor::FromProto would accept, not yet turned into an array."""

    dtype: int
    shape: tuple[int, ...]
    proto: tensor_pb2.TensorProto
    strings: tuple[bytes, ...] | None = None

    @property
    def num_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    def to_numpy(self) -> np.ndarray:
        """The values as an array of the tensor's dtype (read-only when taken from the bytes)."""
        np_dtype = _numpy_dtype(self.dtype)
        if np_dtype is None:
            raise TypeError(f"{type_name(self.dtype)} tensors cannot be turned into arrays")
        n = self.num_elements
        if n == 0:
            return np.zeros(self.shape, dtype=np_dtype)
        if self.strings is not None:
            return _object_array(self.strings, self.shape)
        if self.proto.tensor_content:
            content = np.frombuffer(self.proto.tensor_content, dtype=np_dtype.newbyteorder("<"))
            return content.reshape(self.shape)
        return _from_value_field(self.proto, self.dtype, np_dtype, n).reshape(self.shape)


def parse_tensor(proto: tensor_pb2.TensorProto) -> ParsedTensor | None:
    """The tensor, or None where Tensor::FromProto would fail ("tensor parsing error")."""
    dtype = int(proto.dtype)
    # DT_INVALID, reference types and the exotic 4/8-bit types are refused here; TensorFlow
    # would accept the last group and then fail the signature's dtype check instead.
    if dtype not in _FIELD_BY_TYPE and dtype not in _OPAQUE_TYPES:
        return None
    shape = _valid_shape(proto.tensor_shape)
    if shape is None:
        return None
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if n == 0 or not proto.tensor_content:
        return ParsedTensor(dtype, shape, proto)
    if dtype == types_pb2.DT_STRING:
        strings = _decode_string_list(proto.tensor_content, n)
        return None if strings is None else ParsedTensor(dtype, shape, proto, strings)
    np_dtype = _numpy_dtype(dtype)
    if np_dtype is None or len(proto.tensor_content) != n * np_dtype.itemsize:
        return None
    return ParsedTensor(dtype, shape, proto)


def _valid_shape(shape: tensor_shape_pb2.TensorShapeProto) -> tuple[int, ...] | None:
    # TensorShape::IsValid: no negative dimension, at most 254 of them, no int64 overflow.
    if len(shape.dim) > _MAX_DIMS:
        return None
    dims = tuple(int(d.size) for d in shape.dim)
    total = 1
    for d in dims:
        if d < 0:
            return None
        total *= d
        if total > _INT64_MAX:
            return None
    return dims


def _decode_string_list(content: bytes, n: int) -> tuple[bytes, ...] | None:
    # The DT_STRING tensor_content encoding: n varint32 lengths, then the bytes back to back.
    lengths: list[int] = []
    pos = 0
    for _ in range(n):
        value, shift = 0, 0
        while True:
            if pos >= len(content) or shift > 28:
                return None
            byte = content[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        lengths.append(value)
    if len(content) - pos != sum(lengths):
        return None
    strings = []
    for length in lengths:
        strings.append(bytes(content[pos : pos + length]))
        pos += length
    return tuple(strings)


def _object_array(values: Sequence[bytes], shape: tuple[int, ...]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array.reshape(shape)


def _from_value_field(
    proto: tensor_pb2.TensorProto, dtype: int, np_dtype: np.dtype[Any], n: int
) -> np.ndarray:
    field = getattr(proto, _FIELD_BY_TYPE[dtype])
    if dtype in _COMPLEX_TYPES:
        pairs = np.asarray(field, dtype=np.float64)[: 2 * (len(field) // 2)]
        raw = (pairs[0::2] + 1j * pairs[1::2]).astype(np_dtype)
    elif dtype == types_pb2.DT_STRING:
        raw = _object_array(list(field), (len(field),))
    elif dtype in _HALF_BITS_TYPES:
        raw = np.asarray(field, dtype=np.int32).astype(np.uint16).view(np_dtype)
    elif dtype in _INT_VAL_TYPES:
        # static_cast from int32, so out-of-range values wrap like in C++.
        raw = np.asarray(field, dtype=np.int32).astype(np_dtype)
    else:
        raw = np.asarray(field, dtype=np_dtype)
    if len(raw) == 0:
        return np.zeros(n, dtype=np_dtype) if dtype != types_pb2.DT_STRING else _empties(n)
    if len(raw) >= n:
        return raw[:n]
    padding = np.full(n - len(raw), raw[-1], dtype=raw.dtype)
    return np.concatenate([raw, padding])


def _empties(n: int) -> np.ndarray:
    return _object_array([b""] * n, (n,))


def write_tensor(array: np.ndarray, proto: tensor_pb2.TensorProto) -> None:
    """Fills `proto` like Tensor::AsProtoField: dtype, shape and the typed value field."""
    if array.dtype == object:
        dtype = types_pb2.DT_STRING
    else:
        dtype = int(tf.dtypes.as_dtype(array.dtype).as_datatype_enum)
    proto.dtype = dtype
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    flat = array.reshape(-1)
    field = getattr(proto, _FIELD_BY_TYPE[dtype])
    if dtype in _HALF_BITS_TYPES:
        field.extend(flat.view(np.uint16).astype(np.int32).tolist())
    elif dtype in _COMPLEX_TYPES:
        field.extend(np.stack([flat.real, flat.imag], axis=-1).reshape(-1).tolist())
    else:
        field.extend(flat.tolist())
