"""Every status code becomes the right exception, keeping the code and the details."""

from __future__ import annotations

import pickle
import socket

import grpc
import pytest
from imgclf_client import (
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    ImgclfError,
    Internal,
    InvalidArgument,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServerError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)

from tests.client.fakes import Connect, FakeClassifier

Code = grpc.StatusCode
MAPPED = [
    (Code.INVALID_ARGUMENT, InvalidArgument),
    (Code.NOT_FOUND, NotFound),
    (Code.RESOURCE_EXHAUSTED, ResourceExhausted),
    (Code.FAILED_PRECONDITION, FailedPrecondition),
    (Code.UNAVAILABLE, Unavailable),
    (Code.DEADLINE_EXCEEDED, DeadlineExceeded),
    (Code.CANCELLED, Cancelled),
    (Code.UNAUTHENTICATED, Unauthenticated),
    (Code.PERMISSION_DENIED, PermissionDenied),
    (Code.UNIMPLEMENTED, Unimplemented),
    (Code.INTERNAL, Internal),
]
UNMAPPED = [Code.UNKNOWN, Code.ALREADY_EXISTS, Code.ABORTED, Code.OUT_OF_RANGE, Code.DATA_LOSS]


@pytest.mark.parametrize(
    ("code", "error_class"), MAPPED + [(code, ServerError) for code in UNMAPPED], ids=str
)
async def test_status_codes_map_to_exceptions(
    connect: Connect, servicer: FakeClassifier, code: grpc.StatusCode, error_class: type
) -> None:
    client = connect(max_attempts=1)
    servicer.failures.append((code, f"details of {code.name}"))
    with pytest.raises(ServerError) as raised:
        await client.classify(b"image", model="cnn")
    error = raised.value
    assert type(error) is error_class
    assert isinstance(error, ImgclfError)
    assert (error.code, error.details) == (code, f"details of {code.name}")
    assert str(error) == f"{code.name}: details of {code.name}"


async def test_list_models_and_get_model_raise_the_same_tree(
    connect: Connect, servicer: FakeClassifier
) -> None:
    client = connect(max_attempts=1)
    servicer.failures.append((Code.INTERNAL, "backend exploded"))
    with pytest.raises(Internal, match="backend exploded"):
        await client.list_models()
    with pytest.raises(NotFound) as raised:
        await client.get_model("cnn", label="nightly")
    assert raised.value.details == "unknown label 'nightly'"


async def test_an_unreachable_server_is_unavailable(connect: Connect) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = connect(f"127.0.0.1:{port}", max_attempts=2)
    with pytest.raises(Unavailable) as raised:
        await client.classify(b"image", model="cnn")
    assert raised.value.code is Code.UNAVAILABLE
    assert raised.value.details


def test_server_errors_pickle() -> None:
    error = NotFound(Code.NOT_FOUND, "unknown model 'x'")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is NotFound
    assert (copy.code, copy.details) == (error.code, error.details)


def test_invalid_input_is_a_value_error() -> None:
    assert issubclass(InvalidInput, ValueError)
    assert issubclass(InvalidInput, ImgclfError)
    assert not issubclass(InvalidInput, ServerError)
