"""One exported version over the test set: predictions, every statistic, latency, provenance.

`evaluate_version` runs the model; `summarise` turns probabilities into an `Evaluation` with plain
numpy, so the statistics can be checked without TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.evaluation import metrics
from training.evaluation.dataset import EvaluationData, matches_training_checksum
from training.evaluation.errors import EvaluationError
from training.evaluation.predict import (
    DEFAULT_LATENCY,
    Latency,
    LatencySettings,
    load_serving_model,
    measure_latency,
)
from training.evaluation.versions import VersionInfo, read_version
from training.provenance import hardware_summary

WORST_COUNT = 10
TOP_K = 5


@dataclass(frozen=True)
class Evaluation:
    """A version's predictions on `data` and the statistics derived from them."""

    version: VersionInfo
    class_names: tuple[str, ...]
    data: EvaluationData
    probabilities: np.ndarray
    predictions: np.ndarray
    confusion: np.ndarray
    scores: metrics.ClassScores
    roc: list[metrics.RocCurve]
    worst: np.ndarray
    """Test-set indices of the images with the lowest true-class probability, worst first."""
    latency: Latency | None
    hardware: dict[str, Any] | None = None
    """The machine the evaluation (and so the latency measurement) ran on."""
    data_matches_training: bool | None = None
    """Whether the test set's directory holds the files the training run checksummed."""

    @property
    def correct(self) -> np.ndarray:
        return np.asarray(self.predictions == self.data.labels)

    @property
    def accuracy(self) -> float:
        return metrics.accuracy(self.data.labels, self.predictions)

    @property
    def top_k_accuracy(self) -> float:
        return metrics.top_k_accuracy(self.probabilities, self.data.labels, TOP_K)

    @property
    def true_probabilities(self) -> np.ndarray:
        return metrics.true_class_probabilities(self.probabilities, self.data.labels)


def check_classes(model_classes: tuple[str, ...], data: EvaluationData) -> None:
    """The model must predict the test set's classes, in the same order."""
    if model_classes != tuple(data.class_names):
        raise EvaluationError(
            f"the model's classes {list(model_classes)} differ from the test set's "
            f"{list(data.class_names)}"
        )


def summarise(
    version: VersionInfo,
    class_names: tuple[str, ...],
    data: EvaluationData,
    probabilities: np.ndarray,
    latency: Latency | None = None,
    *,
    hardware: dict[str, Any] | None = None,
    data_matches_training: bool | None = None,
) -> Evaluation:
    """Every statistic of the report from the model's probabilities on `data`."""
    predictions = metrics.predicted_classes(probabilities)
    confusion = metrics.confusion_matrix(data.labels, predictions, len(class_names))
    return Evaluation(
        version=version,
        class_names=class_names,
        data=data,
        probabilities=probabilities,
        predictions=predictions,
        confusion=confusion,
        scores=metrics.class_scores(confusion),
        roc=metrics.one_vs_rest_roc(probabilities, data.labels),
        worst=metrics.lowest_true_class_probability(probabilities, data.labels, WORST_COUNT),
        latency=latency,
        hardware=hardware,
        data_matches_training=data_matches_training,
    )


def evaluate_version(
    path: Path, data: EvaluationData, latency: LatencySettings | None = DEFAULT_LATENCY
) -> Evaluation:
    """Loads the version at `path`, runs it over `data`, and times it (unless `latency` is None)."""
    if not len(data):
        raise EvaluationError("the test set is empty")
    version = read_version(path)
    model = load_serving_model(path)
    check_classes(model.class_names, data)
    probabilities = model.predict(data.images)
    timing = measure_latency(model, data.images, latency) if latency is not None else None
    checksum = (version.training or {}).get("dataset_sha256")
    return summarise(
        version,
        model.class_names,
        data,
        probabilities,
        timing,
        hardware=hardware_summary(),
        data_matches_training=matches_training_checksum(Path(data.source), checksum),
    )
