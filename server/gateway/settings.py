"""The gateway's settings: one object, read from `serving_config/gateway.toml` and environment.

Precedence, highest first: keyword arguments (tests), environment variables prefixed
`IMGCLF_GATEWAY_` (e.g. `IMGCLF_GATEWAY_PORT=50052`), the TOML file named by
`IMGCLF_GATEWAY_SETTINGS_FILE` (default `serving_config/gateway.toml`; a missing file is fine),
then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

SETTINGS_FILE_ENV = "IMGCLF_GATEWAY_SETTINGS_FILE"
DEFAULT_SETTINGS_FILE = Path("serving_config/gateway.toml")
MIB = 1024 * 1024


class GatewaySettings(BaseSettings):
    """Everything the gateway can be told; every field is documented."""

    model_config = SettingsConfigDict(env_prefix="IMGCLF_GATEWAY_", extra="ignore")

    host: str = Field("[::]", description="Address the gRPC server binds to.")
    port: int = Field(50051, description="gRPC port of the gateway; 0 picks a free port.")
    backend_target: str = Field(
        "localhost:8500",
        description="host:port of the model backend speaking TF Serving's gRPC API.",
    )
    models_config_path: Path = Field(
        Path("serving_config/models.config"),
        description="TF Serving models.config; the gateway reads model names and labels from it.",
    )
    max_message_bytes: int = Field(
        32 * MIB,
        description="Largest gRPC message the gateway accepts or sends, on both of its sides.",
    )
    max_encoded_image_bytes: int = Field(
        20 * MIB, description="Largest encoded image accepted; more is RESOURCE_EXHAUSTED."
    )
    max_image_pixels: int = Field(
        64_000_000,
        description="Largest decoded image (width x height), checked from the header before "
        "decoding; more is RESOURCE_EXHAUSTED.",
    )
    default_timeout_s: float = Field(
        10.0, description="Deadline for backend calls when the caller sets none."
    )
    version_cache_ttl_s: float = Field(
        0.25,
        description="How long a label (or 'latest') stays resolved to a version number before "
        "the backend is asked again; bounds how late a moved label is seen.",
    )
    preprocess_workers: int = Field(
        os.cpu_count() or 1, description="Threads that decode and resize images."
    )
    batching: bool = Field(
        True,
        description="Coalesce concurrent requests for one model version into one backend call; "
        "false sends every image on its own.",
    )
    max_batch_size: int = Field(32, description="Most images in one backend Predict call.")
    batch_max_wait_ms: float = Field(
        5.0,
        description="Longest a request waits for its batch to be sent while the backend is busy "
        "(an idle backend gets every request at once).",
    )
    batch_max_in_flight: int = Field(
        2, description="Batches of one model version at the backend at the same time."
    )
    metrics_host: str = Field("0.0.0.0", description="Address of the Prometheus /metrics server.")
    metrics_port: int = Field(
        9464, description="Port of the Prometheus /metrics server; -1 turns it off, 0 picks one."
    )
    log_format: str = Field(
        "json", description="'json' (one object per line, with request ids) or 'text'."
    )
    grace_period_s: float = Field(
        10.0,
        description="On SIGTERM, how long in-flight calls may finish; keep it below the pod's "
        "terminationGracePeriodSeconds.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        settings_file = Path(os.environ.get(SETTINGS_FILE_ENV, DEFAULT_SETTINGS_FILE))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=settings_file),
        )
