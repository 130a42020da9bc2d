"""Classification statistics in plain numpy: no TensorFlow, no scipy.

Conventions: `labels` are int class indices `[N]`, `probabilities` are `[N, classes]` rows that
sum to 1, and a ratio whose denominator is zero (precision of a class never predicted, recall of a
class absent from the test set) is 0, as in the usual macro averages. An AUC that can't be defined
(a class with no positives or no negatives) is NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# McNemar's test lives with the other shared statistics; importable from here as before.
from common.statistics import McNemar as McNemar
from common.statistics import binomial_two_sided_p as binomial_two_sided_p
from common.statistics import chi_square_1df_p as chi_square_1df_p
from common.statistics import mcnemar as mcnemar
from common.statistics import mcnemar_from_counts as mcnemar_from_counts


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def predicted_classes(probabilities: np.ndarray) -> np.ndarray:
    """The most probable class of each row (the first one on ties)."""
    return np.asarray(np.asarray(probabilities).argmax(axis=1), dtype=np.int64)


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    return float(np.mean(labels == predictions)) if labels.size else math.nan


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose true class is among the `k` most probable ones."""
    probabilities = np.asarray(probabilities)
    if not len(probabilities):
        return math.nan
    k = min(k, probabilities.shape[1])
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(labels)[:, None], axis=1)))


def true_class_probabilities(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The probability each row gives to its true class."""
    labels = np.asarray(labels)
    return np.asarray(np.asarray(probabilities)[np.arange(len(labels)), labels])


def mean_log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log probability of the true class (probabilities floored at 1e-12)."""
    true_probabilities = true_class_probabilities(probabilities, labels)
    if not true_probabilities.size:
        return math.nan
    return float(-np.mean(np.log(np.maximum(true_probabilities, 1e-12))))


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """`[true class, predicted class]` counts, int64 `[num_classes, num_classes]`."""
    flat = np.asarray(labels, dtype=np.int64) * num_classes + np.asarray(predictions)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, -1)


@dataclass(frozen=True)
class ClassScores:
    """Per-class precision, recall, F1 and support (true instances), each `[classes]`."""

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray

    def macro(self) -> dict[str, float]:
        """Unweighted means over classes."""
        return {
            "precision": float(np.mean(self.precision)),
            "recall": float(np.mean(self.recall)),
            "f1": float(np.mean(self.f1)),
        }


def class_scores(confusion: np.ndarray) -> ClassScores:
    """Precision, recall and F1 of every class from a `[true, predicted]` confusion matrix."""
    confusion = np.asarray(confusion)
    hits = np.diag(confusion)
    support = confusion.sum(axis=1)
    precision = _safe_ratio(hits, confusion.sum(axis=0))
    recall = _safe_ratio(hits, support)
    f1 = _safe_ratio(2 * precision * recall, precision + recall)
    return ClassScores(precision, recall, f1, support.astype(np.int64))


@dataclass(frozen=True)
class RocCurve:
    """One ROC curve: false and true positive rates by decreasing threshold, and its area."""

    false_positive_rate: np.ndarray
    true_positive_rate: np.ndarray
    thresholds: np.ndarray
    auc: float


def roc_curve(scores: np.ndarray, positive: np.ndarray) -> RocCurve:
    """The ROC curve of ranking by `scores` to find `positive` (bool) rows.

    There is one point per distinct score, so tied scores move the curve diagonally and count
    half, as in the Mann-Whitney statistic.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    order = np.argsort(-scores, kind="stable")
    ranked_scores, ranked_hits = scores[order], positive[order]
    group_ends = np.r_[np.diff(ranked_scores) != 0, True] if scores.size else np.zeros(0, bool)
    true_pos = np.r_[0, np.cumsum(ranked_hits)[group_ends]]
    false_pos = np.r_[0, np.cumsum(~ranked_hits)[group_ends]]
    thresholds = np.r_[np.inf, ranked_scores[group_ends]]
    positives, negatives = true_pos[-1], false_pos[-1]
    tpr = _safe_ratio(true_pos, np.full(true_pos.shape, positives))
    fpr = _safe_ratio(false_pos, np.full(false_pos.shape, negatives))
    auc = float(np.trapezoid(tpr, fpr)) if positives and negatives else math.nan
    return RocCurve(fpr, tpr, thresholds, auc)


def one_vs_rest_roc(probabilities: np.ndarray, labels: np.ndarray) -> list[RocCurve]:
    """One ROC curve per class: that class's probability ranks its images against the rest."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    return [roc_curve(probabilities[:, k], labels == k) for k in range(probabilities.shape[1])]


def macro_auc(curves: list[RocCurve]) -> float:
    """Mean AUC over the classes whose AUC is defined."""
    values = [c.auc for c in curves if not math.isnan(c.auc)]
    return float(np.mean(values)) if values else math.nan


def lowest_true_class_probability(
    probabilities: np.ndarray, labels: np.ndarray, count: int
) -> np.ndarray:
    """Indices of the `count` rows giving their true class the least probability, worst first."""
    true_probabilities = true_class_probabilities(probabilities, labels)
    return np.argsort(true_probabilities, kind="stable")[:count]


def agreement(predictions_a: np.ndarray, predictions_b: np.ndarray) -> float:
    """Fraction of rows where two models predict the same class."""
    predictions_a, predictions_b = np.asarray(predictions_a), np.asarray(predictions_b)
    if predictions_a.shape != predictions_b.shape:
        raise ValueError(f"shapes differ: {predictions_a.shape} vs {predictions_b.shape}")
    return float(np.mean(predictions_a == predictions_b)) if predictions_a.size else math.nan
