"""Input pipelines (training.pipeline): batching, one-hot labels, augmentation, reproducibility."""

from __future__ import annotations

import numpy as np

from training.pipeline import eval_dataset, train_dataset

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(48, 32, 32, 3), dtype=np.uint8)
LABELS = RNG.integers(0, 10, size=48)


def _is_shift_or_flipped_shift(original: np.ndarray, augmented: np.ndarray) -> bool:
    padded = np.pad(original, ((4, 4), (4, 4), (0, 0)), mode="reflect")
    for dy in range(9):
        for dx in range(9):
            window = padded[dy : dy + 32, dx : dx + 32]
            if np.array_equal(window, augmented) or np.array_equal(window[:, ::-1], augmented):
                return True
    return False


def _one_epoch(augment: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    dataset = train_dataset(
        IMAGES, LABELS, num_classes=10, batch_size=16, seed=seed, augment=augment
    )
    batches = [(x.numpy(), y.numpy()) for x, y in dataset]
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def test_train_batches_are_float_pixels_with_one_hot_labels() -> None:
    images, labels = _one_epoch(augment=False)

    assert images.shape == (48, 32, 32, 3) and images.dtype == np.float32
    assert labels.shape == (48, 10) and (labels.sum(axis=1) == 1).all()
    # Shuffled, but every image is there exactly once, unchanged, with its own label.
    position = {image.tobytes(): index for index, image in enumerate(IMAGES)}
    order = [position[image.astype(np.uint8).tobytes()] for image in images]
    assert sorted(order) == list(range(48)) and order != list(range(48))
    np.testing.assert_array_equal(labels.argmax(axis=1), LABELS[order])


def test_augmentation_translates_and_flips_each_image_reproducibly() -> None:
    plain, _ = _one_epoch(augment=False)
    augmented, _ = _one_epoch(augment=True)
    again, _ = _one_epoch(augment=True)

    np.testing.assert_array_equal(augmented, again)
    # Same seed, same shuffle: position i holds the same source image in both epochs.
    changed = 0
    for original, result in zip(plain.astype(np.uint8), augmented.astype(np.uint8), strict=True):
        assert _is_shift_or_flipped_shift(original, result)
        changed += not np.array_equal(original, result)
    assert changed > 40


def test_eval_dataset_keeps_order_and_the_last_partial_batch() -> None:
    batches = list(eval_dataset(IMAGES[:20], LABELS[:20], num_classes=10, batch_size=8))

    assert [len(x) for x, _ in batches] == [8, 8, 4]
    np.testing.assert_array_equal(np.concatenate([x.numpy() for x, _ in batches]), IMAGES[:20])
