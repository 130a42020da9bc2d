"""Trains a registered model on CIFAR-10, evaluates it and publishes it for serving.

`train_and_publish(config)` is the whole path: find and read the data, seed everything, build and
fit the model (SGD with Nesterov momentum, warm-up then cosine decay, label smoothing, decoupled
weight decay), evaluate on the test set, and publish through `training.export.publish`, which makes
the new version appear atomically. Nothing is published unless every earlier step succeeded.

Mixed bfloat16 speeds training up about 2x on CPUs with AMX/AVX-512 bf16; the published model is
always a float32 copy with the same weights, so it runs on any CPU or GPU TF Serving build.

The seed fixes initialisation, shuffling and augmentation. Runs are not bit-identical at full size:
oneDNN's multi-threaded kernels sum in varying order (even under TF's op determinism).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from training import export, pipeline
from training.config import TrainConfig, load_run_data
from training.data import Cifar10, split_validation
from training.models import build_model
from training.provenance import git_commit
from training.warmup import write_warmup_file

# ---------------------------------------------------------------------------------------------
# Hyperparameters (run-level settings such as epochs and batch size live in TrainConfig)
# ---------------------------------------------------------------------------------------------
WARMUP_FRACTION = 0.15
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
LABEL_SMOOTHING = 0.1
EVAL_BATCH_SIZE = 500
REPORT_FILE = "assets.extra/training.json"
HISTORY_FILE = "assets.extra/history.csv"
RUNS_ROOT = Path("runs")


class TrainResult(NamedTuple):
    """The published version, its directory, and the run's metrics."""

    version: int
    path: Path
    metrics: dict[str, float]


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def training_dtype_policy(precision: str) -> str | None:
    """The Keras dtype policy to train with (`None` means float32)."""
    if precision == "auto":
        use_bf16 = _cpu_has_bf16() and not tf.config.list_physical_devices("GPU")
        return "mixed_bfloat16" if use_bf16 else None
    return None if precision == "float32" else precision


def _channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation on the 0..1 scale (in chunks, to bound memory)."""
    channels = images.shape[-1]
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    for start in range(0, len(images), 1024):
        chunk = images[start : start + 1024].reshape(-1, channels).astype(np.float64) / 255.0
        total += chunk.sum(axis=0)
        total_sq += np.square(chunk).sum(axis=0)
    count = images.size // channels
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    return mean.tolist(), np.maximum(std, 1e-3).tolist()


def _compile(model: keras.Model, optimizer: keras.optimizers.Optimizer | str) -> None:
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=LABEL_SMOOTHING),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


def _optimizer(config: TrainConfig, steps: int) -> keras.optimizers.Optimizer:
    warmup = max(1, int(steps * WARMUP_FRACTION))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate * 0.1,
        decay_steps=max(1, steps - warmup),
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
    )
    return keras.optimizers.SGD(
        learning_rate=schedule, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY
    )


class EpochClock(keras.callbacks.Callback):
    """Adds each epoch's wall time and final learning rate to the logs (so to history.csv)."""

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if logs is None:
            return
        logs["epoch_seconds"] = round(time.monotonic() - self._started, 2)
        optimizer = self.model.optimizer
        learning_rate = optimizer.learning_rate
        if callable(learning_rate):
            learning_rate = learning_rate(optimizer.iterations)
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(learning_rate))


def _history_seconds(history: Path) -> float:
    """Total training time over every epoch in the run's history (resumed runs included)."""
    if not history.exists():
        return 0.0
    with history.open(newline="") as handle:
        return sum(float(row.get("epoch_seconds") or 0.0) for row in csv.DictReader(handle))


def default_run_dir(model_name: str) -> Path:
    return RUNS_ROOT / model_name / time.strftime("%Y%m%d-%H%M%S", time.gmtime())


