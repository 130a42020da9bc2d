"""TensorProto conversions: Tensor::FromProto's rules in, AsProtoField out."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from server.model_host.tensors import (
    format_shape,
    parse_tensor,
    shape_compatible,
    type_name,
    write_tensor,
)


def _typed(
    dtype: int, shape: list[int], field: str, values: list[object]
) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    getattr(proto, field).extend(values)
    return proto


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2),
        np.array([[1, -2], [3, 2**40]], dtype=np.int64),
        np.array([True, False, True]),
        np.array([1.5, -2.25], dtype=np.float16),
        np.array([1 + 2j, -3j], dtype=np.complex64),
        np.array([b"a", b"", b"\xffbytes"], dtype=object),
        np.zeros((0, 3), dtype=np.float32),
        np.array(3.5, dtype=np.float64),
    ],
)
def test_round_trip_matches_tensorflow(array: np.ndarray) -> None:
    parsed = parse_tensor(tf.make_tensor_proto(array))
    assert parsed is not None
    np.testing.assert_array_equal(parsed.to_numpy(), array)

    written = tensor_pb2.TensorProto()
    write_tensor(array, written)
    assert not written.tensor_content
    np.testing.assert_array_equal(tf.make_ndarray(written), array)


def test_fewer_values_repeat_the_last_and_none_means_zeros() -> None:
    padded = parse_tensor(_typed(types_pb2.DT_FLOAT, [2, 2], "float_val", [1.0, 2.0]))
    assert padded is not None
    np.testing.assert_array_equal(padded.to_numpy(), [[1.0, 2.0], [2.0, 2.0]])
    zeros = parse_tensor(_typed(types_pb2.DT_INT32, [3], "int_val", []))
    assert zeros is not None
    np.testing.assert_array_equal(zeros.to_numpy(), [0, 0, 0])


def test_extra_values_are_ignored() -> None:
    parsed = parse_tensor(_typed(types_pb2.DT_INT64, [2], "int64_val", [5, 6, 7]))
    assert parsed is not None
    np.testing.assert_array_equal(parsed.to_numpy(), [5, 6])


def test_uint8_from_int_val_wraps_like_a_static_cast() -> None:
    parsed = parse_tensor(_typed(types_pb2.DT_UINT8, [3], "int_val", [1, 256, -1]))
    assert parsed is not None
    np.testing.assert_array_equal(parsed.to_numpy(), np.array([1, 0, 255], dtype=np.uint8))


def test_string_tensor_content_is_decoded() -> None:
    content = bytes([1, 0, 3]) + b"a" + b"xyz"
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_content=content)
    proto.tensor_shape.dim.add(size=3)
    parsed = parse_tensor(proto)
    assert parsed is not None
    assert parsed.to_numpy().tolist() == [b"a", b"", b"xyz"]
    proto.tensor_content = content + b"!"
    assert parse_tensor(proto) is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: setattr(p, "tensor_content", p.tensor_content[:-1]),
        lambda p: p.tensor_shape.dim[0].__setattr__("size", -3),
        lambda p: setattr(p, "dtype", types_pb2.DT_INVALID),
        lambda p: setattr(p, "dtype", types_pb2.DT_FLOAT_REF),
    ],
)
def test_what_from_proto_refuses(mutate: Callable[[tensor_pb2.TensorProto], object]) -> None:
    proto = tf.make_tensor_proto(np.zeros((2, 2), np.float32))
    mutate(proto)
    assert parse_tensor(proto) is None


def test_empty_tensor_ignores_its_content() -> None:
    proto = tf.make_tensor_proto(np.zeros((0, 4), np.float32))
    proto.tensor_content = b"junk"
    parsed = parse_tensor(proto)
    assert parsed is not None
    assert parsed.to_numpy().shape == (0, 4)


def test_names_and_shapes_print_like_tensorflow() -> None:
    assert type_name(types_pb2.DT_FLOAT) == "float"
    assert type_name(types_pb2.DT_DOUBLE) == "double"
    assert type_name(types_pb2.DT_HALF) == "half"
    assert type_name(types_pb2.DT_UINT8) == "uint8"
    assert type_name(types_pb2.DT_STRING) == "string"
    assert format_shape((None, 32, 32, 3)) == "[?,32,32,3]"
    assert format_shape(None) == "<unknown>"
    assert format_shape(()) == "[]"


def test_shape_compatibility() -> None:
    assert shape_compatible((None, 32, 32, 3), (5, 32, 32, 3))
    assert not shape_compatible((None, 32, 32, 3), (5, 32, 32))
    assert not shape_compatible((None, 32, 32, 3), (5, 31, 32, 3))
    assert shape_compatible(None, (1, 2, 3))
