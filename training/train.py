"""Trains a registered model on CIFAR-10, evaluates it and publishes it for serving.

`train_and_publish(config)` is the whole path: find and read the data, seed everything, build and
fit the model (SGD with Nesterov momentum, warm-up then cosine decay, label smoothing, decoupled
weight decay), evaluate on the test set, and publish through `training.export.publish`, which makes
the new version appear atomically. Nothing is published unless every earlier step succeeded.

Single-phase models (cnn) fit once. Two-phase models (xception) first fit only the new head with
the pretrained base frozen (phase 1, higher learning rate), then unfreeze the base's top blocks
and fine-tune at a low learning rate (phase 2); each phase has its own optimizer and schedule.
The history CSV runs on across phases (its `epoch` keeps counting, a `phase` column says which).

Resuming: a rerun with the same run directory picks up at the last finished epoch. Each phase
checkpoints into its own directory (model and optimizer state, every epoch); a finished phase 1
leaves `phase1.weights.h5`, so a run stopped in phase 2 doesn't repeat phase 1. These files are
deleted once training completes.

Mixed bfloat16 speeds training up about 2x on CPUs with AMX/AVX-512 bf16; the published model is
always a float32 copy with the same weights, so it runs on any CPU or GPU TF Serving build.

The seed fixes initialisation, shuffling and augmentation. Runs are not bit-identical at full size:
oneDNN's multi-threaded kernels sum in varying order (even under TF's op determinism).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from common.serving_contract import HISTORY_FILE, TRAINING_RECORD_FILE
from training import export, pipeline
from training.config import NO_WEIGHTS, TrainConfig, load_run_data
from training.data import Cifar10, split_validation
from training.models import build_model
from training.models.xception import NUM_BLOCKS, freeze_base, unfreeze_top_blocks
from training.provenance import git_commit, hardware_summary
from training.warmup import write_warmup_file

# ---------------------------------------------------------------------------------------------
# Hyperparameters (run-level settings such as epochs and batch size live in TrainConfig)
# ---------------------------------------------------------------------------------------------
WARMUP_FRACTION = 0.15
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
LABEL_SMOOTHING = 0.1
EVAL_BATCH_SIZE = 500
RUNS_ROOT = Path("runs")
CHECKPOINT_DIR = "checkpoint"
PHASE1_WEIGHTS = "phase1.weights.h5"


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


def _optimizer(learning_rate: float, steps: int) -> keras.optimizers.Optimizer:
    warmup = max(1, int(steps * WARMUP_FRACTION))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate * 0.1,
        decay_steps=max(1, steps - warmup),
        warmup_target=learning_rate,
        warmup_steps=warmup,
    )
    return keras.optimizers.SGD(
        learning_rate=schedule, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY
    )


class EpochClock(keras.callbacks.Callback):
    """Adds each epoch's wall time, final learning rate and (if given) phase to the logs, so to
    history.csv."""

    def __init__(self, phase: int | None = None) -> None:
        super().__init__()
        self._phase = phase

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
        if self._phase is not None:
            logs["phase"] = self._phase


@dataclasses.dataclass(frozen=True)
class Phase:
    """One `fit` call: epochs [start, end) of the run at a peak learning rate."""

    number: int | None  # None for single-phase runs (no phase column)
    start: int
    end: int
    learning_rate: float
    checkpoint: Path


@dataclasses.dataclass(frozen=True)
class _Fitting:
    """What every phase fits on, and how."""

    train_ds: tf.data.Dataset
    val_ds: tf.data.Dataset | None
    steps_per_epoch: int
    run_dir: Path
    verbose: int
    callbacks: Sequence[keras.callbacks.Callback]


def _fit_phase(model: keras.Model, phase: Phase, fitting: _Fitting) -> None:
    """Compiles a fresh optimizer for the phase and fits it (resuming from its checkpoint)."""
    steps = fitting.steps_per_epoch * (phase.end - phase.start)
    _compile(model, _optimizer(phase.learning_rate, steps))
    model.fit(
        fitting.train_ds,
        validation_data=fitting.val_ds,
        initial_epoch=phase.start,
        epochs=phase.end,
        shuffle=False,  # the dataset reshuffles itself, reproducibly
        verbose=fitting.verbose,
        callbacks=[
            EpochClock(phase.number),
            keras.callbacks.CSVLogger(str(fitting.run_dir / "history.csv"), append=True),
            # Saves model and optimizer state every epoch; a rerun with the same --run-dir
            # resumes from the last finished epoch. Deleted once the phase completes.
            keras.callbacks.BackupAndRestore(str(phase.checkpoint)),
            *fitting.callbacks,
        ],
    )
    # A restored BackupAndRestore leaves its epoch on the model, where a later fit would start
    # from it instead of its own initial_epoch; clear it.
    model._initial_epoch = None


def _train_single_phase(model: keras.Model, config: TrainConfig, fitting: _Fitting) -> None:
    assert config.epochs is not None
    checkpoint = fitting.run_dir / CHECKPOINT_DIR
    _fit_phase(model, Phase(None, 0, config.epochs, config.learning_rate, checkpoint), fitting)


def _two_phase_plan(config: TrainConfig, run_dir: Path) -> tuple[Phase, Phase]:
    assert config.phase1_epochs is not None and config.phase2_epochs is not None
    assert config.phase1_learning_rate is not None and config.phase2_learning_rate is not None
    head_end = config.phase1_epochs
    return (
        Phase(1, 0, head_end, config.phase1_learning_rate, run_dir / f"{CHECKPOINT_DIR}-phase1"),
        Phase(
            2,
            head_end,
            head_end + config.phase2_epochs,
            config.phase2_learning_rate,
            run_dir / f"{CHECKPOINT_DIR}-phase2",
        ),
    )


def _train_two_phases(model: keras.Model, config: TrainConfig, fitting: _Fitting) -> None:
    """Phase 1: head only, base frozen. Phase 2: blocks fine_tune_from..14 unfrozen too."""
    assert config.fine_tune_from is not None
    head, fine_tune = _two_phase_plan(config, fitting.run_dir)
    handoff = fitting.run_dir / PHASE1_WEIGHTS
    freeze_base(model)
    if handoff.exists():  # phase 1 finished in an earlier run that was stopped in phase 2
        model.load_weights(str(handoff))
    elif head.end > head.start:
        _fit_phase(model, head, fitting)
        model.save_weights(str(handoff))
    if fine_tune.end > fine_tune.start:
        unfreeze_top_blocks(model, config.fine_tune_from)
        _fit_phase(model, fine_tune, fitting)
    handoff.unlink(missing_ok=True)


def _describe_schedule(config: TrainConfig) -> str:
    if not config.two_phase:
        return f"{config.epochs} epoch(s)"
    return (
        f"{config.phase1_epochs} head epoch(s) at lr {config.phase1_learning_rate} then "
        f"{config.phase2_epochs} fine-tuning epoch(s) of blocks "
        f"{config.fine_tune_from}..{NUM_BLOCKS} "
        f"at lr {config.phase2_learning_rate} (weights: {config.weights}, "
        f"upscaled to {config.image_size}px)"
    )


def _model_options(config: TrainConfig, *, load_weights: bool) -> dict[str, object]:
    """The builder options of the run; `load_weights=False` skips loading pretrained weights."""
    if not config.two_phase:
        return {"width": config.width}
    weights = config.weights if load_weights else NO_WEIGHTS
    return {"weights": weights, "image_size": config.image_size}


def _history_seconds(history: Path) -> float:
    """Total training time over every epoch in the run's history (resumed runs included)."""
    if not history.exists():
        return 0.0
    with history.open(newline="") as handle:
        return sum(float(row.get("epoch_seconds") or 0.0) for row in csv.DictReader(handle))


