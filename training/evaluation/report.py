"""The evaluation report of one version: `report.md`, its PNG pictures and `metrics.json`.

`metrics_document` collects every number into one dictionary, which is written as `metrics.json`
and is also the only input of `render_markdown`, so the markdown can't show a number the JSON
lacks. Pictures sit beside `report.md` and are linked by relative path.
"""

from __future__ import annotations

import datetime
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from training.evaluation import markdown as md
from training.evaluation import plots
from training.evaluation.evaluate import TOP_K, Evaluation
from training.evaluation.metrics import macro_auc, mean_log_loss
from training.evaluation.output import jsonable, write_json, write_text
from training.evaluation.versions import HISTORY_FILE, TRAINING_FILE, History, VersionInfo

REPORT_FILE = "report.md"
METRICS_FILE = "metrics.json"
CONFUSION_PNG = "confusion_matrix.png"
ROC_PNG = "roc_curves.png"
WORST_PNG = "worst_classified.png"
CURVES_PNG = "training_curves.png"
LEARNING_RATE_PNG = "learning_rate.png"

EPOCH_COLUMNS = {
    "phase": "phase",
    "seconds": "epoch_seconds",
    "learning_rate": "learning_rate",
    "loss": "loss",
    "accuracy": "accuracy",
    "val_loss": "val_loss",
    "val_accuracy": "val_accuracy",
}


# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------


def _per_class(evaluation: Evaluation) -> list[dict[str, Any]]:
    scores = evaluation.scores
    predicted = evaluation.confusion.sum(axis=0)
    return [
        {
            "class": name,
            "precision": scores.precision[k],
            "recall": scores.recall[k],
            "f1": scores.f1[k],
            "support": scores.support[k],
            "predicted": predicted[k],
            "auc": evaluation.roc[k].auc,
        }
        for k, name in enumerate(evaluation.class_names)
    ]


def _worst(evaluation: Evaluation) -> list[dict[str, Any]]:
    names, probabilities = evaluation.class_names, evaluation.probabilities
    rows = []
    for rank, index in enumerate(evaluation.worst, start=1):
        true_class = int(evaluation.data.labels[index])
        predicted = int(evaluation.predictions[index])
        rows.append(
            {
                "rank": rank,
                "index": int(index),
                "true_class": names[true_class],
                "true_probability": probabilities[index, true_class],
                "predicted_class": names[predicted],
                "predicted_probability": probabilities[index, predicted],
            }
        )
    return rows


def _epochs(history: History) -> list[dict[str, Any]]:
    columns = {key: history.columns.get(column) for key, column in EPOCH_COLUMNS.items()}
    return [
        {"epoch": number} | {k: (v[row] if v else None) for k, v in columns.items()}
        for row, number in enumerate(history.epoch_numbers())
    ]


def training_section(version: VersionInfo) -> dict[str, Any]:
    """What training recorded: time per epoch, precision, hardware, provenance, settings."""
    record, history = version.training or {}, version.history
    recorded = record.get("metrics") or {}
    epoch_seconds = history.column("epoch_seconds") if history else None
    return {
        "record_present": version.training is not None,
        "history_present": history is not None,
        "train_seconds": (
            float(np.nansum(epoch_seconds)) if epoch_seconds else recorded.get("train_seconds")
        ),
        "epochs": _epochs(history) if history else [],
        "recorded_metrics": recorded,
        "precision": record.get("precision"),
        "hardware": record.get("hardware"),
        "dataset_sha256": record.get("dataset_sha256"),
        "git_commit": record.get("git_commit"),
        "run_dir": record.get("run_dir"),
        "hyperparameters": record.get("config") or {},
    }


def metrics_document(evaluation: Evaluation, figures: dict[str, str]) -> dict[str, Any]:
    """Every number of the report, plus the picture file names, as one JSON-ready dictionary."""
    data, version = evaluation.data, evaluation.version
    return {
        "model": {
            "name": version.model_name,
            "version": version.version,
            "path": version.path,
            "class_names": evaluation.class_names,
        },
        "evaluated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "test_set": {
            "source": data.source,
            "images": len(data),
            "sha256": data.sha256,
            "matches_training_checksum": evaluation.data_matches_training,
        },
        "accuracy": evaluation.accuracy,
        "correct": int(evaluation.correct.sum()),
        f"top{TOP_K}_accuracy": evaluation.top_k_accuracy,
        "mean_log_loss": mean_log_loss(evaluation.probabilities, data.labels),
        "macro": evaluation.scores.macro() | {"auc": macro_auc(evaluation.roc)},
        "per_class": _per_class(evaluation),
        "confusion_matrix": evaluation.confusion,
        "worst": _worst(evaluation),
        "latency": asdict(evaluation.latency) if evaluation.latency else None,
        "evaluation_hardware": evaluation.hardware,
        "training": training_section(version),
        "figures": figures,
    }


# ---------------------------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------------------------


def _worst_captions(worst: list[dict[str, Any]]) -> list[str]:
    return [
        f"#{row['index']} predicted: {row['predicted_class']} "
        f"({md.probability(row['predicted_probability'])})\n"
        f"true: {row['true_class']} ({md.probability(row['true_probability'])})"
        for row in worst
    ]


