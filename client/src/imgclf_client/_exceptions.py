"""The exceptions the client raises; every one derives from `ImgclfError`.

    ImgclfError
    ├── InvalidInput             bad arguments, caught before any call (also a ValueError)
    └── ServerError              the call ended with a gRPC status; keeps `code` and `details`
        ├── InvalidArgument      INVALID_ARGUMENT: undecodable image or malformed field
        ├── NotFound             NOT_FOUND: unknown model, version or label
        ├── ResourceExhausted    RESOURCE_EXHAUSTED: image or message over a size limit
        ├── FailedPrecondition   FAILED_PRECONDITION: the model cannot serve this call
        ├── Unavailable          UNAVAILABLE: still unavailable after the retries
        ├── DeadlineExceeded     DEADLINE_EXCEEDED: the deadline passed
        ├── Cancelled            CANCELLED: the call was cancelled
        ├── Unauthenticated      UNAUTHENTICATED: missing or bad credentials
        ├── PermissionDenied     PERMISSION_DENIED: credentials not allowed
        ├── Unimplemented        UNIMPLEMENTED: the server lacks the method
        └── Internal             INTERNAL: the server failed

Any other status code raises a plain `ServerError`.
"""

from __future__ import annotations

import grpc


class ImgclfError(Exception):
    """The root of every exception the client raises."""


class InvalidInput(ImgclfError, ValueError):
    """An argument was rejected on the client side; nothing was sent."""


class ServerError(ImgclfError):
    """A call ended with a gRPC status other than OK.

    Attributes:
        code: the gRPC status code.
        details: the status message, as the server (or the gRPC runtime) wrote it.
    """

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        # Both values in args so the exception pickles and compares like any other.
        super().__init__(code, details)
        self.code = code
        self.details = details

    def __str__(self) -> str:
        return f"{self.code.name}: {self.details}"


class InvalidArgument(ServerError):
    """INVALID_ARGUMENT: the image cannot be decoded, or a field is malformed."""


class NotFound(ServerError):
    """NOT_FOUND: unknown model, version or label."""


class ResourceExhausted(ServerError):
    """RESOURCE_EXHAUSTED: the image or message is over a size limit."""


class FailedPrecondition(ServerError):
    """FAILED_PRECONDITION: the model cannot serve this call in its current state."""


class Unavailable(ServerError):
    """UNAVAILABLE: the gateway or its backend could not be reached, even after retries."""


class DeadlineExceeded(ServerError):
    """DEADLINE_EXCEEDED: the call's deadline passed."""


class Cancelled(ServerError):
    """CANCELLED: the call was cancelled."""


class Unauthenticated(ServerError):
    """UNAUTHENTICATED: the call carried no valid credentials."""


class PermissionDenied(ServerError):
    """PERMISSION_DENIED: the credentials do not allow this call."""


class Unimplemented(ServerError):
    """UNIMPLEMENTED: the server does not implement this method."""


class Internal(ServerError):
    """INTERNAL: the server failed while handling the call."""


ERROR_CLASSES: dict[grpc.StatusCode, type[ServerError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: Internal,
}


def from_rpc_error(error: grpc.RpcError) -> ServerError:
    """The `ServerError` subclass for a failed call, keeping its status code and details."""
    code = error.code()
    return ERROR_CLASSES.get(code, ServerError)(code, error.details() or "")


_CODES_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


def from_status(code: int, details: str) -> ServerError:
    """The `ServerError` subclass for a numeric status code (as in a stream's per-image error)."""
    status = _CODES_BY_VALUE.get(code, grpc.StatusCode.UNKNOWN)
    return ERROR_CLASSES.get(status, ServerError)(status, details)
