"""Converts between numpy arrays and TensorFlow `TensorProto`s without calling TensorFlow.

Only the dtypes the serving contract uses: uint8 images in; float32 probabilities, int32 sizes
and strings out. Requests carry packed `tensor_content`; replies are read from either
`tensor_content` or the typed repeated fields (`float_val`..., what TF Serving sends by default).
"""

from __future__ import annotations

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

_NUMPY_BY_DTYPE: dict[int, np.dtype] = {
    types_pb2.DT_UINT8: np.dtype(np.uint8),
    types_pb2.DT_INT32: np.dtype(np.int32),
    types_pb2.DT_INT64: np.dtype(np.int64),
    types_pb2.DT_FLOAT: np.dtype(np.float32),
    types_pb2.DT_DOUBLE: np.dtype(np.float64),
    types_pb2.DT_HALF: np.dtype(np.float16),
}
_VALUE_FIELD_BY_DTYPE: dict[int, str] = {
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_HALF: "half_val",
}


class TensorDecodeError(ValueError):
    """A TensorProto that does not hold what it claims."""


def uint8_tensor(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A DT_UINT8 TensorProto holding `array`'s bytes."""
    contiguous = np.ascontiguousarray(array, dtype=np.uint8)
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_UINT8,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in contiguous.shape]
        ),
        tensor_content=contiguous.tobytes(),
    )


def shape_of(tensor: tensor_pb2.TensorProto) -> tuple[int, ...]:
    return tuple(int(d.size) for d in tensor.tensor_shape.dim)


def to_numpy(tensor: tensor_pb2.TensorProto) -> np.ndarray:
    """A numeric TensorProto as a numpy array of its shape."""
    dtype = _NUMPY_BY_DTYPE.get(tensor.dtype)
    if dtype is None:
        raise TensorDecodeError(f"unsupported tensor dtype {types_pb2.DataType.Name(tensor.dtype)}")
    shape = shape_of(tensor)
    count = int(np.prod(shape)) if shape else 1
    if tensor.tensor_content:
        flat = np.frombuffer(tensor.tensor_content, dtype=dtype)
    else:
        values = getattr(tensor, _VALUE_FIELD_BY_DTYPE[tensor.dtype])
        flat = np.asarray(values, dtype=dtype)
        if tensor.dtype == types_pb2.DT_HALF:
            flat = np.asarray(values, dtype=np.uint16).view(np.float16)
        if flat.size == 1 and count > 1:
            flat = np.full(count, flat[0], dtype=dtype)
    if flat.size != count:
        raise TensorDecodeError(
            f"tensor holds {flat.size} values but its shape {shape} needs {count}"
        )
    return flat.reshape(shape)


def to_strings(tensor: tensor_pb2.TensorProto) -> list[str]:
    """A DT_STRING TensorProto as Python strings (UTF-8)."""
    if tensor.dtype != types_pb2.DT_STRING:
        raise TensorDecodeError(
            f"expected a string tensor, got {types_pb2.DataType.Name(tensor.dtype)}"
        )
    return [value.decode("utf-8", errors="replace") for value in tensor.string_val]
