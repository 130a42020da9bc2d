"""Reads TF Serving's `models.config` for what the API does not expose: model names and labels.

The file is the same one the backend serves from (a ConfigMap in Kubernetes). It is re-read when
its modification time changes, so a moved label shows up in ListModels without a restart.
Parsing is `server.models_config`'s, the one reader of that file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from server import models_config
from server.models_config import ConfiguredModel

log = logging.getLogger(__name__)


def parse_models_config(text: str) -> list[ConfiguredModel]:
    """The models of a text-format ModelServerConfig, in file order."""
    return models_config.models(models_config.parse(text))


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
        except (OSError, models_config.ParseError) as error:
            log.warning("cannot read models config %s: %s", self._path, error)
        return self._models
