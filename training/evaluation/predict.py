"""Runs an exported SavedModel's serving signature over arrays, in batches, and times it.

The model is called through its `serving_default` concrete function (a traced graph), as TF
Serving would run it; never eagerly per image. Latency is measured the same way for every model:
single-image calls (median and 90th percentile) and full batches (images per second), each after
a few warm-up calls, on the caller's images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from common.serving_contract import (
    CLASS_NAMES_KEY,
    INPUT_KEY,
    INPUT_SIZE_KEY,
    METADATA_SIGNATURE,
    OUTPUT_KEY,
    SERVING_SIGNATURE,
)
from training.evaluation.errors import EvaluationError
from training.evaluation.versions import check_version_dir

DEFAULT_BATCH_SIZE = 256


@dataclass(frozen=True)
class ServingModel:
    """A loaded version: its serving function, class names and input size (height, width, 3)."""

    path: Path
    class_names: tuple[str, ...]
    input_size: tuple[int, int, int]
    loaded: Any
    """The object `tf.saved_model.load` returned; it owns the variables `serve` reads."""
    serve: Any

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Probabilities `[N, classes]` for one batch of uint8 images."""
        outputs = self.serve(**{INPUT_KEY: tf.constant(images, dtype=tf.uint8)})
        return np.asarray(outputs[OUTPUT_KEY].numpy(), dtype=np.float32)

    def predict(self, images: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Probabilities for every image, computed `batch_size` images at a time."""
        self.check_images(images)
        batches = [self(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        return np.concatenate(batches) if batches else np.zeros((0, len(self.class_names)))

    def check_images(self, images: np.ndarray) -> None:
        if tuple(images.shape[1:]) != self.input_size:
            raise EvaluationError(
                f"{self.path} takes images of shape {list(self.input_size)}, "
                f"the test set has {list(images.shape[1:])}"
            )


def load_serving_model(path: Path) -> ServingModel:
    """Loads an exported version and reads its `metadata` signature."""
    path = check_version_dir(path)
    loaded = tf.saved_model.load(str(path))
    missing = {SERVING_SIGNATURE, METADATA_SIGNATURE} - set(loaded.signatures)
    if missing:
        raise EvaluationError(
            f"{path} lacks the signature(s) {', '.join(sorted(missing))} of the serving contract"
        )
    metadata = loaded.signatures[METADATA_SIGNATURE]()
    names = tuple(n.decode("utf-8") for n in metadata[CLASS_NAMES_KEY].numpy())
    height, width, channels = (int(v) for v in metadata[INPUT_SIZE_KEY].numpy())
    return ServingModel(
        path=path,
        class_names=names,
        input_size=(height, width, channels),
        loaded=loaded,
        serve=loaded.signatures[SERVING_SIGNATURE],
    )


@dataclass(frozen=True)
class LatencySettings:
    """How many timed calls to make at batch size 1 and at `batch_size`, after warm-up calls."""

    single_runs: int = 100
    batch_runs: int = 10
    batch_size: int = DEFAULT_BATCH_SIZE
    warmup_runs: int = 3


DEFAULT_LATENCY = LatencySettings()


@dataclass(frozen=True)
class Latency:
    """Wall-clock cost of the serving function, including copying the result out."""

    single_ms_p50: float
    single_ms_p90: float
    single_ms_mean: float
    single_runs: int
    batch_size: int
    batch_ms_p50: float
    batch_images_per_second: float
    batch_runs: int


def _call_seconds(model: ServingModel, images: np.ndarray, runs: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        model(images)
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        model(images)
        seconds.append(time.perf_counter() - started)
    return np.asarray(seconds)


def measure_latency(
    model: ServingModel, images: np.ndarray, settings: LatencySettings = DEFAULT_LATENCY
) -> Latency:
    """Times single-image calls and full-batch calls (images repeated up to the batch size)."""
    if not len(images):
        raise EvaluationError("cannot time a model on an empty test set")
    model.check_images(images)
    batch = np.resize(images, (settings.batch_size, *images.shape[1:]))
    single = _call_seconds(model, images[:1], settings.single_runs, settings.warmup_runs) * 1e3
    batched = _call_seconds(model, batch, settings.batch_runs, settings.warmup_runs)
    batch_median = float(np.median(batched))
    return Latency(
        single_ms_p50=float(np.median(single)),
        single_ms_p90=float(np.percentile(single, 90)),
        single_ms_mean=float(np.mean(single)),
        single_runs=settings.single_runs,
        batch_size=settings.batch_size,
        batch_ms_p50=batch_median * 1e3,
        batch_images_per_second=settings.batch_size / batch_median,
        batch_runs=settings.batch_runs,
    )
