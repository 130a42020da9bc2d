"""Exports a Keras classifier as a versioned SavedModel with the stack's serving contract.

The contract, shared by every model the stack serves:

- signature `serving_default`: input `images`, uint8 `[batch, height, width, 3]` at the model's
  native size; output `probabilities`, float32 `[batch, classes]`. Normalisation and any upscaling
  happen inside the model, so the gateway only decodes and resizes.
- signature `metadata`: no inputs; outputs `class_names` (string `[classes]`) and `input_size`
  (int32 `[3]`: height, width, channels). Readable through TF Serving's Predict API.

Publishing is atomic: the SavedModel is written under a hidden temporary name inside
`<model_root>/<model>/` and renamed to the next free integer version, so a poller never sees a
half-written version.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from common.serving_contract import (
    CLASS_NAMES_KEY,
    INPUT_KEY,
    INPUT_SIZE_KEY,
    METADATA_SIGNATURE,
    OUTPUT_KEY,
    SERVING_SIGNATURE,
)
from common.versions import version_numbers

TEMP_PREFIX = ".tmp-"


def existing_versions(model_dir: Path) -> list[int]:
    """The integer version directories under a model's base path, ascending."""
    return version_numbers(model_dir)


def next_version(model_dir: Path) -> int:
    versions = existing_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def write_saved_model(
    model: keras.Model,
    class_names: Sequence[str],
    export_dir: Path,
    *,
    input_size: tuple[int, int, int] | None = None,
    extra_write: Callable[[Path], Any] | None = None,
) -> None:
    """Writes `model` with the serving contract to `export_dir` (which must not exist)."""
    height, width, channels = input_size or tuple(int(d) for d in model.input_shape[1:4])
    names = tf.constant(list(class_names), dtype=tf.string)
    size = tf.constant([height, width, channels], dtype=tf.int32)

    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = model(tf.cast(images, tf.float32), training=False)
        return {OUTPUT_KEY: tf.cast(probabilities, tf.float32)}

    def metadata() -> dict[str, tf.Tensor]:
        return {CLASS_NAMES_KEY: tf.identity(names), INPUT_SIZE_KEY: tf.identity(size)}

    archive.add_endpoint(
        SERVING_SIGNATURE,
        serve,
        input_signature=[tf.TensorSpec([None, height, width, channels], tf.uint8, name=INPUT_KEY)],
    )
    archive.add_endpoint(METADATA_SIGNATURE, metadata, input_signature=[])
    archive.write_out(str(export_dir), verbose=False)
    if extra_write is not None:
        extra_write(export_dir)


def publish(
    model: keras.Model,
    class_names: Sequence[str],
    model_root: Path,
    model_name: str,
    *,
    input_size: tuple[int, int, int] | None = None,
    extra_write: Callable[[Path], Any] | None = None,
) -> tuple[int, Path]:
    """Publishes `model` as the next version of `model_name`; returns (version, path).

    `extra_write(path)` may add files (assets.extra, metadata) before the version becomes visible.
    """
    model_dir = Path(model_root) / model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    temp_dir = model_dir / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    try:
        write_saved_model(
            model, class_names, temp_dir, input_size=input_size, extra_write=extra_write
        )
        while True:
            version = next_version(model_dir)
            final_dir = model_dir / str(version)
            try:
                # os.rename onto a missing name is atomic; a racing publisher takes the next number.
                os.rename(temp_dir, final_dir)
                return version, final_dir
            except OSError:
                if not final_dir.exists():
                    raise
    finally:
        if temp_dir.exists():
            shutil.rmtree(temp_dir, ignore_errors=True)
