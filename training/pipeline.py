"""tf.data input pipelines for training and evaluation on in-memory uint8 image arrays.

Training batches are shuffled and, optionally, augmented with the standard CIFAR recipe (random
translation by up to 4 pixels over reflect padding, and random horizontal flips), vectorised per
batch. Augmentation uses stateless random ops whose seeds come from a stream seeded by the run's
seed, so a run is reproducible.
Labels come out one-hot so the loss can smooth them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

PAD = 4
Example = tuple[tf.Tensor, tf.Tensor]


def _augment_batch(batch: Example, seed: tf.Tensor) -> Example:
    """Random translation by up to PAD pixels (reflect padding) and random horizontal flip,
    drawn independently for every image of the batch, with two gathers instead of a per-image map.
    """
    images, labels = batch
    size = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]], mode="REFLECT")
    offsets = tf.random.stateless_uniform(
        [2, size, 1], seed=seed, minval=0, maxval=2 * PAD + 1, dtype=tf.int32
    )
    rows = offsets[0] + tf.range(height)[None, :]
    cols = offsets[1] + tf.range(width)[None, :]
    shifted = tf.gather(padded, rows, axis=1, batch_dims=1)
    shifted = tf.gather(shifted, cols, axis=2, batch_dims=1)
    flip = tf.random.stateless_uniform([size, 1, 1, 1], seed=seed[::-1]) < 0.5
    return tf.where(flip, tf.reverse(shifted, axis=[2]), shifted), labels


def _to_model_inputs(num_classes: int) -> Callable[[tf.Tensor, tf.Tensor], Example]:
    def convert(images: tf.Tensor, labels: tf.Tensor) -> Example:
        return tf.cast(images, tf.float32), tf.one_hot(labels, num_classes, dtype=tf.float32)

    return convert


def train_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    num_classes: int,
    batch_size: int,
    seed: int,
    augment: bool,
) -> tf.data.Dataset:
    """Shuffled (reshuffled every epoch), optionally augmented, full batches only."""
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    if augment:
        # One stateless (2,)-shaped seed per batch, from a stream seeded by the run's seed.
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds).map(
            _augment_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    dataset = dataset.map(_to_model_inputs(num_classes), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def eval_dataset(
    images: np.ndarray, labels: np.ndarray, *, num_classes: int, batch_size: int
) -> tf.data.Dataset:
    """Every image once, in order."""
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)
    dataset = dataset.map(_to_model_inputs(num_classes), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
