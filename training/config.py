"""What one training run is: `TrainConfig`, its `--quick` defaults, and the data it reads.

Deliberately free of TensorFlow, so the command line can check arguments and data (and fail with
a one-line message) before paying for the TensorFlow import.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from training.data import TRAIN_FILES, Cifar10, load_cifar10, resolve_data_dir

DEFAULT_EPOCHS = 30
DEFAULT_BATCH_SIZE = 128
DEFAULT_LEARNING_RATE = 0.1
PRECISIONS = ("auto", "float32", "mixed_bfloat16")

# --quick: one training batch file, a slice of it, one epoch, no augmentation.
QUICK_TRAIN_FILES = TRAIN_FILES[:1]
QUICK_TRAIN_IMAGES = 4000
QUICK_TEST_IMAGES = 2000
DEFAULT_VALIDATION_IMAGES = 5000
QUICK_VALIDATION_IMAGES = 500


@dataclass(frozen=True)
class TrainConfig:
    """One training run. `None` fields take their defaults (or the `quick` ones) in `resolved()`."""

    model: str = "cnn"
    data_dir: Path | None = None
    model_root: Path = Path("models")
    model_name: str | None = None
    quick: bool = False
    download: bool = False
    epochs: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    seed: int = 0
    width: int | None = None
    augment: bool | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    learning_rate: float = DEFAULT_LEARNING_RATE
    precision: str = "auto"
    verbose: int = 1
    validation_images: int | None = None
    run_dir: Path | None = None

    def resolved(self) -> TrainConfig:
        """A copy with every `None` default filled in, applying `quick`."""
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        return dataclasses.replace(
            self,
            model_name=self.model_name or self.model,
            epochs=self.epochs or (1 if self.quick else DEFAULT_EPOCHS),
            augment=(not self.quick) if self.augment is None else self.augment,
            train_limit=self.train_limit or (QUICK_TRAIN_IMAGES if self.quick else None),
            test_limit=self.test_limit or (QUICK_TEST_IMAGES if self.quick else None),
            validation_images=(
                self.validation_images
                if self.validation_images is not None
                else (QUICK_VALIDATION_IMAGES if self.quick else DEFAULT_VALIDATION_IMAGES)
            ),
        )


def load_run_data(config: TrainConfig) -> Cifar10:
    """Finds (downloading if allowed) and reads the run's data, cut to its slices."""
    config = config.resolved()
    data_dir = resolve_data_dir(config.data_dir, allow_download=config.download)
    data = load_cifar10(data_dir, train_files=QUICK_TRAIN_FILES if config.quick else TRAIN_FILES)
    return dataclasses.replace(
        data,
        x_train=data.x_train[: config.train_limit],
        y_train=data.y_train[: config.train_limit],
        x_test=data.x_test[: config.test_limit],
        y_test=data.y_test[: config.test_limit],
    )
