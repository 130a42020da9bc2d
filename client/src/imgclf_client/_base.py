"""What `Client` and `AsyncClient` share: settings, channel options, deadlines, errors.

The two clients differ only in how they open a channel and wait for a call; requests
are built and responses converted by `_convert`, errors by `translate_errors` here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from ._config import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_TARGET,
    DEFAULT_TIMEOUT,
    MAX_ATTEMPTS_LIMIT,
    ChannelOptions,
    TimeoutTypes,
    UseClientDefault,
    channel_options,
)
from ._exceptions import InvalidInput, from_rpc_error


class BaseClient(ABC):
    """Settings and helpers common to the sync and async clients."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        secure: bool = False,
        credentials: grpc.ChannelCredentials | None = None,
        options: ChannelOptions = (),
        admin_token: str | None = None,
    ) -> None:
        """Opens a channel to the gateway; connecting happens on the first call.

        Args:
            target: the gateway address, "host:port".
            timeout: the default deadline of every call in seconds; None means no deadline.
                Each method also takes `timeout=` to override it for one call.
            max_message_bytes: the largest message sent or received (default 32 MiB).
            max_attempts: attempts per call, the first included, while the server answers
                UNAVAILABLE (1 to 5; 1 disables retries). No other status is retried.
            secure: use TLS with the system's root certificates.
            credentials: channel credentials (e.g. `grpc.ssl_channel_credentials(...)`);
                implies `secure`.
            options: extra gRPC channel options; each overrides the client's own option
                with the same key.
            admin_token: the bearer token for the Admin API (create, update and end
                experiments); the other calls need none.

        Raises:
            InvalidInput: a setting is out of range.
        """
        if max_message_bytes <= 0:
            raise InvalidInput(f"max_message_bytes must be positive, not {max_message_bytes}")
        if not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
            raise InvalidInput(
                f"max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}, not {max_attempts}"
            )
        self._target = target
        self._timeout = _checked_timeout(timeout)
        self._options = channel_options(
            max_message_bytes=max_message_bytes, max_attempts=max_attempts, extra=options
        )
        if credentials is None and secure:
            credentials = grpc.ssl_channel_credentials()
        self._credentials = credentials
        self._admin_token = admin_token
        self._connect()

    @abstractmethod
    def _connect(self) -> None:
        """Opens the channel from the settings above and makes the stub."""

    @property
    def target(self) -> str:
        """The gateway address, e.g. "localhost:50051"."""
        return self._target

    @property
    def timeout(self) -> float | None:
        """The default deadline of every call in seconds; None means no deadline."""
        return self._timeout

    @property
    def channel_options(self) -> list[tuple[str, Any]]:
        """The options the channel was opened with."""
        return list(self._options)

    def _admin_metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata of an Admin API call; raises InvalidInput without a token."""
        if not self._admin_token:
            raise InvalidInput("Admin API calls need the client's admin_token")
        return (("authorization", f"Bearer {self._admin_token}"),)

    def _deadline(self, timeout: TimeoutTypes) -> float | None:
        """The timeout to give gRPC for one call."""
        if isinstance(timeout, UseClientDefault):
            return self._timeout
        return _checked_timeout(timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self._target!r}, timeout={self._timeout!r})"


@contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raises a failed call's `grpc.RpcError` as the matching `ServerError`."""
    try:
        yield
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from exc


def _checked_timeout(timeout: float | None) -> float | None:
    if timeout is not None and timeout <= 0:
        raise InvalidInput(f"timeout must be positive seconds or None, not {timeout}")
    return timeout
