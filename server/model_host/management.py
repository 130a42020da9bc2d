"""Who may call ModelService/HandleReloadConfigRequest: a local-host extension (TF Serving has no
such control; its ModelService answers anyone who reaches the port).

Three settings (`HostOptions.enable_model_management`, `HostOptions.management_token_file`):

- default (no token file): allowed from this machine (a loopback or Unix-socket peer) without a
  token, refused with PERMISSION_DENIED from anywhere else, so binding the host to another
  address does not hand its config to the network;
- a token file: every call, local or not, must carry metadata `authorization: Bearer <token>`;
  none or a malformed one is UNAUTHENTICATED, a wrong one PERMISSION_DENIED;
- management turned off: every call is refused with PERMISSION_DENIED.

The check is a server interceptor wrapping only that method; every other RPC passes untouched.
The token is read once at startup and compared in constant time; it is never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias
from urllib.parse import unquote

import grpc

from common.token_file import MAX_TOKEN_LENGTH
from server.model_host import errors
from server.model_host.servicers import abort

log = logging.getLogger(__name__)

RELOAD_METHOD = "/tensorflow.serving.ModelService/HandleReloadConfigRequest"
_LOCAL_SCHEMES = ("unix", "unix-abstract")
Metadata = Sequence[tuple[str, str | bytes]]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def is_local_peer(peer: str) -> bool:
    """Whether a gRPC peer string (`ipv4:127.0.0.1:5000`, `ipv6:%5B::1%5D:5000`, `unix:...`)
    is on this machine."""
    scheme, _, rest = unquote(peer).partition(":")
    if scheme in _LOCAL_SCHEMES:
        return True
    if scheme not in ("ipv4", "ipv6"):
        return False
    host = rest.rpartition(":")[0].strip("[]").split("%")[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class ManagementPolicy:
    """Decides whether one HandleReloadConfigRequest may run."""

    def __init__(self, *, enabled: bool, token: str | None) -> None:
        self._enabled = enabled
        self._token = token

    def refusal(self, peer: str, metadata: Metadata) -> errors.ServingError | None:
        """Why the call from `peer` with `metadata` is refused, or None when it may run."""
        if not self._enabled:
            return errors.management_disabled()
        if self._token is None:
            return None if is_local_peer(peer) else errors.management_not_local()
        values = [value for key, value in metadata if key.lower() == "authorization"]
        if len(values) != 1:
            return errors.management_token_missing()
        value = values[0]
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        scheme, _, token = text.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
            return errors.management_token_missing()
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            return errors.management_token_wrong()
        return None


class ManagementInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Applies a ManagementPolicy to HandleReloadConfigRequest."""

    def __init__(self, policy: ManagementPolicy) -> None:
        self._policy = policy

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        method: str = getattr(handler_call_details, "method", "")
        if method != RELOAD_METHOD or handler is None or handler.unary_unary is None:
            return handler
        behaviour = handler.unary_unary
        metadata: Metadata = tuple(getattr(handler_call_details, "invocation_metadata", ()) or ())
        policy = self._policy

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            failure = policy.refusal(context.peer(), metadata)
            if failure is not None:
                log.warning(
                    "HandleReloadConfigRequest from %s refused: %s",
                    context.peer(),
                    failure.status_string(),
                )
                abort(context, failure)
            return behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
