"""Draws one rollout, from `python -m server.rollout status --json`: the weights over time and
every analysis figure against its threshold over time, and writes docs/rollout.md.

    python -m bench.rollout_report --status rollout.json --out docs [--name rollout] \
        [--title "..."] [--intro "..."] [--load "markdown"]

Writes `docs/<name>.md` and `docs/<name>/rollout-timeline.png`.
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

FIGURES = ("requests", "error_rate", "p99_ratio", "agreement")


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["time"]).timestamp()


def draw(status: dict[str, Any], out: Path) -> None:
    """The weights step by step, then each analysis figure against its threshold."""
    history = status["history"]
    start = _at(history[0])
    weights = [e for e in history if e["event"] == "weights"]
    analyses = [e for e in history if e["event"] == "analysis"]
    fig, axes = plt.subplots(1 + len(FIGURES), 1, figsize=(8, 9), sharex=True)
    times = [_at(e) - start for e in weights]
    end = _at(history[-1]) - start
    axes[0].step(
        [*times, end],
        [*[e["canary"] for e in weights], weights[-1]["canary"]],
        where="post",
        label="canary weight (%)",
    )
    axes[0].step(
        [*times, end],
        [*[e["stable"] for e in weights], weights[-1]["stable"]],
        where="post",
        label="stable weight (%)",
    )
    shadow = [e for e in weights if e["shadow"]]
    if shadow:
        axes[0].axvspan(
            _at(shadow[0]) - start,
            times[weights.index(shadow[-1]) + 1]
            if weights.index(shadow[-1]) + 1 < len(times)
            else end,
            color="orange",
            alpha=0.15,
            label="shadow copies",
        )
    axes[0].set_ylabel("weight")
    axes[0].legend(fontsize=7, loc="center right")
    for axis, name in zip(axes[1:], FIGURES, strict=True):
        points = [(_at(e) - start, e["figures"].get(name)) for e in analyses]
        xs = [x for x, f in points if f and isinstance(f.get("value"), int | float)]
        ys = [f["value"] for _, f in points if f and isinstance(f.get("value"), int | float)]
        axis.plot(xs, ys, marker=".", linestyle="-", label=name)
        thresholds = {f["threshold"] for _, f in points if f}
        for threshold in thresholds:
            bound = float(threshold.split()[-1])
            if name != "requests":
                axis.axhline(bound, color="red", linestyle="--", alpha=0.6, label=threshold)
        axis.set_ylabel(name)
        axis.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel("seconds since the rollout started")
    fig.suptitle(
        f"Rollout {status['id']}: {status['model']} version {status['version']}, {status['state']}"
    )
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "rollout-timeline.png", dpi=110)
    plt.close(fig)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.4g}"
    return "—" if value is None else str(value)


def steps_table(status: dict[str, Any]) -> list[str]:
    lines = ["| step | status | figures (value vs threshold) |", "|---|---|---|"]
    last: dict[int, dict[str, Any]] = {}
    for event in status["history"]:
        if event["event"] == "analysis":
            last[event["step"]] = event
    for index, name in enumerate(status["steps"]):
        event = last.get(index)
        if event is None:
            continue
        figures = "; ".join(
            f"{k} {_value(f['value'])} ({f['threshold']})" for k, f in event["figures"].items()
        )
        lines.append(f"| {index + 1}. {name} | {event['status']} | {figures} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--status", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--name", default="rollout")
    parser.add_argument("--title", default="One real rollout")
    parser.add_argument("--intro", default="")
    parser.add_argument("--load", default="", help="markdown of the load run during the rollout")
    args = parser.parse_args()
    status = json.loads(args.status.read_text())
    draw(status, args.out / args.name)
    history = status["history"]
    lines = [
        f"# {args.title}",
        "",
        args.intro,
        "",
        f"Rollout {status['id']}: `{status['model']}` version {status['version']}, plan "
        f"{' -> '.join(status['steps'])} -> promote; final state **{status['state']}** "
        f"({status['detail']}).",
        "",
        f"![rollout timeline]({args.name}/rollout-timeline.png)",
        "",
        "The last analysis of each step:",
        "",
        *steps_table(status),
        "",
        "The events, as the tool printed them (analysis lines left out):",
        "",
        "```",
        *[
            json.dumps({k: v for k, v in e.items() if k not in ("rollout", "model")})
            for e in history
            if e["event"] != "analysis"
        ],
        "```",
        "",
        args.load,
    ]
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print(args.out / f"{args.name}.md")


if __name__ == "__main__":
    main()
