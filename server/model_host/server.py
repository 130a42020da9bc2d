"""`create_server`: the local model host, loaded and listening; `ModelHost.stop` ends it.

Startup follows `tensorflow_model_server`: the config is applied (labels validated, every
configured model's versions loaded) before the port opens, and a config that fails there is a
startup error. Then the file-system poller (every `file_system_poll_wait_seconds`) and, when
asked for, the config-file poller start.

Two local-host extensions limit the host's reach: it binds to loopback (`127.0.0.1`) unless given
another `address` (TF Serving listens on every interface), and HandleReloadConfigRequest goes
through `management.ManagementInterceptor` (local callers only, a bearer token, or off).

The gRPC server is the synchronous one with a thread pool: a Predict spends most of its time in
TensorFlow, which releases the GIL, and loads/unloads run on the poller thread, so plain threads
are the simplest correct model.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from common.token_file import TokenFileError, read_token_file
from server.model_host import errors
from server.model_host.config import ModelServerConfig, read_config_file, single_model_config
from server.model_host.core import ModelHostCore
from server.model_host.management import ManagementInterceptor, ManagementPolicy
from server.model_host.options import HostOptions
from server.model_host.pollers import Poller, config_file_task
from server.model_host.servicers import ModelServicer, PredictionServicer

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The host could not start: bad config, a model that failed to load, a busy port."""


class ModelHost:
    """A running host: its gRPC server, core and pollers."""

    def __init__(
        self, server: grpc.Server, core: ModelHostCore, pollers: list[Poller], port: int
    ) -> None:
        self._server = server
        self.core = core
        self._pollers = pollers
        self.port = port

    def stop(self, grace: float | None) -> threading.Event:
        """Stops polling, then the server: RPCs in flight get `grace` seconds to finish (None:
        none). The returned event is set once the server has stopped."""
        self.core.close()
        for poller in self._pollers:
            poller.stop(timeout=grace if grace is not None else 1.0)
        log.info("model host stopping", extra={"grace_s": grace})
        return self._server.stop(grace)

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Blocks until the server stops; False if `timeout` passed first."""
        return bool(self._server.wait_for_termination(timeout))


def create_server(
    config_path: Path | None = None,
    *,
    port: int = 0,
    address: str = "127.0.0.1",
    model_name: str = "default",
    model_base_path: str | None = None,
    options: HostOptions | None = None,
    file_system_poll_wait_seconds: float | None = None,
    model_config_file_poll_wait_seconds: float | None = None,
    allow_version_labels_for_unavailable_models: bool | None = None,
    max_num_load_retries: int | None = None,
    load_retry_interval_micros: int | None = None,
) -> tuple[ModelHost, int]:
    """Starts a host serving `config_path` (or else the single model `model_name` at
    `model_base_path`) on `address:port` (0 picks a free port); returns it and the bound port.
    The default address is loopback only; "[::]" or "0.0.0.0" listen on every interface.

    `options` holds every setting (TF Serving's defaults when omitted); the keyword arguments
    after it override the ones tests and tools change most. Raises StartupError.
    """
    overrides: dict[str, Any] = {
        "file_system_poll_wait_seconds": file_system_poll_wait_seconds,
        "model_config_file_poll_wait_seconds": model_config_file_poll_wait_seconds,
        "allow_version_labels_for_unavailable_models": allow_version_labels_for_unavailable_models,
        "max_num_load_retries": max_num_load_retries,
        "load_retry_interval_micros": load_retry_interval_micros,
    }
    options = dataclasses.replace(
        options or HostOptions(), **{k: v for k, v in overrides.items() if v is not None}
    )
    policy = _management_policy(options)
    core = ModelHostCore(options)
    try:
        core.reload_config(_initial_config(config_path, model_name, model_base_path))
    except errors.ServingError as exc:
        core.close()
        raise StartupError(exc.status_string()) from exc

    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=options.grpc_max_threads, thread_name_prefix="model-host-rpc"
        ),
        interceptors=[ManagementInterceptor(policy)],
        options=list(_channel_arguments(options).items()),
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(core), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core), server)
    try:
        bound = server.add_insecure_port(f"{address}:{port}")
    except RuntimeError as exc:
        core.close()
        raise StartupError(f"cannot listen on {address}:{port}: {exc}") from exc
    server.start()

    pollers = _pollers(core, options, config_path)
    for poller in pollers:
        poller.start()
    log.info("Running gRPC ModelServer at %s:%d ...", address, bound, extra={"port": bound})
    return ModelHost(server, core, pollers, bound), bound


def _management_policy(options: HostOptions) -> ManagementPolicy:
    token = None
    if options.management_token_file is not None:
        try:
            token = read_token_file(options.management_token_file)
        except TokenFileError as exc:
            raise StartupError(str(exc)) from exc
    if not options.enable_model_management:
        log.info("HandleReloadConfigRequest is turned off")
    elif token is None:
        log.info("HandleReloadConfigRequest is accepted from this machine only, without a token")
    else:
        log.info("HandleReloadConfigRequest needs the bearer token of --management_token_file")
    return ManagementPolicy(enabled=options.enable_model_management, token=token)


def _channel_arguments(options: HostOptions) -> dict[str, int | str]:
    arguments: dict[str, int | str] = {
        "grpc.max_receive_message_length": options.max_receive_message_length,
        "grpc.max_send_message_length": options.max_send_message_length,
    }
    arguments.update(options.grpc_channel_arguments)
    return arguments


def _initial_config(
    config_path: Path | None, model_name: str, model_base_path: str | None
) -> ModelServerConfig:
    if config_path is not None:
        return read_config_file(config_path)
    if model_base_path:
        return single_model_config(model_name, model_base_path)
    raise errors.ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "Both server_options.model_base_path and server_options.model_config_file are empty!",
    )


def _pollers(core: ModelHostCore, options: HostOptions, config_path: Path | None) -> list[Poller]:
    pollers = []
    if options.file_system_poll_wait_seconds > 0:
        pollers.append(
            Poller(
                "model-host-poll-fs",
                core.poll_file_system,
                options.file_system_poll_wait_seconds,
            )
        )
    if config_path is not None and options.model_config_file_poll_wait_seconds > 0:
        pollers.append(
            Poller(
                "model-host-poll-config",
                config_file_task(core, config_path),
                options.model_config_file_poll_wait_seconds,
            )
        )
    return pollers
