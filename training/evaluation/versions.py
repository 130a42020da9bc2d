"""Exported version directories: find them, check them, read what training left beside the model.

`training.train` writes `assets.extra/training.json` (config, metrics, precision, hardware,
dataset checksum, git commit) and copies the run's `assets.extra/history.csv` (one row per epoch,
Keras' CSVLogger, `NA` for missing values). Both are optional here: a version published by other
means still gets a report that says what is missing. No TensorFlow import.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.serving_contract import HISTORY_FILE, TRAINING_RECORD_FILE
from common.versions import version_numbers
from training.evaluation.errors import EvaluationError

TRAINING_FILE = TRAINING_RECORD_FILE
SAVED_MODEL_FILE = "saved_model.pb"


def resolve_version_dir(model_root: Path, model: str, version: int | None) -> Path:
    """`<model_root>/<model>/<version>`, the newest version when `version` is None; checked."""
    model_dir = Path(model_root) / model
    present = version_numbers(model_dir)
    if version is None:
        if not present:
            raise EvaluationError(f"no exported versions of {model!r} in {model_dir}")
        version = present[-1]
    path = model_dir / str(version)
    if not path.is_dir():
        listed = ", ".join(map(str, present)) or "none"
        raise EvaluationError(f"model version directory not found: {path} (versions: {listed})")
    return check_version_dir(path)


def check_version_dir(path: Path) -> Path:
    """`path` if it holds a SavedModel; otherwise an `EvaluationError` saying what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise EvaluationError(f"model version directory not found: {path}")
    if not (path / SAVED_MODEL_FILE).is_file():
        raise EvaluationError(f"{path} holds no {SAVED_MODEL_FILE}: not an exported model version")
    return path


@dataclass(frozen=True)
class History:
    """Per-epoch training history: each CSV column as floats (NaN where the run wrote `NA`)."""

    columns: dict[str, list[float]]

    @property
    def epochs(self) -> int:
        return len(next(iter(self.columns.values()), []))

    def epoch_numbers(self) -> list[int]:
        """1-based epoch numbers, from the CSV's 0-based `epoch` column when it has one."""
        recorded = self.column("epoch")
        if recorded is None or any(math.isnan(v) for v in recorded):
            return list(range(1, self.epochs + 1))
        return [int(v) + 1 for v in recorded]

    def phase_starts(self) -> list[tuple[int, int]]:
        """(epoch number, phase) where a multi-phase run enters each phase after the first."""
        phases = self.column("phase")
        if phases is None:
            return []
        numbers = self.epoch_numbers()
        return [
            (numbers[i], int(phases[i]))
            for i in range(1, len(phases))
            if phases[i] != phases[i - 1] and not math.isnan(phases[i])
        ]

    def column(self, name: str) -> list[float] | None:
        """A column, or None when absent or entirely NaN."""
        values = self.columns.get(name)
        if values is None or all(math.isnan(v) for v in values):
            return None
        return values


def _number(text: str | None) -> float:
    try:
        return float(text) if text is not None else math.nan
    except ValueError:
        return math.nan


def read_history(path: Path) -> History | None:
    """The history CSV at `path`, or None when it is absent or has no rows."""
    if not path.is_file():
        return None
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return None
    names = [name for name in rows[0] if name]
    return History({name: [_number(row.get(name)) for row in rows] for name in names})


def read_training_info(path: Path) -> dict[str, Any] | None:
    """The parsed `training.json` at `path`, or None when absent; unreadable JSON is an error."""
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"cannot read {path}: {exc}") from exc
    if not isinstance(content, dict):
        raise EvaluationError(f"{path} holds a {type(content).__name__}, not an object")
    return content


@dataclass(frozen=True)
class VersionInfo:
    """One exported version: where it is, its name, and its training record and history."""

    path: Path
    training: dict[str, Any] | None
    history: History | None

    @property
    def model_name(self) -> str:
        return self.path.resolve().parent.name

    @property
    def version(self) -> str:
        return self.path.resolve().name

    @property
    def label(self) -> str:
        """`<model>/<version>`, e.g. `cnn/2`."""
        return f"{self.model_name}/{self.version}"


def read_version(path: Path) -> VersionInfo:
    """Checks `path` and reads its `assets.extra` records."""
    path = check_version_dir(path)
    return VersionInfo(
        path=path,
        training=read_training_info(path / TRAINING_FILE),
        history=read_history(path / HISTORY_FILE),
    )