def hardware_summary() -> dict[str, object]:
    """What the run ran on, for the report."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "gpus": gpus,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def train_and_publish(
    config: TrainConfig,
    *,
    data: Cifar10 | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainResult:
    """Trains, evaluates and publishes one model version; returns (version, path, metrics).

    `data` is what `load_run_data(config)` returns, for callers that loaded it already (it is
    used as given); `callbacks` are passed to `fit`. Raises `DatasetError` for data problems,
    before anything is written.
    """
    config = config.resolved()
    assert config.epochs is not None and config.model_name is not None
    data = data if data is not None else load_run_data(config)
    num_classes = len(data.class_names)
    if len(data.x_train) == 0 or len(data.x_test) == 0:
        raise ValueError("need at least one training and one test image")

    keras.utils.set_random_seed(config.seed)
    # At most a tenth of the training images are held out, so tiny runs still train.
    held_out = min(int(config.validation_images or 0), len(data.x_train) // 10)
    x_train, y_train, x_val, y_val = split_validation(
        data.x_train, data.y_train, held_out, config.seed
    )
    policy = training_dtype_policy(config.precision)
    batch_size = min(config.batch_size, len(x_train))
    steps_per_epoch = len(x_train) // batch_size
    mean, std = _channel_stats(x_train)
    run_dir = Path(config.run_dir or default_run_dir(config.model_name))
    run_dir.mkdir(parents=True, exist_ok=True)

    def build(dtype_policy: str | None) -> keras.Model:
        return build_model(
            config.model,
            num_classes,
            mean=mean,
            std=std,
            dtype_policy=dtype_policy,
            width=config.width,
        )

    model = build(policy)
    _compile(model, _optimizer(config, steps_per_epoch * config.epochs))
    train_ds = pipeline.train_dataset(
        x_train,
        y_train,
        num_classes=num_classes,
        batch_size=batch_size,
        seed=config.seed,
        augment=bool(config.augment),
    )
    val_ds = None
    if len(x_val):
        val_ds = pipeline.eval_dataset(
            x_val, y_val, num_classes=num_classes, batch_size=EVAL_BATCH_SIZE
        )
    if config.verbose:
        print(
            f"training {config.model} ({model.count_params():,} parameters, "
            f"{policy or 'float32'}) on {len(x_train):,} images ({len(x_val):,} held out for "
            f"validation) for {config.epochs} epoch(s), batch size {batch_size}; run dir {run_dir}"
        )
    started = time.monotonic()
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.epochs,
        shuffle=False,  # the dataset reshuffles itself, reproducibly
        verbose=config.verbose,
        callbacks=[
            EpochClock(),
            keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
            # Saves model and optimizer state every epoch; a rerun with the same --run-dir
            # resumes from the last finished epoch. Deleted once training completes.
            keras.callbacks.BackupAndRestore(str(run_dir / "checkpoint")),
            *callbacks,
        ],
    )
    train_seconds = _history_seconds(run_dir / "history.csv") or time.monotonic() - started

    # Publish (and evaluate) a float32 twin: same weights, portable to any serving hardware.
    serving_model = model
    if policy is not None:
        serving_model = build(None)
        serving_model.set_weights(model.get_weights())
    _compile(serving_model, "sgd")
    test_ds = pipeline.eval_dataset(
        data.x_test, data.y_test, num_classes=num_classes, batch_size=EVAL_BATCH_SIZE
    )
    scores = serving_model.evaluate(test_ds, verbose=config.verbose, return_dict=True)
    metrics = {
        "test_accuracy": float(scores["accuracy"]),
        "test_loss": float(scores["loss"]),
        "train_images": float(len(x_train)),
        "validation_images": float(len(x_val)),
        "test_images": float(len(data.x_test)),
        "epochs": float(config.epochs),
        "train_seconds": round(train_seconds, 1),
    }

    def write_report(export_dir: Path) -> None:
        report = export_dir / REPORT_FILE
        report.parent.mkdir(parents=True, exist_ok=True)
        settings = {
            k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()
        }
        body = {
            "config": settings,
            "metrics": metrics,
            "class_names": list(data.class_names),
            "precision": policy or "float32",
            "hardware": hardware_summary(),
            "run_dir": str(run_dir),
            "dataset_sha256": data.sha256,
            "git_commit": git_commit(),
            "input_size": list(data.x_test.shape[1:]),
        }
        report.write_text(json.dumps(body, indent=2) + "\n")
        history = run_dir / "history.csv"
        if history.exists():
            shutil.copyfile(history, export_dir / HISTORY_FILE)
        write_warmup_file(export_dir, config.model_name or config.model, data.x_test[:32])

    version, path = export.publish(
        serving_model,
        data.class_names,
        Path(config.model_root),
        config.model_name,
        extra_write=write_report,
    )
    return TrainResult(version, path, metrics)


__all__ = ["TrainConfig", "TrainResult", "train_and_publish", "training_dtype_policy"]
