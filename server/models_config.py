"""The one module that reads, renders and writes TF Serving's `models.config` (text format).

The gateway reads model names and labels from it, the model host the whole config, the label and
rollout tools change labels and version policies in it, and `make serve` renders a copy re-rooted
under a local model directory. Writes are atomic (a temporary file, then a rename), so a backend
that polls the file never reads half of it, and they keep the file's leading comment block.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config.model_server_config_pb2 import ModelConfig, ModelServerConfig

ParseError = text_format.ParseError


@dataclass(frozen=True)
class ConfiguredModel:
    name: str
    labels: dict[str, int]


def parse(text: str) -> ModelServerConfig:
    """A text-format ModelServerConfig; `ParseError` when it is not one."""
    return text_format.Parse(text, ModelServerConfig())


def render(config: ModelServerConfig) -> str:
    return str(text_format.MessageToString(config))


def read(path: Path) -> tuple[list[str], ModelServerConfig]:
    """The file's leading comment lines and its parsed config."""
    text = path.read_text()
    header: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    return header, parse(text)


def write(path: Path, config: ModelServerConfig, header: Iterable[str] = ()) -> None:
    """Writes `config` (after `header`'s comment lines) to `path` atomically."""
    lines = list(header)
    text = "\n".join(lines) + ("\n" if lines else "") + render(config)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


def models(config: ModelServerConfig) -> list[ConfiguredModel]:
    """The configured models with their labels, in file order."""
    return [
        ConfiguredModel(c.name, dict(sorted(c.version_labels.items())))
        for c in config.model_config_list.config
    ]


def entry(config: ModelServerConfig, name: str) -> ModelConfig:
    """The config of model `name`; KeyError naming the models there are."""
    for model in config.model_config_list.config:
        if model.name == name:
            return model
    names = ", ".join(c.name for c in config.model_config_list.config) or "none"
    raise KeyError(f"model '{name}' is not configured (models: {names})")


def specific_versions(model: ModelConfig) -> list[int] | None:
    """The versions a `specific` policy lists; None for any other policy."""
    policy = model.model_version_policy
    if policy.WhichOneof("policy_choice") != "specific":
        return None
    return sorted(int(v) for v in policy.specific.versions)


def set_specific_versions(model: ModelConfig, versions: Iterable[int]) -> None:
    """Makes the model serve exactly `versions` (a `specific` version policy)."""
    chosen = sorted(set(versions))
    model.model_version_policy.ClearField("policy_choice")
    model.model_version_policy.specific.SetInParent()
    model.model_version_policy.specific.versions.extend(chosen)


def rerooted(source: Path, target: Path, model_root: Path, header: str) -> None:
    """Writes `source` to `target` with every base path moved under `model_root`."""
    _, config = read(source)
    for model in config.model_config_list.config:
        model.base_path = str(model_root / Path(model.base_path).name)
    target.parent.mkdir(parents=True, exist_ok=True)
    write(target, config, [f"# {header}"])