def default_run_dir(model_name: str) -> Path:
    return RUNS_ROOT / model_name / time.strftime("%Y%m%d-%H%M%S", time.gmtime())


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
    code_version = git_commit()  # the code as it was when training started
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

    def build(dtype_policy: str | None, *, load_weights: bool = True) -> keras.Model:
        return build_model(
            config.model,
            num_classes,
            mean=mean,
            std=std,
            dtype_policy=dtype_policy,
            **_model_options(config, load_weights=load_weights),
        )

    model = build(policy)  # first: bad weights fail here, before the run dir exists
    run_dir.mkdir(parents=True, exist_ok=True)
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
            f"validation) for {_describe_schedule(config)}, batch size {batch_size}; "
            f"run dir {run_dir}"
        )
    started = time.monotonic()
    fitting = _Fitting(train_ds, val_ds, steps_per_epoch, run_dir, config.verbose, callbacks)
    if config.two_phase:
        _train_two_phases(model, config, fitting)
    else:
        _train_single_phase(model, config, fitting)
    train_seconds = _history_seconds(run_dir / "history.csv") or time.monotonic() - started

    # Publish (and evaluate) a float32 twin: same weights, portable to any serving hardware.
    serving_model = model
    if policy is not None:
        serving_model = build(None, load_weights=False)
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
        report = export_dir / TRAINING_RECORD_FILE
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
            "git_commit": code_version,
            "input_size": list(data.x_test.shape[1:]),
            "hyperparameters": {
                "optimizer": "SGD, Nesterov momentum",
                "momentum": MOMENTUM,
                "weight_decay": WEIGHT_DECAY,
                "label_smoothing": LABEL_SMOOTHING,
                "schedule": "linear warm-up, then cosine decay to 0",
                "warmup_fraction": WARMUP_FRACTION,
            },
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
