"""Reading and validating `ModelServerConfig` (the text-format `models.config`), like TF Serving.

`read_config_file` parses the file the way `tensorflow_model_server --model_config_file` does;
`single_model_config` builds the config of `--model_name/--model_base_path`. `model_settings`
validates a config list (TF Serving's checks and messages, from model_servers/server_core.cc) and
turns each entry into a `ModelSettings`: resolved base path, version policy and labels.

One deliberate difference: TF Serving 2.x refuses a relative `base_path` ("Expected model cnn to
have an absolute path or URI; got base_path()=models/cnn", ValidateModelConfigList) unless it
was started with a config root directory, which `tensorflow_model_server` never sets. The local
host resolves it against the working directory instead and logs a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import grpc
from tensorflow_serving.config import model_server_config_pb2
from tensorflow_serving.config.model_server_config_pb2 import ModelConfig as ModelConfig
from tensorflow_serving.config.model_server_config_pb2 import (
    ModelServerConfig as ModelServerConfig,
)

from server import models_config
from server.model_host import errors

log = logging.getLogger(__name__)

TENSORFLOW_PLATFORM = "tensorflow"
_MODEL_TYPE_TENSORFLOW = model_server_config_pb2.TENSORFLOW


class PolicyKind(Enum):
    """The `model_version_policy` choices of FileSystemStoragePathSourceConfig."""

    LATEST = "latest"
    ALL = "all"
    SPECIFIC = "specific"


@dataclass(frozen=True)
class VersionPolicy:
    """Which of the versions found on disk a model should serve."""

    kind: PolicyKind = PolicyKind.LATEST
    num_versions: int = 1
    versions: frozenset[int] = frozenset()


@dataclass(frozen=True)
class ModelSettings:
    """One configured model, validated and with its base path resolved."""

    name: str
    base_path: Path
    policy: VersionPolicy
    labels: Mapping[str, int] = field(default_factory=dict)


def read_config_file(path: Path) -> ModelServerConfig:
    """Parses a text-format ModelServerConfig; errors are TF Serving's (server.cc)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise errors.ServingError(
            grpc.StatusCode.NOT_FOUND, f"{path}; {exc.strerror or exc}"
        ) from exc
    try:
        config = models_config.parse(text)
    except models_config.ParseError as exc:
        log.error("cannot parse %s: %s", path, exc)
        raise errors.invalid_protobuf_file(str(path)) from exc
    return config


def single_model_config(model_name: str, model_base_path: str) -> ModelServerConfig:
    """The config `--model_name/--model_base_path` stand for (server.cc BuildSingleModelConfig)."""
    config = ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = model_base_path
    model.model_platform = TENSORFLOW_PLATFORM
    return config


def platform_of(model: ModelConfig) -> str:
    """The model's platform, with the deprecated model_type (server_core.cc GetPlatform)."""
    if model.model_type != model_server_config_pb2.MODEL_TYPE_UNSPECIFIED:
        log.warning("deprecated ModelConfig.model_type used for model %s", model.name)
        if model.model_platform:
            raise errors.platform_type_and_name()
        if model.model_type != _MODEL_TYPE_TENSORFLOW:
            raise errors.platform_type_not_supported(int(model.model_type))
        return TENSORFLOW_PLATFORM
    if not model.model_platform:
        raise errors.platform_missing()
    return str(model.model_platform)


def check_no_duplicates(models: Sequence[ModelConfig]) -> None:
    """ServerCore's ValidateModelConfigList: each model name at most once."""
    seen: set[str] = set()
    for model in models:
        if model.name in seen:
            raise errors.duplicate_model(model.name)
        seen.add(model.name)


def check_no_platform_changes(old: Sequence[ModelConfig], new: Sequence[ModelConfig]) -> None:
    """ServerCore's ValidateNoModelsChangePlatforms."""
    old_platforms = {model.name: platform_of(model) for model in old}
    for model in new:
        if model.name in old_platforms:
            platform = platform_of(model)
            if platform != old_platforms[model.name]:
                raise errors.platform_changed(model.name, old_platforms[model.name], platform)


def model_settings(models: Sequence[ModelConfig], cwd: Path | None = None) -> list[ModelSettings]:
    """Validated settings for each model; raises ServingError like ServerCore would."""
    settings = []
    for model in models:
        platform = platform_of(model)
        if platform != TENSORFLOW_PLATFORM:
            raise errors.platform_unsupported(model.name, platform)
        settings.append(
            ModelSettings(
                name=model.name,
                base_path=resolve_base_path(model.name, model.base_path, cwd),
                policy=version_policy(model),
                labels={label: int(v) for label, v in sorted(model.version_labels.items())},
            )
        )
    return settings


def resolve_base_path(name: str, base_path: str, cwd: Path | None = None) -> Path:
    """An absolute base path; a relative one is taken from the working directory (see above)."""
    path = Path(base_path.removeprefix("file://"))
    if path.is_absolute():
        return path
    log.warning(
        "model %s has a relative base_path %r: resolved against the working directory here, "
        "but real TF Serving refuses relative base paths",
        name,
        base_path,
    )
    return (cwd or Path.cwd()) / path


def version_policy(model: ModelConfig) -> VersionPolicy:
    """The model's policy; no policy means `latest { num_versions: 1 }`."""
    policy = model.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return VersionPolicy(PolicyKind.ALL)
    if choice == "specific":
        return VersionPolicy(PolicyKind.SPECIFIC, versions=frozenset(policy.specific.versions))
    num_versions = policy.latest.num_versions if choice == "latest" else 1
    return VersionPolicy(PolicyKind.LATEST, num_versions=max(int(num_versions), 1))
