"""Client configuration: defaults, the timeout sentinel and the gRPC channel options.

Retries are not written in Python: the channel carries a gRPC service config whose
`retryPolicy` retries UNAVAILABLE (and only UNAVAILABLE) with exponential backoff, so
every attempt stays inside the call's one deadline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final, TypeAlias

DEFAULT_TARGET: Final = "localhost:50051"
DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_MAX_MESSAGE_BYTES: Final = 32 * 1024 * 1024
DEFAULT_MAX_ATTEMPTS: Final = 4
# gRPC clamps maxAttempts to 5; a policy with maxAttempts 1 is invalid, so 1 means no policy.
MAX_ATTEMPTS_LIMIT: Final = 5

SERVICE_NAME: Final = "imgclf.v1.Classifier"
# Named one by one so that methods added to the services later are not retried by default.
# Feedback is safe to repeat (the same answer again is a no-op); Admin calls are never retried.
IDEMPOTENT_METHODS: Final = (
    (SERVICE_NAME, "Classify"),
    (SERVICE_NAME, "ListModels"),
    (SERVICE_NAME, "GetModel"),
    (SERVICE_NAME, "Compare"),
    (SERVICE_NAME, "Feedback"),
    ("imgclf.v1.Experiments", "ListExperiments"),
    ("imgclf.v1.Experiments", "GetExperimentReport"),
)

ChannelOptions: TypeAlias = Sequence[tuple[str, Any]]


class UseClientDefault:
    """The type of `USE_CLIENT_DEFAULT`: "use the timeout the client was created with".

    A sentinel is needed because `None` already has a meaning: no deadline at all.
    """

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT: Final = UseClientDefault()

TimeoutTypes: TypeAlias = float | UseClientDefault | None


def service_config(max_attempts: int) -> str:
    """The JSON service config: the idempotent methods retry UNAVAILABLE, and only that."""
    method_config: dict[str, Any] = {
        "name": [{"service": service, "method": method} for service, method in IDEMPOTENT_METHODS]
    }
    if max_attempts > 1:
        method_config["retryPolicy"] = {
            "maxAttempts": max_attempts,
            "initialBackoff": "0.1s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return json.dumps({"methodConfig": [method_config]})


def channel_options(
    *, max_message_bytes: int, max_attempts: int, extra: ChannelOptions = ()
) -> list[tuple[str, Any]]:
    """The channel options the client sets deliberately, overridden key by key by `extra`."""
    options: dict[str, Any] = {
        "grpc.max_send_message_length": max_message_bytes,
        "grpc.max_receive_message_length": max_message_bytes,
        "grpc.enable_retries": 1,
        "grpc.service_config": service_config(max_attempts),
        # gRPC only retries calls whose request fits its retry buffer (256 KiB by default);
        # images are larger, so the buffer must hold the largest message the client may send.
        "grpc.per_rpc_retry_buffer_size": max_message_bytes,
    }
    options.update(extra)
    return list(options.items())
