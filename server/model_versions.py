"""Safe changes to what the backend serves: load a version, move a label, retire a version.

They follow TF Serving's rules: a label may only name a version that is loaded, and a config
reload (`ModelService.HandleReloadConfigRequest`) replaces the whole config. So every change is
made to the whole `models.config`, pushed to the backend, and written to the file the backend
polls (atomically, keeping its comments), so the two never disagree. Versions are named one by
one with a `specific` version policy: a version that is published on disk is not served until it
is added here, and a version a label points at is never retired, so publishing a version, good
or broken, can never take away one that serves a label.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
)
from tensorflow_serving.config.model_server_config_pb2 import ModelConfig, ModelServerConfig

from common.token_file import TokenFileError, read_token_file
from server import models_config

AVAILABLE = "AVAILABLE"
_STATE_NAMES = {
    get_model_status_pb2.ModelVersionStatus.State.Value(name): name
    for name in ("UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END")
}
POLL_S = 0.2


class VersionError(Exception):
    """The change cannot be made; the message says why."""


class LoadFailed(VersionError):
    """The backend could not load the version (its error message is in the text)."""


@dataclass(frozen=True)
class VersionState:
    state: str
    error: str = ""


class BackendControl:
    """The backend's ModelService: version states and config reloads."""

    def __init__(
        self, target: str, *, timeout_s: float = 30.0, token_file: Path | None = None
    ) -> None:
        """`token_file`: the backend's management token (a local model host started with
        `--management_token_file`), sent with config reloads only."""
        self.target = target
        self._timeout = timeout_s
        self._reload_metadata: tuple[tuple[str, str], ...] = ()
        if token_file is not None:
            try:
                token = read_token_file(token_file)
            except TokenFileError as error:
                raise VersionError(str(error)) from error
            self._reload_metadata = (("authorization", f"Bearer {token}"),)
        self._channel = grpc.insecure_channel(target)
        self._stub = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> BackendControl:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def states(self, model: str) -> dict[int, VersionState]:
        """Every version of `model` the backend knows, with its state."""
        request = get_model_status_pb2.GetModelStatusRequest(
            model_spec=model_pb2.ModelSpec(name=model)
        )
        try:
            response = self._stub.GetModelStatus(request, timeout=self._timeout)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return {}
            raise VersionError(
                f"cannot ask {self.target} about '{model}': {error.details()}"
            ) from error
        return {
            int(v.version): VersionState(
                _STATE_NAMES.get(v.state, "UNKNOWN"), v.status.error_message
            )
            for v in response.model_version_status
        }

    def available(self, model: str) -> set[int]:
        return {v for v, s in self.states(model).items() if s.state == AVAILABLE}

    def reload(self, config: ModelServerConfig) -> None:
        request = model_management_pb2.ReloadConfigRequest(config=config)
        try:
            self._stub.HandleReloadConfigRequest(
                request, timeout=self._timeout, metadata=self._reload_metadata
            )
        except grpc.RpcError as error:
            raise VersionError(
                f"{self.target} refused the new config: {error.details()}"
            ) from error

    def wait_available(self, model: str, version: int, timeout_s: float) -> None:
        """Returns once `version` is AVAILABLE; LoadFailed if it fails to load or times out."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.states(model).get(version)
            if state is not None and state.state == AVAILABLE:
                return
            if state is not None and state.state == "END" and state.error:
                raise LoadFailed(f"version {version} of '{model}' failed to load: {state.error}")
            if time.monotonic() > deadline:
                seen = state.state if state else "unknown to the backend"
                raise LoadFailed(f"version {version} of '{model}' is not AVAILABLE after "
                                 f"{timeout_s:.0f} s (state: {seen})")  # fmt: skip
            time.sleep(POLL_S)

    def wait_gone(self, model: str, version: int, timeout_s: float) -> None:
        """Returns once `version` is no longer AVAILABLE (unloaded or never there)."""
        deadline = time.monotonic() + timeout_s
        while version in self.available(model) and time.monotonic() < deadline:
            time.sleep(POLL_S)


def _apply(
    path: Path, backend: BackendControl, change: ModelServerConfig, header: list[str]
) -> None:
    backend.reload(change)
    models_config.write(path, change, header)


def _served(model: ModelConfig, backend: BackendControl) -> list[int]:
    """The versions the model's policy names; for a non-`specific` policy, those loaded now."""
    listed = models_config.specific_versions(model)
    return listed if listed is not None else sorted(backend.available(model.name))


def load_version(
    path: Path, backend: BackendControl, model: str, version: int, *, timeout_s: float = 300.0
) -> None:
    """Adds `version` to the versions the model serves and waits until it is AVAILABLE.

    If it fails to load, it is taken out again and LoadFailed says why; nothing else changes.
    """
    header, config = models_config.read(path)
    entry = _entry(config, model, path)
    before = _served(entry, backend)
    if version not in before:
        models_config.set_specific_versions(entry, [*before, version])
        _apply(path, backend, config, header)
    try:
        backend.wait_available(model, version, timeout_s)
    except LoadFailed:
        retire_version(path, backend, model, version)
        raise


def set_label(path: Path, backend: BackendControl, model: str, label: str, version: int) -> None:
    """Points `label` at `version`, which must be AVAILABLE (TF Serving refuses it otherwise)."""
    header, config = models_config.read(path)
    entry = _entry(config, model, path)
    loaded = backend.available(model)
    if version not in loaded:
        raise VersionError(
            f"version {version} of '{model}' is not AVAILABLE on {backend.target} "
            f"(available: {sorted(loaded) or 'none'}); load it first"
        )
    if entry.version_labels.get(label) == version:
        return
    entry.version_labels[label] = version
    _apply(path, backend, config, header)


def retire_version(path: Path, backend: BackendControl, model: str, version: int) -> bool:
    """Stops serving `version` unless a label points at it; True when it was retired."""
    header, config = models_config.read(path)
    entry = _entry(config, model, path)
    if version in entry.version_labels.values():
        return False
    served = _served(entry, backend)
    if version not in served and models_config.specific_versions(entry) is not None:
        return True
    models_config.set_specific_versions(entry, [v for v in served if v != version])
    _apply(path, backend, config, header)
    return True


def labels(path: Path, model: str) -> dict[str, int]:
    _, config = models_config.read(path)
    return dict(_entry(config, model, path).version_labels)


def _entry(config: ModelServerConfig, model: str, path: Path) -> ModelConfig:
    try:
        return models_config.entry(config, model)
    except KeyError as error:
        raise VersionError(f"{path}: {error.args[0]}") from error


def add_backend_token_argument(parser: argparse.ArgumentParser) -> None:
    """`--backend-token-file`, for the command lines that reconfigure the backend."""
    parser.add_argument(
        "--backend-token-file",
        type=Path,
        default=os.environ.get("IMGCLF_BACKEND_TOKEN_FILE") or None,
        help="the backend's management token, for a local model host started with "
        "--management_token_file (default $IMGCLF_BACKEND_TOKEN_FILE)",
    )
