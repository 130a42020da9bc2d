"""`python -m training compare A B`: two real tiny SavedModels on the same 120-image test set."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import tensorflow as tf

from training.cli import main
from training.evaluation.compare import compare_versions, default_out_dir, write_comparison
from training.evaluation.dataset import load_test_set
from training.evaluation.metrics import binomial_two_sided_p
from training.evaluation.predict import LatencySettings

if TYPE_CHECKING:  # fixtures from conftest.py
    from conftest import PublishedVersions

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAST_LATENCY = LatencySettings(single_runs=2, batch_runs=1, batch_size=16, warmup_runs=1)


def predictions(version_dir: Path, images: np.ndarray) -> np.ndarray:
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    return serve(images=tf.constant(images))["probabilities"].numpy().argmax(axis=1)


def test_a_version_compared_with_itself(
    published_versions: PublishedVersions, tmp_path: Path
) -> None:
    data = load_test_set(published_versions.data.path, limit=40)
    path = published_versions.with_records

    comparison = compare_versions(path, path, data, FAST_LATENCY)
    written = write_comparison(comparison, tmp_path)

    document = json.loads((tmp_path / "compare.json").read_text())
    assert written == tmp_path / "report.md"
    assert document["accuracy_delta"] == 0.0
    assert document["agreement"] == 1.0
    mcnemar = document["mcnemar"]
    assert (mcnemar["b"], mcnemar["c"], mcnemar["exact_p"]) == (0, 0, 1.0)
    assert all(row["recall_delta"] == 0 and row["f1_delta"] == 0 for row in document["per_class"])
    assert document["names"] == ["A: cnn/1", "B: cnn/1"]
    assert "No significant difference" in written.read_text()


def test_two_versions_through_the_command_line(
    published_versions: PublishedVersions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = published_versions.data
    a, b = published_versions.with_records, published_versions.bare
    out = tmp_path / "out"
    argv = ["compare", str(a), str(b), "--data-dir", str(data.path), "--out", str(out)]

    assert main([*argv, "--latency-runs", "2", "--throughput-runs", "1"]) == 0

    document = json.loads((out / "compare.json").read_text())
    predicted_a, predicted_b = predictions(a, data.x_test), predictions(b, data.x_test)
    right_a, right_b = predicted_a == data.y_test, predicted_b == data.y_test
    assert document["a"]["accuracy"] == pytest.approx(right_a.mean())
    assert document["accuracy_delta"] == pytest.approx(right_b.mean() - right_a.mean())
    assert document["agreement"] == pytest.approx(np.mean(predicted_a == predicted_b))
    b_count, c_count = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    assert (document["mcnemar"]["b"], document["mcnemar"]["c"]) == (b_count, c_count)
    assert document["mcnemar"]["exact_p"] == pytest.approx(binomial_two_sided_p(b_count, c_count))
    assert sum(document["contingency"].values()) == len(data.y_test)
    for side in ("a", "b"):
        latency = document[side]["latency"]
        assert latency["single_runs"] == 2 and latency["batch_size"] == 256

    picture = (out / "confusion_matrices.png").read_bytes()
    width = int.from_bytes(picture[16:20], "big")
    height = int.from_bytes(picture[20:24], "big")
    assert picture[:8] == PNG_SIGNATURE and width > 1.5 * height  # two matrices side by side
    text = (out / "report.md").read_text()
    assert re.findall(r"\]\(([^)]+)\)", text) == ["confusion_matrices.png"]
    assert f"b = {b_count}" in text and f"c = {c_count}" in text
    assert f"comparison written to {out / 'report.md'}" in capsys.readouterr().out


def test_default_output_directory_names_both_versions() -> None:
    assert default_out_dir(Path("models/cnn/2"), Path("models/xception/1")) == Path(
        "reports/compare/cnn-2_vs_xception-1"
    )


def test_missing_version_directory_exits_2(
    published_versions: PublishedVersions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "cnn" / "9"

    assert main(["compare", str(published_versions.with_records), str(missing)]) == 2

    assert capsys.readouterr().err.splitlines() == [
        f"error: model version directory not found: {missing}"
    ]
