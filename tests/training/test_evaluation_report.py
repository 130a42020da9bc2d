"""`python -m training report`: real tiny SavedModels, a 120-image official-format test set."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tensorflow as tf

from training.cli import main
from training.evaluation.plots import plot_training_curves
from training.evaluation.report import training_section
from training.evaluation.versions import VersionInfo, read_history

if TYPE_CHECKING:  # fixtures from conftest.py
    from conftest import PublishedVersions

REPO_ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAST_TIMING = ["--latency-runs", "2", "--throughput-runs", "1"]


def model_probabilities(version_dir: Path, images: np.ndarray) -> np.ndarray:
    """The model's own answer, computed here independently of the evaluation package."""
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    return serve(images=tf.constant(images))["probabilities"].numpy()


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header, after checking the signature."""
    content = path.read_bytes()
    assert content[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    return int.from_bytes(content[16:20], "big"), int.from_bytes(content[20:24], "big")


def run_report(versions: PublishedVersions, out: Path, *extra: str) -> int:
    argv = ["report", "--model-root", str(versions.model_root), "--model", "cnn"]
    argv += ["--data-dir", str(versions.data.path), "--out", str(out), *FAST_TIMING, *extra]
    return main(argv)


@pytest.fixture(scope="module")
def full_report(
    published_versions: PublishedVersions, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """The report of cnn/1 (with training records), through the command line."""
    out = tmp_path_factory.mktemp("reports")
    assert run_report(published_versions, out, "--version", "1") == 0
    report_dir = out / "cnn" / "1"
    return report_dir, json.loads((report_dir / "metrics.json").read_text())


def test_report_writes_markdown_pictures_and_metrics(
    full_report: tuple[Path, dict[str, Any]],
) -> None:
    report_dir, document = full_report
    text = (report_dir / "report.md").read_text()

    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(linked) == sorted(document["figures"].values())
    assert set(document["figures"]) == {
        "confusion_matrix",
        "roc_curves",
        "worst",
        "training_curves",
        "learning_rate",
    }
    for name in linked:
        width, height = png_size(report_dir / name)
        assert width >= 400 and height >= 300, name
    for heading in ("Per-class precision", "Confusion matrix", "ROC curves", "Worst-classified"):
        assert f"## {heading}" in text
    assert "| **macro average** |" in text
    assert "Inference latency" in text and "images per second" in text


def test_report_numbers_match_the_models_own_predictions(
    full_report: tuple[Path, dict[str, Any]], published_versions: PublishedVersions
) -> None:
    _, document = full_report
    data = published_versions.data
    probabilities = model_probabilities(published_versions.with_records, data.x_test)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((10, 10), int)
    np.add.at(confusion, (data.y_test, predicted), 1)

    assert document["test_set"]["images"] == len(data.y_test) == 120
    assert document["accuracy"] == pytest.approx(np.mean(predicted == data.y_test))
    assert document["confusion_matrix"] == confusion.tolist()
    top5 = np.argsort(-probabilities, axis=1)[:, :5]
    top5_hit = (top5 == data.y_test[:, None]).any(axis=1)
    assert document["top5_accuracy"] == pytest.approx(np.mean(top5_hit))
    for k, row in enumerate(document["per_class"]):
        assert row["support"] == confusion[k].sum()
        if confusion[:, k].sum():
            assert row["precision"] == pytest.approx(confusion[k, k] / confusion[:, k].sum())
        assert row["recall"] == pytest.approx(confusion[k, k] / confusion[k].sum())
    recalls = [row["recall"] for row in document["per_class"]]
    assert document["macro"]["recall"] == pytest.approx(np.mean(recalls))


def test_worst_images_are_the_lowest_true_class_probabilities(
    full_report: tuple[Path, dict[str, Any]], published_versions: PublishedVersions
) -> None:
    _, document = full_report
    data = published_versions.data
    probabilities = model_probabilities(published_versions.with_records, data.x_test)
    true_probability = probabilities[np.arange(len(data.y_test)), data.y_test]

    worst = document["worst"]
    indices = [row["index"] for row in worst]
    assert indices == np.argsort(true_probability)[:10].tolist()
    others = np.delete(true_probability, indices)
    assert true_probability[indices].max() <= others.min()
    assert np.all(np.diff(true_probability[indices]) >= 0)  # worst first
    for row in worst:
        assert row["true_class"] == document["model"]["class_names"][data.y_test[row["index"]]]
        assert row["predicted_probability"] == pytest.approx(probabilities[row["index"]].max())


def test_report_carries_training_records_and_latency(
    full_report: tuple[Path, dict[str, Any]],
) -> None:
    report_dir, document = full_report
    training = document["training"]
    text = (report_dir / "report.md").read_text()

    assert training["history_present"] and training["record_present"]
    assert training["train_seconds"] == pytest.approx(12.5 + 11.0 + 10.5)
    assert [e["learning_rate"] for e in training["epochs"]] == [0.05, 0.1, 0.01]
    assert training["epochs"][2]["val_loss"] is None  # NA in history.csv
    assert training["git_commit"] == "0123abc" and training["precision"] == "float32"
    assert training["hyperparameters"]["batch_size"] == 16
    assert document["test_set"]["matches_training_checksum"] is True
    assert "`0123abc`" in text and "Training time: 34.0 s" in text
    latency = document["latency"]
    assert latency["single_runs"] == 2 and latency["batch_size"] == 256
    assert latency["single_ms_p50"] > 0 and latency["batch_images_per_second"] > 0


def test_report_without_history_says_so(
    published_versions: PublishedVersions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No --version: the newest, cnn/2, which was published without training records.
    assert run_report(published_versions, tmp_path, "--limit", "30") == 0

    report_dir = tmp_path / "cnn" / "2"
    document = json.loads((report_dir / "metrics.json").read_text())
    text = (report_dir / "report.md").read_text()
    assert document["test_set"]["images"] == 30
    assert not document["training"]["history_present"]
    assert "training_curves" not in document["figures"]
    assert "No `assets.extra/history.csv` in this version" in text
    assert "No `assets.extra/training.json` in this version" in text
    assert not (report_dir / "training_curves.png").exists()
    assert f"report written to {report_dir / 'report.md'}" in capsys.readouterr().out


def test_two_phase_history_keeps_its_phases(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    path.write_text(
        "epoch,accuracy,epoch_seconds,learning_rate,loss,phase,val_accuracy,val_loss\n"
        "0,0.3,20.0,0.01,1.9,1,0.3,1.9\n"
        "1,0.4,20.0,0.01,1.7,1,0.4,1.7\n"
        "2,0.6,50.0,0.001,1.2,2,0.6,1.3\n"
    )
    history = read_history(path)
    assert history is not None

    section = training_section(VersionInfo(tmp_path, None, history))
    picture = plot_training_curves(history, tmp_path / "curves.png")

    assert history.phase_starts() == [(3, 2)]
    assert [(e["epoch"], e["phase"]) for e in section["epochs"]] == [(1, 1), (2, 1), (3, 2)]
    assert section["train_seconds"] == 90.0 and not section["record_present"]
    assert png_size(picture)[0] > 0


def test_missing_version_exits_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "cnn" / "1").mkdir(parents=True)
    command = [sys.executable, "-m", "training", "report", "--model-root", str(tmp_path)]
    command += ["--model", "cnn", "--version", "5"]

    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: model version directory not found: {tmp_path / 'cnn' / '5'} (versions: 1)"
    ]


def test_unusable_data_dir_exits_2(
    published_versions: PublishedVersions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-data"

    argv = ["report", "--model-root", str(published_versions.model_root)]

    code = main([*argv, "--data-dir", str(missing)])

    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1
    assert error[0].startswith(f"error: CIFAR-10 directory not found: {missing}")