def draw_figures(evaluation: Evaluation, out_dir: Path) -> dict[str, str]:
    """Draws every picture into `out_dir`; returns {figure: file name}."""
    names = evaluation.class_names
    label = evaluation.version.label
    plots.plot_confusion(
        evaluation.confusion, names, out_dir / CONFUSION_PNG, f"Confusion matrix: {label}"
    )
    plots.plot_roc(evaluation.roc, names, out_dir / ROC_PNG)
    plots.plot_image_grid(
        evaluation.data.images[evaluation.worst],
        _worst_captions(_worst(evaluation)),
        out_dir / WORST_PNG,
        f"{label}: the {len(evaluation.worst)} test images with the lowest true-class probability",
    )
    figures = {"confusion_matrix": CONFUSION_PNG, "roc_curves": ROC_PNG, "worst": WORST_PNG}
    history = evaluation.version.history
    if history is not None:
        plots.plot_training_curves(history, out_dir / CURVES_PNG)
        plots.plot_learning_rate(history, out_dir / LEARNING_RATE_PNG)
        figures |= {"training_curves": CURVES_PNG, "learning_rate": LEARNING_RATE_PNG}
    return figures


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def _header(doc: dict[str, Any]) -> str:
    model, test_set = doc["model"], doc["test_set"]
    matches = {True: "yes", False: "**no**", None: "unknown"}[test_set["matches_training_checksum"]]
    return "\n".join(
        [
            f"# Evaluation report: {model['name']} version {model['version']}",
            "",
            f"- Model: `{model['path']}`",
            f"- Evaluated: {doc['evaluated_at']}",
            f"- Test set: {test_set['images']:,} images from `{test_set['source']}` "
            f"(SHA-256 of test batch and metadata `{test_set['sha256']}`)",
            f"- Same dataset files as the training run: {matches}",
        ]
    )


def _summary(doc: dict[str, Any]) -> str:
    macro, recorded = doc["macro"], doc["training"]["recorded_metrics"]
    rows = {
        "accuracy": f"{md.percent(doc['accuracy'])} ({doc['correct']:,} of "
        f"{doc['test_set']['images']:,})",
        f"top-{TOP_K} accuracy": md.percent(doc[f"top{TOP_K}_accuracy"]),
        "macro precision": md.number(macro["precision"]),
        "macro recall": md.number(macro["recall"]),
        "macro F1": md.number(macro["f1"]),
        "macro AUC (one-vs-rest)": md.number(macro["auc"]),
        "mean log loss": md.number(doc["mean_log_loss"]),
        "test accuracy recorded at training": md.percent(recorded.get("test_accuracy")),
    }
    return "## Summary\n\n" + md.key_values(rows)


def _per_class_table(doc: dict[str, Any]) -> str:
    rows = [
        [
            row["class"],
            md.number(row["precision"]),
            md.number(row["recall"]),
            md.number(row["f1"]),
            row["support"],
            row["predicted"],
        ]
        for row in doc["per_class"]
    ]
    macro = doc["macro"]
    support = sum(row["support"] for row in doc["per_class"])
    rows.append(
        [
            "**macro average**",
            md.number(macro["precision"]),
            md.number(macro["recall"]),
            md.number(macro["f1"]),
            support,
            "",
        ]
    )
    headers = ["class", "precision", "recall", "F1", "support", "predicted"]
    return "## Per-class precision, recall and F1\n\n" + md.table(headers, rows)


def _confusion(doc: dict[str, Any]) -> str:
    names = doc["model"]["class_names"]
    rows = [
        [f"**{name}**", *counts]
        for name, counts in zip(names, doc["confusion_matrix"], strict=True)
    ]
    return "\n\n".join(
        [
            "## Confusion matrix",
            md.image("Confusion matrix", doc["figures"]["confusion_matrix"]),
            "Counts; rows are the true class, columns the predicted class.",
            md.table(["true \\ predicted", *names], rows),
        ]
    )


def _roc(doc: dict[str, Any]) -> str:
    rows = [[row["class"], md.number(row["auc"]), row["support"]] for row in doc["per_class"]]
    rows.append(["**macro average**", md.number(doc["macro"]["auc"]), ""])
    return "\n\n".join(
        [
            "## ROC curves (one class against the rest)",
            md.image("ROC curves", doc["figures"]["roc_curves"]),
            md.table(["class", "AUC", "positives"], rows),
        ]
    )


def _worst_section(doc: dict[str, Any]) -> str:
    rows = [
        [
            row["rank"],
            row["index"],
            row["true_class"],
            md.probability(row["true_probability"]),
            row["predicted_class"],
            md.probability(row["predicted_probability"]),
        ]
        for row in doc["worst"]
    ]
    headers = ["rank", "test index", "true class", "p(true)", "predicted", "p(predicted)"]
    return "\n\n".join(
        [
            "## Worst-classified test images",
            "The images whose true class got the lowest probability.",
            md.image("Worst-classified test images", doc["figures"]["worst"]),
            md.table(headers, rows),
        ]
    )


