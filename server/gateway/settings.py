"""The gateway's settings: one object, read from `serving_config/gateway.toml` and environment.

Precedence, highest first: keyword arguments (tests), environment variables prefixed
`IMGCLF_GATEWAY_` (e.g. `IMGCLF_GATEWAY_PORT=50052`), the TOML file named by
`IMGCLF_GATEWAY_SETTINGS_FILE` (default `serving_config/gateway.toml`; a missing file is fine),
then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
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
    backend_timeout_s: float = Field(
        5.0,
        gt=0,
        description="The longest one backend call may take, whatever the caller's deadline: a "
        "hung backend is answered UNAVAILABLE after this, while the caller can still retry.",
    )
    breaker_failures: int = Field(
        5,
        ge=1,
        description="Backend faults in a row (UNAVAILABLE, no answer within backend_timeout_s) "
        "that open the circuit breaker: calls then fail fast with UNAVAILABLE.",
    )
    breaker_open_s: float = Field(
        2.0,
        ge=0,
        description="How long the open circuit fails calls fast before one probe call is let "
        "through; an answer closes it.",
    )
    readiness_interval_s: float = Field(
        1.0,
        gt=0,
        description="How often the backend is asked whether a configured model has an "
        "AVAILABLE version; health is NOT_SERVING while none has or the backend does not answer.",
    )
    readiness_timeout_s: float = Field(
        1.0, gt=0, description="How long one readiness check waits for the backend."
    )
    version_cache_ttl_s: float = Field(
        0.25,
        description="How long a label (or 'latest') stays resolved to a version number before "
        "the backend is asked again; bounds how late a moved label is seen.",
    )
    max_decoded_image_bytes: int = Field(
        256 * MIB,
        gt=0,
        description="Largest decoded frame (width x height x bytes per pixel of its mode), "
        "checked from the header, and for every image an ICO embeds, before decoding; more is "
        "RESOURCE_EXHAUSTED.",
    )
    preprocess_workers: int = Field(
        os.cpu_count() or 1,
        description="Threads that resize raw pixels (encoded images go to the decode processes).",
    )
    decode_memory_budget_mb: int = Field(
        4096,
        gt=0,
        description="Memory for all decode processes together: their number is this divided by "
        "decode_worker_memory_mb, so decode concurrency follows memory, not the core count. Size "
        "the pod's memory limit as the gateway's own (~1 GiB) plus this.",
    )
    decode_worker_memory_mb: int = Field(
        1024,
        gt=0,
        description="Address-space cap of one decode process; an image that needs more is "
        "RESOURCE_EXHAUSTED.",
    )
    decode_time_budget_s: float = Field(
        3.0,
        gt=0,
        description="Longest one image may take to decode; its process is then killed and "
        "replaced, and the call answered RESOURCE_EXHAUSTED (DEADLINE_EXCEEDED if the caller's "
        "deadline came first).",
    )
    decode_slow_after_s: float = Field(
        0.1,
        gt=0,
        description="A decode that has used this much CPU time moves to a slow lane at the "
        "lowest CPU priority, freeing its fast lane; when every slow lane is taken it is stopped "
        "with RESOURCE_EXHAUSTED (the server is busy with costly images).",
    )
    decode_slow_lanes: int = Field(
        2,
        ge=0,
        description="Decode processes kept for images that take longer than "
        "decode_slow_after_s; the others are fast lanes.",
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
    metrics_host: str = Field(
        "0.0.0.0", description="Address of the Prometheus metrics server (it serves /metrics only)."
    )
    metrics_port: int = Field(
        9464,
        ge=-1,
        le=65535,
        description="Port of the Prometheus metrics server; -1 turns it off, 0 picks one.",
    )
    report_host: str = Field(
        "0.0.0.0",
        description="Address of the experiment report server: JSON at /experiments/NAME/verdict "
        "(for rollout tools such as Argo Rollouts' web provider) and /experiments/NAME/report.",
    )
    report_port: int = Field(
        9465,
        ge=-1,
        le=65535,
        description="Port of the experiment report server; -1 turns it off, 0 picks one.",
    )
    log_format: str = Field(
        "json", description="'json' (one object per line, with request ids) or 'text'."
    )
    max_concurrent_calls: int = Field(
        1024,
        ge=0,
        description="Calls (a stream counts once) in flight at once over all callers; more are "
        "refused with RESOURCE_EXHAUSTED. 0: no limit.",
    )
    max_concurrent_calls_per_client: int = Field(
        256,
        ge=0,
        description="Calls in flight at once from one client address; more are refused with "
        "RESOURCE_EXHAUSTED, so one caller cannot take the whole gateway. 0: no limit.",
    )
    max_concurrent_streams: int = Field(
        64,
        ge=0,
        description="ClassifyStream calls open at once over all callers; more are refused with "
        "RESOURCE_EXHAUSTED. 0: no limit.",
    )
    max_streams_per_connection: int = Field(
        1024,
        ge=1,
        description="HTTP/2 streams (calls of any kind) one connection may have open at once. "
        "Keep it well above max_concurrent_calls_per_client: the server counts a stream until "
        "its call is cleaned up, so a busy client near this limit sees some calls refused "
        "(UNAVAILABLE, RST_STREAM REFUSED_STREAM) instead of the per-client cap's "
        "RESOURCE_EXHAUSTED.",
    )
    stream_idle_timeout_s: float = Field(
        60.0,
        ge=0,
        description="A ClassifyStream that sends no request for this long with no answer "
        "pending is closed with DEADLINE_EXCEEDED. 0: never.",
    )
    drain_notice_s: float = Field(
        1.0,
        ge=0,
        description="On SIGTERM, how long the gateway keeps taking calls while its health says "
        "NOT_SERVING, so probes and load balancers see it before the port closes; then the "
        "grace period starts.",
    )
    grace_period_s: float = Field(
        10.0,
        description="On SIGTERM, how long in-flight calls may finish; keep it below the pod's "
        "terminationGracePeriodSeconds.",
    )
    experiments_path: Path = Field(
        Path("serving_config/experiments.toml"),
        description="Experiments defined at start ([experiments.NAME] tables); a missing file "
        "defines none. Run-time changes through the Admin API are kept in the store.",
    )
    store_url: str = Field(
        "sqlite+aiosqlite:///run/experiments.db",
        description="SQLAlchemy URL of the experiment store: SQLite (one gateway; WAL mode) or "
        "postgresql+asyncpg://user:password@host/db (several replicas). Empty turns the store "
        "off: experiments still route, but nothing is recorded and there are no reports.",
    )
    store_timeout_s: float = Field(
        5.0,
        description="Longest any store operation may take before it counts as failed (a "
        "Feedback then answers UNAVAILABLE; the prediction log keeps its records and retries).",
    )
    store_migrate_on_start: bool = Field(
        True,
        description="Apply the store's schema migrations at start (fine for SQLite and one "
        "replica; on Kubernetes a Job runs `python -m server.store upgrade` instead).",
    )
    experiment_sync_interval_s: float = Field(
        1.0,
        description="How often the gateway re-reads experiment definitions from the store, so "
        "a change made through any replica reaches all of them.",
    )
    prediction_log_max_pending: int = Field(
        20_000,
        description="Records held in memory while the store is slow or down; beyond this new "
        "records are dropped (and counted), never a call.",
    )
    prediction_log_batch_size: int = Field(
        500, description="Most prediction records written in one store round trip."
    )
    prediction_log_flush_interval_s: float = Field(
        0.5, description="How often pending prediction records are written to the store."
    )
    prediction_retention_days: float = Field(
        0.0,
        description="Prune prediction records (and their feedback) older than this many days, "
        "checked hourly; 0 keeps them forever.",
    )
    shadow_queue_size: int = Field(
        256, description="Shadow copies waiting at most; more are dropped and counted."
    )
    shadow_queue_max_bytes: int = Field(
        64 * MIB, description="Image bytes the waiting shadow copies may hold at most."
    )
    shadow_workers: int = Field(2, description="Shadow copies classified at the same time.")
    shadow_timeout_s: float = Field(5.0, description="Deadline of each shadow copy's call.")
    feedback_lookup_wait_s: float = Field(
        1.5,
        description="How long Feedback waits for the record of its request id to reach the "
        "store (another replica may still hold it) before answering NOT_FOUND.",
    )
    report_cache_s: float = Field(
        1.0,
        description="A report is recomputed from the store at most this often per experiment "
        "(rollout tools poll it).",
    )
    tls_cert_file: Path | None = Field(
        None,
        description="PEM certificate (chain) of the gateway's port; with tls_key_file it turns "
        "TLS on. Read again when the file changes (certificate rotation without a restart).",
    )
    tls_key_file: Path | None = Field(
        None, description="PEM private key of tls_cert_file; read again when it changes."
    )
    tls_client_ca_file: Path | None = Field(
        None,
        description="With TLS on: the CA that signs clients' certificates; set, every client "
        "must present one (mutual TLS).",
    )
    health_port: int = Field(
        50052,
        ge=0,
        description="With TLS on: a plaintext port that serves only grpc.health.v1, for probes "
        "that carry no TLS (kubelet). 0 picks a free port. With TLS off, health is on `port`.",
    )
    backend_tls_ca_file: Path | None = Field(
        None,
        description="Set: the backend is reached over TLS, trusting this PEM CA. Unset: "
        "plaintext (keep the backend on a private network).",
    )
    backend_tls_server_name: str = Field(
        "",
        description="With backend TLS: the name expected in the backend's certificate, when it "
        "differs from the host of backend_target.",
    )
    admin_token_file: Path | None = Field(
        None,
        description="File holding the Admin API's bearer tokens, one per line (several allow "
        "rotation). With neither this nor the environment variable set, admin calls are refused.",
    )
    admin_token_env: str = Field(
        "IMGCLF_ADMIN_TOKEN",
        description="Environment variable holding Admin API bearer tokens (comma-separated).",
    )

    @model_validator(mode="after")
    def _tls_files_come_in_pairs(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both tls_cert_file and tls_key_file, or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None

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
