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