def _epoch_table(epochs: list[dict[str, Any]]) -> str:
    """One row per epoch; a phase column only for multi-phase runs."""
    phased = any(row["phase"] is not None for row in epochs)
    headers = ["epoch", "seconds", "learning rate", "loss", "accuracy", "val loss", "val accuracy"]
    rows = [
        [
            row["epoch"],
            md.number(row["seconds"], 1),
            md.number(row["learning_rate"], 5),
            md.number(row["loss"]),
            md.number(row["accuracy"]),
            md.number(row["val_loss"]),
            md.number(row["val_accuracy"]),
        ]
        for row in epochs
    ]
    if phased:
        headers.insert(1, "phase")
        for values, row in zip(rows, epochs, strict=True):
            values.insert(1, md.number(row["phase"], 0))
    return md.table(headers, rows)


def _training(doc: dict[str, Any]) -> str:
    training, figures = doc["training"], doc["figures"]
    parts = ["## Training"]
    if training["history_present"]:
        parts += [
            md.image("Loss and accuracy per epoch", figures["training_curves"]),
            md.image("Learning-rate schedule", figures["learning_rate"]),
            _epoch_table(training["epochs"]),
        ]
    else:
        parts.append(f"No `{HISTORY_FILE}` in this version: no per-epoch curves.")
    seconds = training["train_seconds"]
    minutes = f" ({seconds / 60:.1f} min)" if seconds is not None else ""
    parts.append(f"Training time: {md.number(seconds, 1)} s{minutes}.")
    return "\n\n".join(parts)


def _provenance(doc: dict[str, Any]) -> str:
    training = doc["training"]
    if not training["record_present"]:
        return f"## Provenance\n\nNo `{TRAINING_FILE}` in this version: provenance unknown."
    hardware = training["hardware"] or {}
    gpus = ", ".join(hardware.get("gpus") or []) or "none"
    rows = {
        "precision": training["precision"],
        "CPU": f"{hardware.get('cpu')} ({hardware.get('cpu_cores')} cores)",
        "GPUs": gpus,
        "TensorFlow / Keras": f"{hardware.get('tensorflow')} / {hardware.get('keras')}",
        "dataset SHA-256": f"`{training['dataset_sha256']}`",
        "git commit": f"`{training['git_commit']}`",
        "run directory": f"`{training['run_dir']}`",
    }
    settings = training["hyperparameters"]
    return "\n\n".join(
        [
            "## Provenance",
            md.key_values(rows),
            "### Training settings (`training.json` config)",
            md.table(["setting", "value"], [[k, v] for k, v in settings.items()]),
        ]
    )


def latency_table(latencies: dict[str, dict[str, Any] | None]) -> str:
    """One column per model: batch-1 milliseconds and full-batch throughput."""
    columns = list(latencies)

    def row(label: str, key: str, digits: int) -> list[str]:
        return [label] + [md.number((latencies[c] or {}).get(key), digits) for c in columns]

    batch = next((v["batch_size"] for v in latencies.values() if v), "N")
    rows = [
        row("batch 1: ms per image, median", "single_ms_p50", 2),
        row("batch 1: ms per image, 90th percentile", "single_ms_p90", 2),
        row("batch 1: ms per image, mean", "single_ms_mean", 2),
        row(f"batch {batch}: ms per batch, median", "batch_ms_p50", 1),
        row(f"batch {batch}: images per second", "batch_images_per_second", 0),
    ]
    return md.table(["", *columns], rows)


def _latency(doc: dict[str, Any]) -> str:
    latency = doc["latency"]
    if latency is None:
        return "## Inference latency\n\nNot measured."
    hardware = doc["evaluation_hardware"] or {}
    runs = f"{latency['single_runs']} single-image and {latency['batch_runs']} full-batch calls"
    return "\n\n".join(
        [
            "## Inference latency",
            f"The `serving_default` signature called in process on {hardware.get('cpu')} "
            f"({hardware.get('cpu_cores')} cores), {runs} after warm-up; includes copying the "
            "result out, excludes decoding and the network. Other load on the machine inflates it.",
            latency_table({doc["model"]["name"] + "/" + doc["model"]["version"]: latency}),
        ]
    )


def render_markdown(doc: dict[str, Any]) -> str:
    sections = [
        _header(doc),
        _summary(doc),
        _per_class_table(doc),
        _confusion(doc),
        _roc(doc),
        _worst_section(doc),
        _training(doc),
        _provenance(doc),
        _latency(doc),
    ]
    return "\n\n".join(sections) + "\n"


def write_report(evaluation: Evaluation, out_dir: Path) -> Path:
    """Writes `report.md`, its pictures and `metrics.json` into `out_dir`; returns the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    document = metrics_document(evaluation, draw_figures(evaluation, out_dir))
    write_json(out_dir / METRICS_FILE, document)
    # Rendered from the JSON form, so the markdown shows exactly the values metrics.json holds.
    return write_text(out_dir / REPORT_FILE, render_markdown(jsonable(document)))
