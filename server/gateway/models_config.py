"""Reads TF Serving's `models.config` for what the API does not expose: model names and labels.

The file is the same one the backend serves from (a ConfigMap in Kubernetes). It is re-read when
its modification time changes, so a moved label shows up in ListModels without a restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfiguredModel:
    name: str
    labels: dict[str, int]


def parse_models_config(text: str) -> list[ConfiguredModel]:
    """The models of a text-format ModelServerConfig, in file order."""
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    return [
        ConfiguredModel(c.name, dict(sorted(c.version_labels.items())))
        for c in config.model_config_list.config
    ]


class ModelsConfigReader:
    """The parsed config, refreshed when the file changes; the last good parse on errors."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime: float | None = None
        self._models: list[ConfiguredModel] = []

    def models(self) -> list[ConfiguredModel]:
        try:
            mtime = self._path.stat().st_mtime
            if mtime != self._mtime:
                self._models = parse_models_config(self._path.read_text())
                self._mtime = mtime
        except (OSError, text_format.ParseError) as error:
            log.warning("cannot read models config %s: %s", self._path, error)
        return self._models
