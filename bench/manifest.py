"""What `bench.prepare` hands to the rest of the run, as typed JSON in the scratch directory:
the model under test, the image set, the files of request bodies and the machine."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class BenchModel:
    name: str
    version: int
    path: str
    trained: bool
    test_accuracy: float | None
    models_config: str

    def describe(self) -> str:
        if not self.trained:
            return f"{self.name} v{self.version}: untrained CNN (no trained version published)"
        accuracy = "" if self.test_accuracy is None else f", test accuracy {self.test_accuracy:.2%}"
        return f"{self.name} v{self.version}: trained CNN from {self.path}{accuracy}"


@dataclass(frozen=True)
class Blobs:
    """Files of request bodies (`bench.blobs`), one per kind of request."""

    classify: str
    classify_paired: str
    """By model name and through the experiment, alternating (bench.requests.interleaved)."""
    predict: str
    flask: str
    noop_response: str


@dataclass(frozen=True)
class Manifest:
    model: BenchModel
    input_size: tuple[int, int]
    images: str
    pixels: str
    blobs: Blobs
    experiments_file: str
    classify_method: str
    predict_method: str
    machine: dict[str, Any]

    def save(self, workdir: Path) -> None:
        (workdir / MANIFEST_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, workdir: Path) -> Manifest:
        raw = json.loads((workdir / MANIFEST_FILE).read_text())
        return cls(
            **{
                **raw,
                "model": BenchModel(**raw["model"]),
                "blobs": Blobs(**raw["blobs"]),
                "input_size": tuple(raw["input_size"]),
            }
        )
