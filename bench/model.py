"""The model under test: the newest published version of a model, or else an untrained CNN.

The trained CNN (`python -m training train --model cnn` publishes it under `models/cnn/<version>/`)
is what the benchmark is about. When none is published yet, a real but untrained CNN from
`training.models.build_model("cnn", ...)` is published into the benchmark's scratch directory
instead (never into the project's model root): it costs the same to run, only its answers are
meaningless. Either way the model host is told to load exactly that one version.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tensorflow_serving.config.model_server_config_pb2 import ModelServerConfig

from bench.manifest import BenchModel
from common.serving_contract import TRAINING_RECORD_FILE
from server import models_config
from training.export import existing_versions, publish
from training.models import build_model
from training.models.cnn import CIFAR10_MEAN, CIFAR10_STD
from training.warmup import write_warmup_file


def _test_accuracy(version_dir: Path) -> float | None:
    record = version_dir / TRAINING_RECORD_FILE
    try:
        return float(json.loads(record.read_text())["metrics"]["test_accuracy"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def _publish_untrained(
    scratch: Path, name: str, class_names: tuple[str, ...], images: np.ndarray
) -> Path:
    model = build_model("cnn", len(class_names), mean=CIFAR10_MEAN, std=CIFAR10_STD)
    _, path = publish(
        model,
        class_names,
        scratch / "models",
        name,
        extra_write=lambda export_dir: write_warmup_file(export_dir, name, images[:32]),
    )
    return path


def choose_model(
    model_root: Path,
    name: str,
    scratch: Path,
    class_names: tuple[str, ...],
    images: np.ndarray,
) -> BenchModel:
    """The newest version of `name` under `model_root`, else an untrained CNN in `scratch`;
    writes a models.config in `scratch` that serves exactly that version."""
    versions = existing_versions(Path(model_root) / name)
    if versions:
        path, trained = Path(model_root).resolve() / name / str(versions[-1]), True
    else:
        path, trained = _publish_untrained(scratch, name, class_names, images), False
    version = int(path.name)
    config = scratch / "models.config"
    served = ModelServerConfig()
    entry = served.model_config_list.config.add(
        name=name, base_path=str(path.parent), model_platform="tensorflow"
    )
    models_config.set_specific_versions(entry, [version])
    models_config.write(config, served)
    return BenchModel(
        name=name,
        version=version,
        path=str(path),
        trained=trained,
        test_accuracy=_test_accuracy(path) if trained else None,
        models_config=str(config),
    )
