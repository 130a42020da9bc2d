"""What one training run is: `TrainConfig`, its `--quick` defaults, and the data it reads.

Deliberately free of TensorFlow, so the command line can check arguments and data (and fail with
a one-line message) before paying for the TensorFlow import.

Two kinds of run: `cnn` trains in one phase for `epochs`; `xception` trains in two phases,
`phase1_epochs` with the base frozen (only the new head learns, at `phase1_learning_rate`), then
`phase2_epochs` with base blocks `fine_tune_from`..14 unfrozen at the lower
`phase2_learning_rate`; its `epochs` is their sum.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from training.data import TRAIN_FILES, Cifar10, load_cifar10, resolve_data_dir

DEFAULT_EPOCHS = 30
DEFAULT_BATCH_SIZE = 128
DEFAULT_LEARNING_RATE = 0.1
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
_Number = TypeVar("_Number", int, float)

# --quick: one training batch file, a slice of it, one epoch, no augmentation.
QUICK_TRAIN_FILES = TRAIN_FILES[:1]
QUICK_TRAIN_IMAGES = 4000
QUICK_TEST_IMAGES = 2000
DEFAULT_VALIDATION_IMAGES = 5000
QUICK_VALIDATION_IMAGES = 500

# Xception (two-phase transfer learning). The architecture limits mirror training.models.xception,
# which this module can't import (it needs TensorFlow).
XCEPTION_MIN_IMAGE_SIZE = 71
XCEPTION_BLOCKS = 14
XCEPTION_IMAGE_SIZE = 96
XCEPTION_PHASE1_EPOCHS = 3
XCEPTION_PHASE2_EPOCHS = 6
XCEPTION_FINE_TUNE_FROM = 13
XCEPTION_PHASE1_LEARNING_RATE = 0.05
XCEPTION_PHASE2_LEARNING_RATE = 0.005
# Xception trains ~10x slower than the CNN on CPUs, so its --quick slice is smaller (1+1 epochs).
QUICK_XCEPTION_TRAIN_IMAGES = 1000
QUICK_XCEPTION_TEST_IMAGES = 500
QUICK_XCEPTION_VALIDATION_IMAGES = 100
TWO_PHASE_MODELS = ("xception",)
NO_WEIGHTS = "none"
IMAGENET_WEIGHTS = "imagenet"


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
    # Two-phase (xception) runs only:
    weights: str | None = None
    """Base weights: "none" (random), "imagenet", or a path to a weights file of the base."""
    image_size: int | None = None
    """Side the 32x32 input is upscaled to inside the model (at least 71)."""
    phase1_epochs: int | None = None
    phase2_epochs: int | None = None
    fine_tune_from: int | None = None
    """First base block (1..14) unfrozen in phase 2."""
    phase1_learning_rate: float | None = None
    phase2_learning_rate: float | None = None

    @property
    def two_phase(self) -> bool:
        return self.model in TWO_PHASE_MODELS

    def resolved(self) -> TrainConfig:
        """A copy with every `None` default filled in, applying `quick`.

        Raises `ValueError` for settings that are invalid or don't apply to the model.
        """
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        config = self._resolved_two_phase() if self.two_phase else self._resolved_single_phase()
        quick_train, quick_test, quick_validation = config._quick_slices()
        return dataclasses.replace(
            config,
            model_name=self.model_name or self.model,
            augment=(not self.quick) if self.augment is None else self.augment,
            train_limit=self.train_limit or (quick_train if self.quick else None),
            test_limit=self.test_limit or (quick_test if self.quick else None),
            validation_images=(
                self.validation_images
                if self.validation_images is not None
                else (quick_validation if self.quick else DEFAULT_VALIDATION_IMAGES)
            ),
        )

    def _quick_slices(self) -> tuple[int, int, int]:
        if self.two_phase:
            return (
                QUICK_XCEPTION_TRAIN_IMAGES,
                QUICK_XCEPTION_TEST_IMAGES,
                QUICK_XCEPTION_VALIDATION_IMAGES,
            )
        return QUICK_TRAIN_IMAGES, QUICK_TEST_IMAGES, QUICK_VALIDATION_IMAGES

    def _resolved_single_phase(self) -> TrainConfig:
        two_phase_only = {
            "--weights": self.weights not in (None, NO_WEIGHTS),
            "--image-size": self.image_size is not None,
            "--phase1-epochs": self.phase1_epochs is not None,
            "--phase2-epochs": self.phase2_epochs is not None,
            "--fine-tune-from": self.fine_tune_from is not None,
            "--phase1-learning-rate": self.phase1_learning_rate is not None,
            "--phase2-learning-rate": self.phase2_learning_rate is not None,
        }
        given = [option for option, is_set in two_phase_only.items() if is_set]
        if given:
            raise ValueError(
                f"only --model {'/'.join(TWO_PHASE_MODELS)} takes {', '.join(given)} "
                f"(got --model {self.model})"
            )
        return dataclasses.replace(
            self, epochs=self.epochs or (1 if self.quick else DEFAULT_EPOCHS)
        )

    def _resolved_two_phase(self) -> TrainConfig:
        first, second = self.phase1_epochs, self.phase2_epochs
        resolved_before = first is not None and second is not None and self.epochs == first + second
        if self.epochs is not None and not resolved_before:
            raise ValueError(
                f"--model {self.model} trains in two phases: set --phase1-epochs and "
                "--phase2-epochs instead of --epochs"
            )
        if self.width is not None:
            raise ValueError(f"--width applies to the cnn model only, not to {self.model}")
        phase1, phase2 = self._phase_epochs()
        return dataclasses.replace(
            self,
            epochs=phase1 + phase2,
            phase1_epochs=phase1,
            phase2_epochs=phase2,
            weights=_checked_weights(self.weights),
            image_size=_checked_image_size(self.image_size),
            fine_tune_from=_checked_fine_tune_from(self.fine_tune_from),
            phase1_learning_rate=_checked_rate(
                self.phase1_learning_rate, XCEPTION_PHASE1_LEARNING_RATE, "--phase1-learning-rate"
            ),
            phase2_learning_rate=_checked_rate(
                self.phase2_learning_rate, XCEPTION_PHASE2_LEARNING_RATE, "--phase2-learning-rate"
            ),
        )

    def _phase_epochs(self) -> tuple[int, int]:
        phase1 = _first_set(self.phase1_epochs, 1 if self.quick else XCEPTION_PHASE1_EPOCHS)
        phase2 = _first_set(self.phase2_epochs, 1 if self.quick else XCEPTION_PHASE2_EPOCHS)
        if phase1 < 0 or phase2 < 0 or phase1 + phase2 < 1:
            raise ValueError(
                "phase epochs must be non-negative with at least one epoch in total, "
                f"got {phase1}+{phase2}"
            )
        return phase1, phase2


def _checked_weights(weights: str | None) -> str:
    weights = weights or NO_WEIGHTS
    if weights not in (NO_WEIGHTS, IMAGENET_WEIGHTS) and not Path(weights).is_file():
        raise ValueError(
            f"weights file not found: {weights} "
            f"(--weights takes {NO_WEIGHTS}, {IMAGENET_WEIGHTS} or the path of a file)"
        )
    return weights


def _checked_image_size(image_size: int | None) -> int:
    image_size = _first_set(image_size, XCEPTION_IMAGE_SIZE)
    if image_size < XCEPTION_MIN_IMAGE_SIZE:
        raise ValueError(
            f"--image-size must be at least {XCEPTION_MIN_IMAGE_SIZE} "
            f"(Xception's minimum input), got {image_size}"
        )
    return image_size


def _checked_fine_tune_from(block: int | None) -> int:
    block = _first_set(block, XCEPTION_FINE_TUNE_FROM)
    if not 1 <= block <= XCEPTION_BLOCKS:
        raise ValueError(f"--fine-tune-from must be a block in 1..{XCEPTION_BLOCKS}, got {block}")
    return block


def _checked_rate(rate: float | None, default: float, option: str) -> float:
    rate = _first_set(rate, default)
    if rate <= 0:
        raise ValueError(f"{option} must be positive, got {rate}")
    return rate


def _first_set(value: _Number | None, default: _Number) -> _Number:
    return default if value is None else value


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
