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
