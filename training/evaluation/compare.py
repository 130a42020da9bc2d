"""Two versions on the same test set: accuracy delta, per-class deltas, McNemar's test, agreement.

Deltas are B minus A. McNemar's `b` counts images A got right and B wrong, `c` the reverse.
`write_comparison` writes `report.md`, the side-by-side confusion matrices and
`compare.json`; the markdown is rendered from the JSON form, like the single-version report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.evaluation import markdown as md
from training.evaluation import metrics
from training.evaluation.dataset import EvaluationData
from training.evaluation.errors import EvaluationError
from training.evaluation.evaluate import TOP_K, Evaluation, evaluate_version
from training.evaluation.output import jsonable, write_json, write_text
from training.evaluation.plots import plot_confusions_side_by_side
from training.evaluation.predict import DEFAULT_LATENCY, LatencySettings
from training.evaluation.report import latency_table

REPORT_FILE = "report.md"
JSON_FILE = "compare.json"
CONFUSIONS_PNG = "confusion_matrices.png"
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Comparison:
    a: Evaluation
    b: Evaluation
    mcnemar: metrics.McNemar
    agreement: float

    @property
    def names(self) -> tuple[str, str]:
        """Column names for A and B that stay distinct when a version meets itself."""
        return f"A: {self.a.version.label}", f"B: {self.b.version.label}"


def compare_evaluations(a: Evaluation, b: Evaluation) -> Comparison:
    """Pairs two evaluations of the same test set."""
    if a.class_names != b.class_names:
        raise EvaluationError(f"the models' classes differ: {a.class_names} vs {b.class_names}")
    if not np.array_equal(a.data.labels, b.data.labels):
        raise EvaluationError("the two evaluations used different test sets")
    return Comparison(
        a=a,
        b=b,
        mcnemar=metrics.mcnemar(a.correct, b.correct),
        agreement=metrics.agreement(a.predictions, b.predictions),
    )


def compare_versions(
    path_a: Path,
    path_b: Path,
    data: EvaluationData,
    latency: LatencySettings | None = DEFAULT_LATENCY,
) -> Comparison:
    """Runs both versions over `data`, timing each with the same settings."""
    return compare_evaluations(
        evaluate_version(path_a, data, latency), evaluate_version(path_b, data, latency)
    )


def default_out_dir(path_a: Path, path_b: Path, root: Path = Path("reports")) -> Path:
    """`reports/compare/<model>-<version>_vs_<model>-<version>`."""

    def name(path: Path) -> str:
        resolved = Path(path).resolve()
        return f"{resolved.parent.name}-{resolved.name}"

    return root / "compare" / f"{name(path_a)}_vs_{name(path_b)}"


# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------


def _side(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "label": evaluation.version.label,
        "path": evaluation.version.path,
        "accuracy": evaluation.accuracy,
        f"top{TOP_K}_accuracy": evaluation.top_k_accuracy,
        "macro_f1": evaluation.scores.macro()["f1"],
        "latency": asdict(evaluation.latency) if evaluation.latency else None,
    }


def _per_class(a: Evaluation, b: Evaluation) -> list[dict[str, Any]]:
    return [
        {
            "class": name,
            "recall_a": a.scores.recall[k],
            "recall_b": b.scores.recall[k],
            "recall_delta": b.scores.recall[k] - a.scores.recall[k],
            "f1_a": a.scores.f1[k],
            "f1_b": b.scores.f1[k],
            "f1_delta": b.scores.f1[k] - a.scores.f1[k],
            "support": a.scores.support[k],
        }
        for k, name in enumerate(a.class_names)
    ]


def comparison_document(comparison: Comparison, figures: dict[str, str]) -> dict[str, Any]:
    """Every number of the comparison, as one JSON-ready dictionary."""
    a, b, test = comparison.a, comparison.b, comparison.mcnemar
    correct_a, correct_b = a.correct, b.correct
    return {
        "names": comparison.names,
        "a": _side(a),
        "b": _side(b),
        "test_set": {"source": a.data.source, "images": len(a.data), "sha256": a.data.sha256},
        "accuracy_delta": b.accuracy - a.accuracy,
        f"top{TOP_K}_accuracy_delta": b.top_k_accuracy - a.top_k_accuracy,
        "macro_f1_delta": b.scores.macro()["f1"] - a.scores.macro()["f1"],
        "per_class": _per_class(a, b),
        "contingency": {
            "both_correct": int(np.sum(correct_a & correct_b)),
            "a_only_correct": test.b,
            "b_only_correct": test.c,
            "both_wrong": int(np.sum(~correct_a & ~correct_b)),
        },
        "mcnemar": asdict(test) | {"discordant": test.b + test.c},
        "agreement": comparison.agreement,
        "evaluation_hardware": a.hardware,
        "figures": figures,
    }


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def _header(doc: dict[str, Any]) -> str:
    test_set = doc["test_set"]
    return "\n".join(
        [
            f"# Comparison: {doc['a']['label']} (A) vs {doc['b']['label']} (B)",
            "",
            f"- A: `{doc['a']['path']}`",
            f"- B: `{doc['b']['path']}`",
            f"- Test set: {test_set['images']:,} images from `{test_set['source']}` "
            f"(SHA-256 `{test_set['sha256']}`)",
            "- Deltas are B minus A.",
        ]
    )


def _accuracy(doc: dict[str, Any]) -> str:
    a, b = doc["a"], doc["b"]
    top = f"top{TOP_K}_accuracy"
    rows = [
        [
            "accuracy",
            md.percent(a["accuracy"]),
            md.percent(b["accuracy"]),
            md.percentage_points(doc["accuracy_delta"]),
        ],
        [
            f"top-{TOP_K} accuracy",
            md.percent(a[top]),
            md.percent(b[top]),
            md.percentage_points(doc[f"{top}_delta"]),
        ],
        [
            "macro F1",
            md.number(a["macro_f1"]),
            md.number(b["macro_f1"]),
            md.signed(doc["macro_f1_delta"]),
        ],
    ]
    return "## Accuracy\n\n" + md.table(["", *doc["names"], "B - A"], rows)


def _verdict(p_value: float | None) -> str:
    if p_value is None:
        return "The p-value is undefined."
    if p_value < SIGNIFICANCE:
        return f"The error rates differ significantly (p < {SIGNIFICANCE})."
    return f"No significant difference in error rates at the {SIGNIFICANCE} level."


def _mcnemar(doc: dict[str, Any]) -> str:
    counts, test = doc["contingency"], doc["mcnemar"]
    name_a, name_b = doc["names"]
    contingency = md.table(
        ["", f"{name_b} right", f"{name_b} wrong"],
        [
            [f"{name_a} right", counts["both_correct"], f"b = {test['b']}"],
            [f"{name_a} wrong", f"c = {test['c']}", counts["both_wrong"]],
        ],
    )
    results = md.key_values(
        {
            "discordant images (b + c)": test["discordant"],
            "exact two-sided binomial p-value": md.p_value(test["exact_p"]),
            "chi-square (continuity-corrected)": md.number(test["chi_square"], 4),
            "chi-square p-value (1 degree of freedom)": md.p_value(test["chi_square_p"]),
        }
    )
    return "\n\n".join(["## McNemar's test", contingency, results, _verdict(test["exact_p"])])


def _agreement(doc: dict[str, Any]) -> str:
    return (
        "## Agreement\n\n"
        f"Both models predict the same class for {md.percent(doc['agreement'])} of the images."
    )


def _per_class_table(doc: dict[str, Any]) -> str:
    headers = ["class", "recall A", "recall B", "Δ recall", "F1 A", "F1 B", "Δ F1", "support"]
    rows = [
        [
            row["class"],
            md.number(row["recall_a"]),
            md.number(row["recall_b"]),
            md.signed(row["recall_delta"]),
            md.number(row["f1_a"]),
            md.number(row["f1_b"]),
            md.signed(row["f1_delta"]),
            row["support"],
        ]
        for row in doc["per_class"]
    ]
    title = "## Per-class accuracy (recall) and F1"
    return f"{title}\n\n{md.table(headers, rows)}"


def _confusions(doc: dict[str, Any]) -> str:
    picture = md.image("Confusion matrices side by side", doc["figures"]["confusion_matrices"])
    return f"## Confusion matrices\n\n{picture}"


def _latency(doc: dict[str, Any]) -> str:
    hardware = doc["evaluation_hardware"] or {}
    latencies = dict(zip(doc["names"], (doc["a"]["latency"], doc["b"]["latency"]), strict=True))
    return "\n\n".join(
        [
            "## Inference latency",
            f"Measured the same way for both, one after the other, on {hardware.get('cpu')} "
            f"({hardware.get('cpu_cores')} cores).",
            latency_table(latencies),
        ]
    )


def render_comparison(doc: dict[str, Any]) -> str:
    sections = [
        _header(doc),
        _accuracy(doc),
        _mcnemar(doc),
        _agreement(doc),
        _per_class_table(doc),
        _confusions(doc),
        _latency(doc),
    ]
    return "\n\n".join(sections) + "\n"


def write_comparison(comparison: Comparison, out_dir: Path) -> Path:
    """Writes `report.md`, the confusion-matrix figure and `compare.json` into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_confusions_side_by_side(
        [comparison.a.confusion, comparison.b.confusion],
        comparison.a.class_names,
        comparison.names,
        out_dir / CONFUSIONS_PNG,
    )
    document = comparison_document(comparison, {"confusion_matrices": CONFUSIONS_PNG})
    write_json(out_dir / JSON_FILE, document)
    return write_text(out_dir / REPORT_FILE, render_comparison(jsonable(document)))
