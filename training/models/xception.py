"""Xception transfer learning for 32x32 images: upscaling and preprocessing inside the model.

Layout:

    input (float, 0..255, 32x32x3)
    -> upscale (bilinear resize to image_size x image_size; Xception needs at least 71)
    -> preprocess (scale to [-1, 1], Xception's own preprocessing)
    -> Xception base (keras.applications, include_top=False; blocks 1..14)
    -> global average pooling -> dropout -> dense softmax (float32)

The default image_size of 96 is a CPU-cost choice: compute grows with the square of the size, so
96 costs ~56% of 128 and ~10% of Xception's native 299, and still leaves a 3x3 map after the
base's 32x downsampling (71 leaves 3x3 too, with less detail per block).

Base weights (`weights`):
- `"none"`: random initialisation.
- `"imagenet"`: Keras' ImageNet weights, downloaded into the Keras cache on first use. Offline, a
  `WeightsError` says to fetch the file elsewhere and pass it as a path.
- a path: weights of the Xception *base* (`include_top=False`), as `base.load_weights` reads them:
  a `.weights.h5` saved by Keras 3 from such a base (any input size: the base is convolutional),
  or Keras' ImageNet file `xception_weights_tf_dim_ordering_tf_kernels_notop.h5`. Weights of a
  whole classifier (base plus head) are refused with a `WeightsError`, as is any other mismatch.

Fine-tuning works by block: `freeze_base` freezes every base layer, `unfreeze_top_blocks` makes
blocks `from_block`..14 trainable. With pretrained weights the base is always called in inference
mode, so its BatchNorm layers keep their statistics even when unfrozen (Keras' transfer-learning
guide); with random weights, unfrozen BatchNorm layers learn their statistics (frozen ones, being
non-trainable, run in inference mode either way).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import keras
from keras import layers

MIN_IMAGE_SIZE = 71
DEFAULT_IMAGE_SIZE = 96
NUM_BLOCKS = 14
DEFAULT_DROPOUT = 0.2
NO_WEIGHTS = "none"
IMAGENET = "imagenet"
BASE_NAME = "xception"
UPSCALE_LAYER = "upscale"
IMAGENET_NOTOP_FILE = "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_NOTOP_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/xception/" + IMAGENET_NOTOP_FILE
)
_BLOCK_NAME = re.compile(r"^block(\d+)_")


class WeightsError(ValueError):
    """The requested base weights can't be used; the message says why and what to do instead."""


@contextmanager
def _global_dtype_policy(policy: str | None) -> Iterator[None]:
    """Keras applications take no dtype argument: their layers follow the global policy."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy or "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _imagenet_base(input_shape: tuple[int, int, int]) -> keras.Model:
    try:
        return keras.applications.Xception(
            include_top=False, weights=IMAGENET, input_shape=input_shape
        )
    except Exception as exc:  # Keras raises a bare Exception when the download fails
        raise WeightsError(
            f"could not get the ImageNet weights for Xception ({exc}); without network access, "
            f"download {IMAGENET_NOTOP_URL} elsewhere and pass the file with --weights PATH"
        ) from exc


def _misfit(path: Path, reason: str) -> WeightsError:
    return WeightsError(
        f"weights file {path} does not fit the Xception base ({reason}); expected the weights "
        "of keras.applications.Xception(include_top=False), saved with save_weights to a "
        f".weights.h5 file, or Keras' {IMAGENET_NOTOP_FILE}"
    )


def _summary(text: object, limit: int = 300) -> str:
    """The gist of a multi-line Keras message on one line (a line ending in ':' takes the next)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()] or ["no details"]
    summary = lines[0]
    if summary.endswith(":") and len(lines) > 1:
        summary = f"{summary} {lines[1]}"
    return summary if len(summary) <= limit else summary[: limit - 3] + "..."


