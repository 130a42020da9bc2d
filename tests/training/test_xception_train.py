"""Two-phase Xception training (training.train, training.cli): tiny data, 1+1 epochs, a publish.

The fake dataset has 40 training images (4 held out; `--quick` reads only the first batch file,
8 images), and the model upscales to 71 pixels, Xception's minimum, to keep runs to seconds.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import pytest
import tensorflow as tf

from training.cli import main
from training.config import TrainConfig
from training.models.xception import MIN_IMAGE_SIZE, base_of, layer_blocks
from training.train import PHASE1_WEIGHTS, train_and_publish

if TYPE_CHECKING:  # fixtures from conftest.py
    from conftest import FakeCifar

FINE_TUNE_FROM = 13
Snapshot = dict[str, list[np.ndarray]]


def _tiny_config(data_dir: Path, tmp_path: Path, **overrides: object) -> TrainConfig:
    settings: dict[str, object] = {
        "model": "xception",
        "data_dir": data_dir,
        "model_root": tmp_path / "models",
        "run_dir": tmp_path / "run",
        "weights": "none",
        "image_size": MIN_IMAGE_SIZE,
        "phase1_epochs": 1,
        "phase2_epochs": 1,
        "fine_tune_from": FINE_TUNE_FROM,
        "batch_size": 12,
        "augment": False,
        "verbose": 0,
    }
    return TrainConfig(**{**settings, **overrides})  # type: ignore[arg-type]


def _history(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "history.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


class PhaseSnapshots(keras.callbacks.Callback):
    """Copies every weight of the model (by layer) at the start and end of each `fit`."""

    def __init__(self) -> None:
        super().__init__()
        self.taken: list[tuple[Snapshot, Snapshot]] = []

    def _snapshot(self) -> Snapshot:
        snapshot = {
            layer.name: [np.array(w) for w in layer.get_weights()]
            for layer, _ in layer_blocks(base_of(self.model))
        }
        snapshot["head"] = [np.array(w) for w in self.model.get_layer("probabilities").weights]
        return snapshot

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self._before = self._snapshot()

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        self.taken.append((self._before, self._snapshot()))


class FailInPhase2(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if epoch >= 1:
            raise RuntimeError("stopped in phase 2")


def _changed(before: Snapshot, after: Snapshot, name: str) -> bool:
    return any(not np.array_equal(b, a) for b, a in zip(before[name], after[name], strict=True))


def test_two_phases_freeze_then_fine_tune_and_publish_the_contract(
    fake_cifar: FakeCifar, tmp_path: Path
) -> None:
    snapshots = PhaseSnapshots()

    version, path, metrics = train_and_publish(
        _tiny_config(fake_cifar.path, tmp_path), callbacks=[snapshots]
    )

    (head_before, head_after), (tune_before, tune_after) = snapshots.taken
    blocks = {layer.name: block for layer, block in layer_blocks(base_of(snapshots.model))}
    weighted = [name for name in blocks if head_before[name]]
    # Phase 1: only the head learns; the base, batch-norm statistics included, stays as it was.
    assert _changed(head_before, head_after, "head")
    assert not [name for name in weighted if _changed(head_before, head_after, name)]
    # Phase 2: the chosen top blocks learn; every earlier layer stays as it was.
    changed = {name for name in weighted if _changed(tune_before, tune_after, name)}
    assert changed == {name for name in weighted if blocks[name] >= FINE_TUNE_FROM}
    assert _changed(tune_before, tune_after, "head")

    assert (version, path) == (1, tmp_path / "models" / "xception" / "1")
    assert metrics["epochs"] == 2 and metrics["train_images"] == 36
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    _, inputs = serve.structured_input_signature
    assert inputs["images"].dtype == tf.uint8
    assert inputs["images"].shape.as_list() == [None, 32, 32, 3]
    probabilities = serve(images=tf.constant(fake_cifar.x_test[:3]))["probabilities"].numpy()
    assert probabilities.shape == (3, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    metadata = tf.saved_model.load(str(path)).signatures["metadata"]()
    assert [n.decode() for n in metadata["class_names"].numpy()][:2] == ["airplane", "automobile"]
    assert metadata["input_size"].numpy().tolist() == [32, 32, 3]

    report = json.loads((path / "assets.extra" / "training.json").read_text())
    assert report["config"]["weights"] == "none" and report["config"]["image_size"] == 71
    assert report["input_size"] == [32, 32, 3]
    history = _history(tmp_path / "run")
    assert [(row["epoch"], row["phase"]) for row in history] == [("0", "1"), ("1", "2")]
    assert (path / "assets.extra" / "history.csv").read_text() == (
        tmp_path / "run" / "history.csv"
    ).read_text()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["history.csv"]


def test_a_run_stopped_in_phase_2_resumes_there_from_the_command_line(
    fake_cifar: FakeCifar, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _tiny_config(fake_cifar.path, tmp_path, quick=True)

    with pytest.raises(RuntimeError, match="stopped in phase 2"):
        train_and_publish(config, callbacks=[FailInPhase2()])

    run_dir = tmp_path / "run"
    assert (run_dir / PHASE1_WEIGHTS).exists()
    assert [row["phase"] for row in _history(run_dir)] == ["1"]
    assert not (tmp_path / "models" / "xception").exists()

    argv = ["train", "--model", "xception", "--quick", "--weights", "none"]
    argv += ["--image-size", str(MIN_IMAGE_SIZE), "--batch-size", "12", "--run-dir", str(run_dir)]
    argv += ["--data-dir", str(fake_cifar.path), "--model-root", str(tmp_path / "models")]
    assert main(argv) == 0

    out = capsys.readouterr().out
    assert "1 head epoch(s)" in out and "published xception version 1" in out
    # Phase 1 was not trained again: one row per phase, the epoch counting on.
    assert [(row["epoch"], row["phase"]) for row in _history(run_dir)] == [("0", "1"), ("1", "2")]
    assert not (run_dir / PHASE1_WEIGHTS).exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "cnn", "--weights", "imagenet"], "only --model xception takes --weights"),
        (
            ["--model", "cnn", "--image-size", "96", "--fine-tune-from", "3"],
            "only --model xception takes --image-size, --fine-tune-from (got --model cnn)",
        ),
        (["--model", "xception", "--epochs", "3"], "set --phase1-epochs and --phase2-epochs"),
        (["--model", "xception", "--width", "8"], "--width applies to the cnn model only"),
        (["--model", "xception", "--image-size", "64"], "--image-size must be at least 71"),
        (["--model", "xception", "--fine-tune-from", "15"], "must be a block in 1..14"),
        (["--model", "xception", "--weights", "no/such.weights.h5"], "weights file not found"),
        (["--model", "xception", "--phase2-learning-rate", "0"], "must be positive"),
        (
            ["--model", "xception", "--phase1-epochs", "0", "--phase2-epochs", "0"],
            "at least one epoch in total",
        ),
    ],
)
def test_command_line_rejects_settings_that_dont_fit_the_model(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--data-dir", str(tmp_path / "unused"), "--model-root", str(tmp_path), *extra]

    assert main(argv) == 2

    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert list(tmp_path.iterdir()) == []


def test_xception_quick_defaults() -> None:
    quick = TrainConfig(model="xception", quick=True).resolved()

    assert (quick.phase1_epochs, quick.phase2_epochs, quick.epochs) == (1, 1, 2)
    assert (quick.weights, quick.image_size, quick.fine_tune_from) == ("none", 96, 13)
    assert quick.train_limit is not None and quick.train_limit <= 1000
    assert quick.resolved() == quick
