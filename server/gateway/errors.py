"""Domain exceptions of the gateway.

The core raises these; exactly one place (`server.gateway.interceptor`) turns them into gRPC
statuses, and anything else into INTERNAL with a fixed message. Each message is meant for the
person who sent the request: say what was wrong and what would be accepted.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway reports to a caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(GatewayError):
    """A field of the request is missing or malformed (INVALID_ARGUMENT)."""


class InvalidImage(InvalidRequest):
    """The image bytes or pixels cannot be turned into an RGB image (INVALID_ARGUMENT)."""


class LimitExceeded(GatewayError):
    """The request is over a configured size limit (RESOURCE_EXHAUSTED)."""


class NotFound(GatewayError):
    """Unknown model, version or label (NOT_FOUND)."""


class BackendUnavailable(GatewayError):
    """The model backend cannot be reached, or the model is not loaded yet (UNAVAILABLE)."""


class DeadlineExceeded(GatewayError):
    """The call's deadline passed before the backend answered (DEADLINE_EXCEEDED)."""


class BackendFailed(GatewayError):
    """The backend answered with an error the gateway cannot attribute to the caller (INTERNAL)."""


class AlreadyExists(GatewayError):
    """The thing to create exists already, or a different answer was recorded (ALREADY_EXISTS)."""


class Conflict(GatewayError):
    """A concurrent change got there first; read again and retry (ABORTED)."""


class FailedPrecondition(GatewayError):
    """The system is not in a state where the call can work, e.g. no store (FAILED_PRECONDITION)."""


class StoreUnavailable(GatewayError):
    """The experiment store cannot be reached right now; retry (UNAVAILABLE)."""

    @classmethod
    def because(cls, error: Exception) -> StoreUnavailable:
        return cls(f"the experiment store is unavailable ({error}); retry shortly")


class Unauthenticated(GatewayError):
    """The call carries no credentials where they are needed (UNAUTHENTICATED)."""


class PermissionDenied(GatewayError):
    """The credentials do not allow the call (PERMISSION_DENIED)."""
