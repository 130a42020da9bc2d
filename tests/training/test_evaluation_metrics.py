"""Evaluation statistics and helpers against hand-computed cases (numpy only, no TensorFlow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from training.evaluation import metrics
from training.evaluation.errors import EvaluationError
from training.evaluation.markdown import number, table
from training.evaluation.output import jsonable
from training.evaluation.versions import read_history, resolve_version_dir

# ---------------------------------------------------------------------------------------------
# Confusion matrix, precision, recall, F1
# ---------------------------------------------------------------------------------------------


def test_confusion_matrix_counts_true_rows_and_predicted_columns() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    predictions = np.array([0, 0, 1, 1, 2, 2])

    confusion = metrics.confusion_matrix(labels, predictions, 3)

    np.testing.assert_array_equal(confusion, [[2, 1, 0], [0, 1, 1], [0, 0, 1]])


def test_precision_recall_f1_from_a_known_confusion_matrix() -> None:
    # Class 0: 5 right, 5 of its images called 1; class 1: 8 right, 2 called 0; class 2 never
    # appears and is never predicted.
    confusion = np.array([[5, 5, 0], [2, 8, 0], [0, 0, 0]])

    scores = metrics.class_scores(confusion)

    np.testing.assert_allclose(scores.precision, [5 / 7, 8 / 13, 0.0])
    np.testing.assert_allclose(scores.recall, [0.5, 0.8, 0.0])
    f1_0 = 2 * (5 / 7) * 0.5 / (5 / 7 + 0.5)
    f1_1 = 2 * (8 / 13) * 0.8 / (8 / 13 + 0.8)
    np.testing.assert_allclose(scores.f1, [f1_0, f1_1, 0.0])
    np.testing.assert_array_equal(scores.support, [10, 10, 0])
    macro = scores.macro()
    assert macro["precision"] == pytest.approx((5 / 7 + 8 / 13) / 3)
    assert macro["recall"] == pytest.approx(1.3 / 3)
    assert macro["f1"] == pytest.approx((f1_0 + f1_1) / 3)


def test_accuracy_top_k_and_log_loss() -> None:
    probabilities = np.array([[0.5, 0.3, 0.2], [0.1, 0.3, 0.6], [0.2, 0.7, 0.1]])
    labels = np.array([0, 1, 2])

    predictions = metrics.predicted_classes(probabilities)

    np.testing.assert_array_equal(predictions, [0, 2, 1])
    assert metrics.accuracy(labels, predictions) == pytest.approx(1 / 3)
    assert metrics.top_k_accuracy(probabilities, labels, 1) == pytest.approx(1 / 3)
    assert metrics.top_k_accuracy(probabilities, labels, 2) == pytest.approx(2 / 3)
    assert metrics.top_k_accuracy(probabilities, labels, 5) == 1.0  # k beyond the class count
    expected_loss = -(math.log(0.5) + math.log(0.3) + math.log(0.1)) / 3
    assert metrics.mean_log_loss(probabilities, labels) == pytest.approx(expected_loss)


def test_lowest_true_class_probability_orders_worst_first() -> None:
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.05, 0.95]])
    labels = np.array([0, 0, 1, 1])  # true-class probabilities 0.9, 0.2, 0.4, 0.95

    np.testing.assert_array_equal(
        metrics.lowest_true_class_probability(probabilities, labels, 3), [1, 2, 0]
    )


# ---------------------------------------------------------------------------------------------
# ROC and AUC
# ---------------------------------------------------------------------------------------------


def test_auc_of_perfect_reversed_and_tied_rankings() -> None:
    positive = np.array([True, True, False, False, False])

    assert metrics.roc_curve(np.array([0.9, 0.8, 0.3, 0.2, 0.1]), positive).auc == 1.0
    assert metrics.roc_curve(np.array([0.1, 0.2, 0.7, 0.8, 0.9]), positive).auc == 0.0
    assert metrics.roc_curve(np.full(5, 0.5), positive).auc == pytest.approx(0.5)


def test_roc_curve_points_for_a_small_case() -> None:
    curve = metrics.roc_curve(np.array([0.9, 0.7, 0.7, 0.2]), np.array([True, False, True, False]))

    # (0, 0); 0.9 finds a positive; the tie at 0.7 takes one of each at once; 0.2 ends.
    np.testing.assert_allclose(curve.true_positive_rate, [0, 0.5, 1, 1])
    np.testing.assert_allclose(curve.false_positive_rate, [0, 0, 0.5, 1])
    np.testing.assert_allclose(curve.thresholds, [np.inf, 0.9, 0.7, 0.2])
    assert curve.auc == pytest.approx(0.875)


def test_auc_equals_the_mann_whitney_probability_with_ties() -> None:
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 6, size=200).astype(float)  # many ties
    positive = rng.random(200) < 0.3 + 0.1 * scores

    pos, neg = scores[positive], scores[~positive]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    expected = wins / (len(pos) * len(neg))

    assert metrics.roc_curve(scores, positive).auc == pytest.approx(expected)


def test_auc_is_nan_without_positives_and_excluded_from_the_macro_mean() -> None:
    probabilities = np.array([[0.8, 0.2, 0.0], [0.3, 0.7, 0.0], [0.6, 0.4, 0.0]])
    labels = np.array([0, 1, 0])  # class 2 absent

    curves = metrics.one_vs_rest_roc(probabilities, labels)

    assert [c.auc for c in curves[:2]] == [1.0, 1.0]
    assert math.isnan(curves[2].auc)
    assert metrics.macro_auc(curves) == 1.0


# ---------------------------------------------------------------------------------------------
# McNemar and agreement
# ---------------------------------------------------------------------------------------------


def test_mcnemar_exact_p_matches_the_binomial_sum() -> None:
    # b + c = 10 discordant pairs, min = 1: P(X <= 1) = (1 + 10) / 2**10, doubled.
    result = metrics.mcnemar_from_counts(1, 9)

    assert (result.b, result.c) == (1, 9)
    assert result.exact_p == pytest.approx(22 / 1024)
    assert result.chi_square == pytest.approx((8 - 1) ** 2 / 10)
    assert result.chi_square_p == pytest.approx(0.026857, abs=1e-6)
    assert metrics.mcnemar_from_counts(9, 1).exact_p == result.exact_p
    assert metrics.binomial_two_sided_p(0, 5) == pytest.approx(2 / 32)


def test_mcnemar_without_a_difference_gives_p_one() -> None:
    for b, c in [(0, 0), (4, 4)]:
        result = metrics.mcnemar_from_counts(b, c)
        assert (result.exact_p, result.chi_square, result.chi_square_p) == (1.0, 0.0, 1.0)


def test_chi_square_p_value_at_tabulated_critical_values() -> None:
    # The 95th and 99th percentiles of chi-square with one degree of freedom.
    assert metrics.chi_square_1df_p(3.841458820694124) == pytest.approx(0.05)
    assert metrics.chi_square_1df_p(6.634896601021214) == pytest.approx(0.01)
    assert metrics.chi_square_1df_p(0.0) == 1.0


def test_mcnemar_counts_discordant_pairs_from_correctness() -> None:
    correct_a = np.array([True, True, True, False, False, True])
    correct_b = np.array([True, False, False, True, False, True])

    result = metrics.mcnemar(correct_a, correct_b)

    assert (result.b, result.c) == (2, 1)
    assert result.exact_p == 1.0  # 2 * P(X <= 1 | n = 3) = 2 * 4/8


def test_large_counts_stay_finite() -> None:
    result = metrics.mcnemar_from_counts(2400, 2600)

    assert 0.0 < result.exact_p < 0.01
    assert result.exact_p == pytest.approx(result.chi_square_p, rel=0.1)


def test_agreement() -> None:
    assert metrics.agreement(np.array([0, 1, 2, 3]), np.array([0, 1, 0, 3])) == 0.75
    assert metrics.agreement(np.array([4, 4]), np.array([4, 4])) == 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.agreement(np.array([1, 2]), np.array([1]))


# ---------------------------------------------------------------------------------------------
# Version records, JSON and markdown helpers
# ---------------------------------------------------------------------------------------------


def test_history_reads_na_as_nan_and_absent_file_as_none(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\n0,2.0,NA\n1,1.5,NA\n")

    history = read_history(path)

    assert history is not None and history.epochs == 2
    assert history.column("loss") == [2.0, 1.5]
    assert history.column("val_loss") is None  # all NA
    assert history.column("accuracy") is None
    assert read_history(tmp_path / "missing.csv") is None


def test_resolve_version_dir_finds_newest_and_explains_missing(tmp_path: Path) -> None:
    for version in ("1", "3"):
        (tmp_path / "cnn" / version).mkdir(parents=True)
        (tmp_path / "cnn" / version / "saved_model.pb").write_bytes(b"")

    assert resolve_version_dir(tmp_path, "cnn", None) == tmp_path / "cnn" / "3"
    assert resolve_version_dir(tmp_path, "cnn", 1) == tmp_path / "cnn" / "1"
    with pytest.raises(EvaluationError, match=r"cnn/7 \(versions: 1, 3\)"):
        resolve_version_dir(tmp_path, "cnn", 7)
    (tmp_path / "cnn" / "4").mkdir()  # no SavedModel inside
    with pytest.raises(EvaluationError, match=r"holds no saved_model\.pb"):
        resolve_version_dir(tmp_path, "cnn", None)
    with pytest.raises(EvaluationError, match="no exported versions of 'xception'"):
        resolve_version_dir(tmp_path, "xception", None)


def test_jsonable_makes_strict_json() -> None:
    document = {"a": np.float32(0.5), "b": np.array([[1, 2]]), "c": math.nan, "d": Path("x")}

    text = json.dumps(jsonable(document), allow_nan=False)

    assert json.loads(text) == {"a": 0.5, "b": [[1, 2]], "c": None, "d": "x"}


def test_markdown_table_and_numbers() -> None:
    assert table(["class", "F1"], [["cat|dog", "0.5"]]) == (
        "| class | F1 |\n| :-- | --: |\n| cat\\|dog | 0.5 |"
    )
    assert (number(0.123456), number(1234), number(None), number(math.nan)) == (
        "0.1235",
        "1,234",
        "n/a",
        "n/a",
    )
