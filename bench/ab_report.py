"""Writes docs/ab-cnn-vs-xception.md and its pictures from what `bench.ab_run` measured:

    python -m bench.ab_report --run docs/ab/ab-run.json --model-root models --out docs

Every figure comes from the gateway's own reports (`GetExperimentReport`) or from the answers and
store rows the run recorded; the training records of both model versions say how they were made.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.ab_run import AB, SHADOWED
from common.serving_contract import TRAINING_RECORD_FILE

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")  # fmt: skip
DOC = "ab-cnn-vs-xception.md"
PICTURES = "ab"


def _pct(value: float | None) -> str:
    return (
        "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2%}"
    )


def _interval(pair: list[float | None]) -> str:
    low, high = pair
    return "—" if low is None or high is None else f"[{low:.2%}, {high:.2%}]"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def training_record(model_root: Path, model: str, version: int) -> dict[str, Any]:
    path = model_root / model / str(version) / TRAINING_RECORD_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def per_class(answers: list[dict[str, Any]], arm: str) -> list[tuple[int, int]]:
    """(correct, total) per class for the calls one arm served."""
    totals, correct = Counter[int](), Counter[int]()
    for answer in answers:
        if answer.get("arm") == arm:
            totals[answer["label"]] += 1
            correct[answer["label"]] += answer["predicted"] == answer["label"]
    return [(correct[c], totals[c]) for c in range(len(CLASSES))]


def paired_per_class(rows: list[dict[str, Any]]) -> dict[str, list[tuple[int, int]]]:
    """(correct, total) per class for the primary (CNN) and the shadow (Xception) answers."""
    out: dict[str, list[tuple[int, int]]] = {}
    for role in ("primary", "shadow"):
        totals, correct = Counter[int](), Counter[int]()
        for row in rows:
            if row["role"] == role and row["status"] == "OK" and row["label"] is not None:
                totals[row["label"]] += 1
                correct[row["label"]] += row["predicted"] == row["label"]
        out[role] = [(correct[c], totals[c]) for c in range(len(CLASSES))]
    return out


def _accuracy_picture(arms: list[dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    names = [a["name"] for a in arms]
    values = [a["accuracy"] * 100 for a in arms]
    lows = [(a["accuracy"] - a["accuracy_interval"][0]) * 100 for a in arms]
    highs = [(a["accuracy_interval"][1] - a["accuracy"]) * 100 for a in arms]
    ax.bar(names, values, yerr=[lows, highs], capsize=8, color=["#4c72b0", "#dd8452"])
    for index, value in enumerate(values):
        ax.text(index, value + 2, f"{value:.1f}%", ha="center")
    ax.set_ylabel("accuracy on feedback (%), 95% CI")
    ax.set_ylim(0, 105)
    ax.set_title("A/B split: accuracy per arm")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _verdict_picture(path_points: list[dict[str, Any]], alpha: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    xs = [p["feedbacks"] for p in path_points]
    ys = [max(p["p_value"], 1e-300) for p in path_points]
    ax.semilogy(xs, ys, label="always-valid p-value (mSPRT)")
    ax.axhline(alpha, color="red", linestyle="--", label=f"alpha = {alpha:g}")
    ax.set_xlabel("feedbacks received (both arms)")
    ax.set_ylabel("p-value")
    ax.set_title("The verdict as read every 100 feedbacks")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _per_class_picture(first: list[tuple[int, int]], second: list[tuple[int, int]],
                       labels: tuple[str, str], title: str, path: Path) -> None:  # fmt: skip
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.4
    for offset, counts, label in ((-width / 2, first, labels[0]), (width / 2, second, labels[1])):
        values = [100 * c / t if t else 0 for c, t in counts]
        ax.bar([i + offset for i in range(len(CLASSES))], values, width, label=label)
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=30)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _class_table(first: list[tuple[int, int]], second: list[tuple[int, int]],
                 names: tuple[str, str]) -> list[str]:  # fmt: skip
    lines = [
        f"| class | {names[0]} | {names[1]} | delta ({names[1]} - {names[0]}) |",
        "|---|---:|---:|---:|",
    ]
    for index, name in enumerate(CLASSES):
        (ca, ta), (cb, tb) = first[index], second[index]
        a, b = (ca / ta if ta else math.nan), (cb / tb if tb else math.nan)
        lines.append(
            f"| {name} | {_pct(a)} (n={ta}) | {_pct(b)} (n={tb}) | {(b - a) * 100:+.1f} pts |"
        )
    return lines


def _share(shadow: dict[str, Any], key: str) -> float | None:
    pairs = shadow["paired_feedback"]
    return shadow[key] / pairs if pairs else None


def _model_line(name: str, version: int, record: dict[str, Any]) -> str:
    metrics = record.get("metrics", {})
    accuracy = metrics.get("test_accuracy")
    command = record.get("command") or record.get("argv")
    parts = [f"**{name}** version {version}"]
    if accuracy is not None:
        parts.append(f"test accuracy at training time {accuracy:.2%}")
    if command:
        parts.append(f"trained with `{command if isinstance(command, str) else ' '.join(command)}`")
    return "- " + "; ".join(parts)


def write(run: dict[str, Any], model_root: Path, out: Path, xception_note: str) -> Path:
    pictures = out / PICTURES
    pictures.mkdir(parents=True, exist_ok=True)
    setup = run["setup"]
    ab, shadowed = run[AB], run[SHADOWED]
    report, paired_report = ab["report"], shadowed["report"]
    arms = report["arms"]
    verdict = report["verdict"]
    _accuracy_picture(arms, pictures / "accuracy.png")
    _verdict_picture(ab["verdict_path"], verdict["alpha"], pictures / "verdict-path.png")
    cnn_classes, xception_classes = (
        per_class(ab["answers"], "cnn"),
        per_class(ab["answers"], "xception"),
    )
    _per_class_picture(cnn_classes, xception_classes, ("cnn arm", "xception arm"),
                       "A/B split: accuracy per class", pictures / "per-class-ab.png")  # fmt: skip
    paired = paired_per_class(shadowed["rows"])
    _per_class_picture(paired["primary"], paired["shadow"], ("cnn (primary)", "xception (shadow)"),
                       "Same images, both models: accuracy per class",
                       pictures / "per-class-paired.png")  # fmt: skip
    decided = next((p for p in ab["verdict_path"] if p["outcome"] == "WINNER"), None)
    (shadow,) = paired_report["shadows"]
    primary = next(a for a in paired_report["arms"] if a["name"] == "cnn")
    cnn_record = training_record(model_root, "cnn", setup["cnn_version"])
    xception_record = training_record(model_root, "xception", setup["xception_version"])
    lines = [
        "# CNN vs Xception: an A/B experiment through the gateway",
        "",
        f"The {setup['images']:,} CIFAR-10 test images, sent as PNG through the real gateway "
        "(SQLite experiment store) and the local model host, as two experiments; the test "
        "labels came back as `Feedback` right after every answer. Written by "
        f"`python -m bench.ab_run --cnn-version {setup['cnn_version']} --xception-version "
        f"{setup['xception_version']}` then `python -m bench.ab_report` "
        f"({setup['concurrency']} calls in flight).",
        "",
        "## The models",
        "",
        _model_line("cnn", setup["cnn_version"], cnn_record),
        _model_line("xception", setup["xception_version"], xception_record),
        "",
        xception_note,
        "",
        "## A/B split (`cnn-vs-xception`, 50/50, sticky by a routing key per image)",
        "",
        "| arm | calls | feedback | accuracy [95% CI] | p50 ms | p95 ms | p99 ms | confidence |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for arm in arms:
        latency = arm["latency"]
        lines.append(
            f"| {arm['name']} | {arm['requests']:,} | {arm['feedback']:,} | "
            f"{_pct(arm['accuracy'])} {_interval(arm['accuracy_interval'])} | "
            f"{_ms(latency['p50_ms'])} | "
            f"{_ms(latency['p95_ms'])} | {_ms(latency['p99_ms'])} | {arm['mean_confidence']:.3f} |"
        )
    lines += [
        "",
        "Latency is the gateway's own, per call (decode, queue, backend), from its report.",
        "",
        "![accuracy per arm](ab/accuracy.png)",
        "",
        f"**Verdict: {verdict['outcome']}**"
        + (f" — `{verdict['winner']}`" if verdict["winner"] else "")
        + f". {verdict['summary']}",
        "",
        f"Test: {verdict['test']}; alpha {verdict['alpha']:g}, mixture sd "
        f"{verdict['mixture_sd']:g}, min samples {verdict['min_samples']} per arm. The verdict "
        f"was read after every {setup['read_every']} feedbacks, as a rollout tool polls it; "
        + (
            f"it first named a winner after {decided['feedbacks']:,} feedbacks and, its p-value "
            "being valid at every read, kept it."
            if decided
            else "it never named a winner."
        ),
        "",
        "![p-value path](ab/verdict-path.png)",
        "",
        "Accuracy per class, each arm on the images it served:",
        "",
        *_class_table(cnn_classes, xception_classes, ("cnn", "xception")),
        "",
        "![per class, A/B](ab/per-class-ab.png)",
        "",
        "## Both models on the same images (`cnn-shadowed-by-xception`)",
        "",
        "Every call served by the CNN, the Xception answering a copy of each as a shadow arm "
        "(sample rate 1, off the caller's path). The pairs give the paired comparison the split "
        "cannot.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| calls (primary CNN) | {primary['requests']:,} |",
        f"| shadow answers | {shadow['requests']:,} (errors: {shadow['errors'] or 'none'}) |",
        f"| agreement (same top class) | {_pct(shadow['agreement'])} "
        f"{_interval(shadow['agreement_interval'])} over {shadow['pairs']:,} pairs |",
        f"| CNN accuracy on the pairs with feedback | {_pct(_share(shadow, 'primary_correct'))} |",
        f"| Xception accuracy on the same pairs | {_pct(_share(shadow, 'shadow_correct'))} |",
        "| paired accuracy difference (Xception - CNN) | "
        f"{shadow['accuracy_difference'] * 100:+.2f} pts |",
        f"| McNemar: b (CNN right, Xception wrong) / c (the reverse) | "
        f"{shadow['mcnemar_b']:,} / {shadow['mcnemar_c']:,} |",
        f"| McNemar exact two-sided p | {shadow['mcnemar_p']:.3g} |",
        f"| shadow latency p50 / p99 (ms) | {_ms(shadow['latency']['p50_ms'])} / "
        f"{_ms(shadow['latency']['p99_ms'])} |",
        "",
        f"{primary['requests'] - shadow['requests']:,} of the {primary['requests']:,} copies "
        "were dropped when the shadow queue was full (the Xception costs the CPU several times "
        "what the CNN does, and the callers do not wait for it): bounded shadow work, as "
        'designed, counted in `imgclf_gateway_shadow_requests_total{outcome="dropped"}`. '
        f"This part ran with {setup.get('shadow_concurrency', '?')} calls in flight.",
        "",
        *_class_table(paired["primary"], paired["shadow"], ("cnn", "xception")),
        "",
        "![per class, paired](ab/per-class-paired.png)",
        "",
    ]
    document = out / DOC
    document.write_text("\n".join(lines))
    summary = {
        "setup": setup,
        AB: {"report": report, "verdict_path": ab["verdict_path"]},
        SHADOWED: {"report": paired_report},
    }
    (pictures / "ab-summary.json").write_text(json.dumps(summary, indent=1))
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("docs/ab/ab-run.json"))
    parser.add_argument("--model-root", type=Path, default=Path("models"))
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--xception-note", default="", help="how the Xception was trained")
    args = parser.parse_args()
    run = json.loads(args.run.read_text())
    print(write(run, args.model_root, args.out, args.xception_note))


if __name__ == "__main__":
    main()
