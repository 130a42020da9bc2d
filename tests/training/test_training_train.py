"""Training end to end (training.train, training.cli): tiny data, one epoch, a real publish."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import pytest
import tensorflow as tf

from training import export
from training.cli import main
from training.config import QUICK_TEST_IMAGES, QUICK_TRAIN_IMAGES, TrainConfig
from training.train import train_and_publish, training_dtype_policy

if TYPE_CHECKING:  # fixtures from conftest.py
    from conftest import FakeCifar

REPO_ROOT = Path(__file__).resolve().parents[2]


def _tiny_config(data_dir: Path, model_root: Path, **overrides: object) -> TrainConfig:
    settings: dict[str, object] = {
        "data_dir": data_dir,
        "model_root": model_root,
        "epochs": 1,
        "batch_size": 16,
        "width": 4,
        "verbose": 0,
    }
    return TrainConfig(**{**settings, **overrides})  # type: ignore[arg-type]


def _entries(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


class FailingCallback(keras.callbacks.Callback):
    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        raise RuntimeError("boom during training")


def test_publishes_versions_with_the_serving_contract(
    fake_cifar: FakeCifar, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_root = tmp_path / "models"

    version, path, metrics = train_and_publish(_tiny_config(fake_cifar.path, model_root))

    assert (version, path) == (1, model_root / "cnn" / "1")
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["train_images"] == 36 and metrics["validation_images"] == 4
    assert metrics["test_images"] == 10
    report = json.loads((path / "assets.extra" / "training.json").read_text())
    assert report["metrics"] == metrics and report["class_names"][0] == "airplane"

    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    _, inputs = serve.structured_input_signature
    assert list(inputs) == ["images"]
    assert inputs["images"].dtype == tf.uint8
    assert inputs["images"].shape.as_list() == [None, 32, 32, 3]
    assert serve.structured_outputs["probabilities"].dtype == tf.float32

    probabilities = serve(images=tf.constant(fake_cifar.x_test[:4]))["probabilities"].numpy()
    assert probabilities.shape == (4, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    metadata = loaded.signatures["metadata"]()
    names = [n.decode() for n in metadata["class_names"].numpy()]
    assert names[:3] == ["airplane", "automobile", "bird"] and len(names) == 10
    assert metadata["input_size"].numpy().tolist() == [32, 32, 3]

    # A second run, through the command line this time, becomes version 2.
    capsys.readouterr()
    argv = ["train", "--model", "cnn", "--data-dir", str(fake_cifar.path)]
    argv += ["--model-root", str(model_root), "--quick", "--width", "4", "--batch-size", "16"]
    assert main(argv) == 0

    out = capsys.readouterr().out
    assert "test accuracy: " in out
    assert f"published cnn version 2 at {model_root / 'cnn' / '2'}" in out
    assert _entries(model_root / "cnn") == ["1", "2"]


def test_failure_during_training_publishes_nothing(fake_cifar: FakeCifar, tmp_path: Path) -> None:
    model_root = tmp_path / "models"
    config = _tiny_config(fake_cifar.path, model_root, precision="float32")

    with pytest.raises(RuntimeError, match="boom during training"):
        train_and_publish(config, callbacks=[FailingCallback()])

    assert _entries(model_root / "cnn") == []


def test_failure_during_export_leaves_no_version_or_temp_dir(
    fake_cifar: FakeCifar, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_root = tmp_path / "models"
    real_write = export.write_saved_model

    def write_then_fail(*args: object, **kwargs: object) -> None:
        real_write(*args, **kwargs)  # type: ignore[arg-type]
        raise OSError("disk full")

    monkeypatch.setattr(export, "write_saved_model", write_then_fail)
    config = _tiny_config(fake_cifar.path, model_root, precision="float32")

    with pytest.raises(OSError, match="disk full"):
        train_and_publish(config)

    assert _entries(model_root / "cnn") == []


def test_same_seed_same_model(fake_cifar: FakeCifar, tmp_path: Path) -> None:
    outputs = []
    for run in ("a", "b"):
        config = _tiny_config(fake_cifar.path, tmp_path / run, precision="float32", augment=True)
        _, path, _ = train_and_publish(config)
        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        outputs.append(serve(images=tf.constant(fake_cifar.x_test))["probabilities"].numpy())

    # Seeding covers initialisation, shuffling and augmentation; a seeding gap would move these
    # by ~1e-1. The tolerance leaves room for oneDNN's multi-threaded float summation order.
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-3)


def test_command_line_reports_data_errors_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    command = [sys.executable, "-m", "training", "train", "--data-dir", str(missing)]
    command += ["--model-root", str(tmp_path / "models"), "--quick"]

    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: CIFAR-10 directory not found: {missing}; pass --data-dir, set CIFAR10_DIR, "
        "or add --download to fetch the official archive"
    ]
    assert not (tmp_path / "models").exists()


def test_command_line_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--epochs", "0"])

    assert exit_info.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err


def test_quick_config_defaults() -> None:
    quick = TrainConfig(quick=True).resolved()
    assert (quick.epochs, quick.augment, quick.model_name) == (1, False, "cnn")
    assert (quick.train_limit, quick.test_limit) == (QUICK_TRAIN_IMAGES, QUICK_TEST_IMAGES)

    full = TrainConfig(epochs=3, model_name="cnn-b").resolved()
    assert (full.epochs, full.augment, full.model_name, full.train_limit) == (
        3,
        True,
        "cnn-b",
        None,
    )

    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="float8").resolved()


def test_precision_choice() -> None:
    assert training_dtype_policy("float32") is None
    assert training_dtype_policy("mixed_bfloat16") == "mixed_bfloat16"
    assert training_dtype_policy("auto") in (None, "mixed_bfloat16")


class StopAfterEpoch(keras.callbacks.Callback):
    """Stops the process the way Ctrl-C would, once `epoch` has finished (and been saved)."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_a_stopped_run_resumes_from_its_last_epoch(fake_cifar: FakeCifar, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = _tiny_config(fake_cifar.path, tmp_path / "models", epochs=3, run_dir=run_dir)
    with pytest.raises(KeyboardInterrupt):
        train_and_publish(config, callbacks=[StopAfterEpoch(1)])
    assert not (tmp_path / "models" / "cnn").exists() or _entries(tmp_path / "models" / "cnn") == []
    assert (run_dir / "checkpoint").exists()

    version, path, _ = train_and_publish(config)

    epochs = [line.split(",")[0] for line in (run_dir / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1", "2"]  # epoch 2 only: 0 and 1 were not trained again
    assert version == 1 and (path / "assets.extra" / "history.csv").exists()
    assert not (run_dir / "checkpoint").exists()  # removed once training completed
