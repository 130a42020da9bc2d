"""The model host's settings, named after `tensorflow_model_server`'s flags.

The CLI (`python -m server.model_host`) and `create_server` both build a `HostOptions`; defaults
are TF Serving's unless noted on the field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


def _default_grpc_threads() -> int:
    # TF Serving's --grpc_max_threads default: 4 x the schedulable CPUs.
    return 4 * (os.cpu_count() or 1)


@dataclass(frozen=True)
class HostOptions:
    """How the host polls, loads and serves."""

    file_system_poll_wait_seconds: float = 1.0
    """Seconds between scans of each model's base path for versions. 0 scans once at startup,
    a negative value never scans (TF Serving: "reserved for testing"). Fractions are allowed
    here (TF Serving takes whole seconds)."""

    model_config_file_poll_wait_seconds: float = 0.0
    """Seconds between re-reads of the config file (its changes are applied like
    HandleReloadConfigRequest); 0 reads it only at startup."""

    allow_version_labels_for_unavailable_models: bool = False
    """Lets a label that is new (or unchanged) point at a version that is not AVAILABLE yet;
    moving an existing label still requires the target to be AVAILABLE. Without it, any label
    in the startup config fails, since nothing is loaded when the config is first read."""

    max_num_load_retries: int = 5
    """Retries after a failed load before the version ends in END with the error. The wait
    between attempts holds up no other load, poll or config reload."""

    load_retry_interval_micros: int = 60_000_000
    """Microseconds between load retries (a failing version stays LOADING meanwhile)."""

    saved_model_tags: tuple[str, ...] = ("serve",)
    """The MetaGraph to load from each SavedModel."""

    enable_signature_method_name_check: bool = False
    """Refuse Predict on signatures whose method_name is not predict/classify/regress."""

    grpc_max_threads: int = _default_grpc_threads()
    """Worker threads of the gRPC server (concurrent RPCs)."""

    max_receive_message_length: int = 64 * MIB
    """Largest request accepted, in bytes. Real TF Serving allows 2 GiB - 1; the host keeps a
    deliberate limit that a batch of 32 Xception-size images (~8.6 MB) is far below."""

    max_send_message_length: int = 64 * MIB
    """Largest response sent, in bytes (same note as above)."""

    grpc_channel_arguments: tuple[tuple[str, int | str], ...] = ()
    """Extra gRPC server arguments (`--grpc_channel_arguments=key=value,...`); they override the
    message limits above when they name the same keys."""

    enable_model_management: bool = True
    """Local-host extension: serve ModelService/HandleReloadConfigRequest. False refuses every
    call with PERMISSION_DENIED (the config file and its polling still apply)."""

    management_token_file: Path | None = None
    """Local-host extension: a file holding one token. When set, HandleReloadConfigRequest must
    carry metadata `authorization: Bearer <token>` from every peer; when unset, it is accepted
    from this machine (loopback, Unix socket) only. Read once at startup."""

    @property
    def load_retry_interval_seconds(self) -> float:
        return self.load_retry_interval_micros / 1_000_000


def parse_channel_arguments(text: str) -> tuple[tuple[str, int | str], ...]:
    """`key=value,key=value` as TF Serving parses --grpc_channel_arguments: int when it is one."""
    result: list[tuple[str, int | str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"grpc channel argument {item!r} is not key=value")
        try:
            result.append((key, int(value)))
        except ValueError:
            result.append((key, value))
    return tuple(result)
