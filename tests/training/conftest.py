"""Fixtures for the training tests: tiny CIFAR-10 directories in the official python layout."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.cifar10_names import CIFAR10_CLASSES

CLASS_NAMES = CIFAR10_CLASSES
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))


@dataclass(frozen=True)
class FakeCifar:
    """A written fake dataset and the NHWC arrays it should load as."""

    path: Path
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


BatchWriter = Callable[[Path, np.ndarray, np.ndarray], None]


def _write_pickle(path: Path, content: object) -> None:
    # Protocol 2 with bytes keys, like the official Python 2 pickles.
    with path.open("wb") as handle:
        pickle.dump(content, handle, protocol=2)


def write_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Writes NHWC uint8 images as an official batch: rows of 1024 R, 1024 G, 1024 B values."""
    planar = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    _write_pickle(
        path,
        {
            b"batch_label": path.name.encode(),
            b"labels": [int(v) for v in labels],
            b"data": np.ascontiguousarray(planar, dtype=np.uint8),
            b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
        },
    )


def write_fake_cifar(
    path: Path, per_batch: int = 8, test_size: int = 10, seed: int = 0
) -> FakeCifar:
    """Writes a complete official-layout directory of random images into `path`."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for name in TRAIN_FILES:
        images = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, len(CLASS_NAMES), size=per_batch)
        write_batch(path / name, images, labels)
        xs.append(images)
        ys.append(labels)
    x_test = rng.integers(0, 256, size=(test_size, 32, 32, 3), dtype=np.uint8)
    y_test = rng.integers(0, len(CLASS_NAMES), size=test_size)
    write_batch(path / "test_batch", x_test, y_test)
    _write_pickle(
        path / "batches.meta",
        {
            b"num_cases_per_batch": per_batch,
            b"label_names": [n.encode() for n in CLASS_NAMES],
            b"num_vis": 3072,
        },
    )
    return FakeCifar(path, np.concatenate(xs), np.concatenate(ys), x_test, y_test)


@pytest.fixture
def fake_cifar(tmp_path: Path) -> FakeCifar:
    return write_fake_cifar(tmp_path / "cifar-10-batches-py")


@pytest.fixture
def make_fake_cifar() -> Callable[..., FakeCifar]:
    """`make_fake_cifar(path, per_batch=8, test_size=10, seed=0)` writes a complete directory."""
    return write_fake_cifar


@pytest.fixture
def write_cifar_batch() -> BatchWriter:
    """`write_cifar_batch(path, images, labels)` writes one official-format batch file."""
    return write_batch


# ---------------------------------------------------------------------------------------------
# Evaluation reports: a small test set and two published tiny models (built once per session)
# ---------------------------------------------------------------------------------------------

EVALUATION_TEST_IMAGES = 120
HISTORY_CSV = (
    "epoch,accuracy,epoch_seconds,learning_rate,loss,val_accuracy,val_loss\n"
    "0,0.30,12.5,0.05,1.9,0.35,1.8\n"
    "1,0.45,11.0,0.1,1.5,0.44,1.6\n"
    "2,0.55,10.5,0.01,1.2,NA,NA\n"
)


@dataclass(frozen=True)
class PublishedVersions:
    """`with_records` (cnn/1) has training.json and history.csv; `bare` (cnn/2) has neither."""

    model_root: Path
    data: FakeCifar
    with_records: Path
    bare: Path


def _training_record(data_dir: Path) -> dict[str, object]:
    from training.data import META_FILE, TEST_FILE, files_checksum

    checksum = files_checksum(data_dir, (*TRAIN_FILES, TEST_FILE, META_FILE))
    return {
        "config": {"model": "cnn", "epochs": 3, "batch_size": 16, "seed": 0},
        "metrics": {"test_accuracy": 0.125, "train_seconds": 34.0},
        "class_names": list(CLASS_NAMES),
        "precision": "float32",
        "hardware": {"cpu": "test CPU", "cpu_cores": 2, "gpus": [], "tensorflow": "2.21.0"},
        "run_dir": "runs/cnn/test",
        "dataset_sha256": checksum,
        "git_commit": "0123abc",
    }


def _blocky_images(rng: np.random.Generator, count: int) -> np.ndarray:
    """Four flat-coloured 16x16 quadrants plus noise: varied enough for a pooled tiny model."""
    quadrants = rng.integers(0, 256, size=(count, 2, 2, 3))
    images = np.repeat(np.repeat(quadrants, 16, axis=1), 16, axis=2)
    noise = rng.integers(-20, 21, size=images.shape)
    return np.clip(images + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def published_versions(tmp_path_factory: pytest.TempPathFactory) -> PublishedVersions:
    """cnn/1 and cnn/2 (tiny models, seeds 0 and 1) and a 120-image test set they score on.

    Half the test labels are cnn/1's own predictions, so accuracies are neither 0 nor 1.
    """
    import dataclasses
    import json

    from tests.model_factory import tiny_classifier
    from training.export import publish

    root = tmp_path_factory.mktemp("evaluation")
    rng = np.random.default_rng(3)
    first, second = tiny_classifier(0), tiny_classifier(1)
    images = _blocky_images(rng, EVALUATION_TEST_IMAGES)
    predicted = np.asarray(first(images.astype(np.float32))).argmax(axis=1)
    random_labels = rng.integers(0, len(CLASS_NAMES), size=len(images))
    labels = np.where(rng.random(len(images)) < 0.5, predicted, random_labels)
    data = write_fake_cifar(root / "cifar-10-batches-py", per_batch=2, test_size=1, seed=3)
    write_batch(data.path / "test_batch", images, labels)
    data = dataclasses.replace(data, x_test=images, y_test=labels)

    def write_records(export_dir: Path) -> None:
        extra = export_dir / "assets.extra"
        extra.mkdir(parents=True, exist_ok=True)
        (extra / "training.json").write_text(json.dumps(_training_record(data.path)))
        (extra / "history.csv").write_text(HISTORY_CSV)

    model_root = root / "models"
    _, with_records = publish(first, CLASS_NAMES, model_root, "cnn", extra_write=write_records)
    _, bare = publish(second, CLASS_NAMES, model_root, "cnn")
    return PublishedVersions(model_root, data, with_records, bare)