def _load_base_file(base: keras.Model, path: Path) -> None:
    """Loads every weight of the base from `path`, or raises `WeightsError`.

    Keras only warns when it skips parts of a file (those layers keep their random weights), so
    a warning during the load counts as a misfit too.
    """
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            base.load_weights(str(path))
        except (ValueError, OSError) as exc:
            raise _misfit(path, _summary(exc)) from exc
    if caught:
        raise _misfit(path, f"loaded only in part: {_summary(caught[0].message)}")


def build_base(image_size: int, weights: str = NO_WEIGHTS) -> keras.Model:
    """The Xception base (no top) for `image_size` square inputs, with `weights` loaded."""
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be at least {MIN_IMAGE_SIZE}, got {image_size}")
    input_shape = (image_size, image_size, 3)
    if weights == IMAGENET:
        return _imagenet_base(input_shape)
    base = keras.applications.Xception(include_top=False, weights=None, input_shape=input_shape)
    if weights != NO_WEIGHTS:
        _load_base_file(base, Path(weights))
    return base


def build_xception(
    num_classes: int = 10,
    *,
    image_size: int = DEFAULT_IMAGE_SIZE,
    weights: str = NO_WEIGHTS,
    dropout: float = DEFAULT_DROPOUT,
    input_shape: tuple[int, int, int] = (32, 32, 3),
    dtype_policy: str | None = None,
    name: str = "xception_classifier",
) -> keras.Model:
    """Builds the (uncompiled) classifier: float 0..255 pixels in, float32 probabilities out.

    `dtype_policy` (e.g. "mixed_bfloat16") applies to the base and pooling; upscaling,
    preprocessing and the dense softmax run in float32. Raises `WeightsError` when `weights`
    can't be loaded.
    """
    inputs = keras.Input(shape=input_shape, dtype="float32", name="images")
    x = layers.Resizing(
        image_size, image_size, interpolation="bilinear", dtype="float32", name=UPSCALE_LAYER
    )(inputs)
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, dtype="float32", name="preprocess")(x)
    with _global_dtype_policy(dtype_policy):
        base = build_base(image_size, weights)
    x = base(x, training=None if weights == NO_WEIGHTS else False)
    x = layers.GlobalAveragePooling2D(dtype=dtype_policy, name="pool")(x)
    x = layers.Dropout(dropout, dtype=dtype_policy, name="dropout")(x)
    outputs = layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="probabilities"
    )(x)
    return keras.Model(inputs, outputs, name=name)


def base_of(model: keras.Model) -> keras.Model:
    """The Xception base inside a model built by `build_xception`."""
    return model.get_layer(BASE_NAME)


def layer_blocks(base: keras.Model) -> list[tuple[keras.layers.Layer, int]]:
    """Every layer of the base with its block number (0 for the input layer).

    Named layers carry their block (`block13_sepconv1`); the unnamed residual convolutions and
    batch norms come right after the separable convolutions of the block they belong to.
    """
    block = 0
    pairs = []
    for layer in base.layers:
        match = _BLOCK_NAME.match(layer.name)
        if match:
            block = int(match.group(1))
        pairs.append((layer, block))
    return pairs


def freeze_base(model: keras.Model) -> None:
    """Makes the whole base non-trainable (only the head trains)."""
    base_of(model).trainable = False


def unfreeze_top_blocks(model: keras.Model, from_block: int) -> None:
    """Makes base blocks `from_block`..14 trainable and every earlier layer non-trainable."""
    if not 1 <= from_block <= NUM_BLOCKS:
        raise ValueError(f"from_block must be in 1..{NUM_BLOCKS}, got {from_block}")
    base = base_of(model)
    base.trainable = True
    for layer, block in layer_blocks(base):
        layer.trainable = block >= from_block


__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "MIN_IMAGE_SIZE",
    "NUM_BLOCKS",
    "WeightsError",
    "base_of",
    "build_base",
    "build_xception",
    "freeze_base",
    "layer_blocks",
    "unfreeze_top_blocks",
]
