"""The labelled images a model is evaluated on: the CIFAR-10 test batch, or its first N images.

No TensorFlow import, so a bad `--data-dir` is reported before TensorFlow loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.config import QUICK_TRAIN_FILES
from training.data import (
    META_FILE,
    TEST_FILE,
    TRAIN_FILES,
    files_checksum,
    load_cifar10,
    resolve_data_dir,
)


@dataclass(frozen=True)
class EvaluationData:
    """uint8 images `[N, H, W, 3]`, int64 labels `[N]`, class names, and where they came from."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: str
    sha256: str
    """Checksum of the test batch and metadata files read (see `training.data.files_checksum`)."""

    def __len__(self) -> int:
        return len(self.labels)


def load_test_set(data_dir: Path | None = None, limit: int | None = None) -> EvaluationData:
    """The official test batch from `data_dir` (or the usual places), cut to `limit` images."""
    directory = resolve_data_dir(data_dir)
    data = load_cifar10(directory, train_files=())
    return EvaluationData(
        images=data.x_test[:limit],
        labels=data.y_test[:limit],
        class_names=data.class_names,
        source=str(directory),
        sha256=data.sha256,
    )


def matches_training_checksum(data_dir: Path, expected: str | None) -> bool | None:
    """Whether `data_dir` holds the files a training run's `dataset_sha256` was taken over.

    Training checksums its training batches (all of them, or the `--quick` subset) plus the
    test batch and metadata; None when there is nothing to compare (no checksum, files missing).
    """
    if not expected:
        return None
    compared = False
    for train_files in (TRAIN_FILES, QUICK_TRAIN_FILES):
        names = (*train_files, TEST_FILE, META_FILE)
        if not all((Path(data_dir) / name).is_file() for name in names):
            continue
        compared = True
        if files_checksum(Path(data_dir), names) == expected:
            return True
    return False if compared else None
