"""Turns a load-test run folder (`tests/load/run.py`'s output) into docs: the figures per scenario
and charts drawn from locust's per-second CSV history and the served-version counts.

    python -m bench.loadtest_report --run runs/loadtest/<time> --out docs --name loadtest
        [--rollout-events rollout.json ...] (rollouts' `status --json`, to mark their steps)
        [--sweep RUN ...]                   (runs at other numbers of users, one line each)

Writes `docs/<name>.md` and `docs/<name>/*.png`.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("nan")


def stats_table(run: Path) -> list[str]:
    lines = [
        "| scenario | requests | failures | req/s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in _rows(run / "locust_stats.csv"):
        name = row["Name"] if row["Name"] != "Aggregated" else "**all**"
        lines.append(
            f"| {name} | {int(row['Request Count']):,} | {int(row['Failure Count']):,} | "
            f"{_float(row['Requests/s']):.1f} | {row['50%']} | {row['95%']} | {row['99%']} | "
            f"{_float(row['Max Response Time']):.0f} |"
        )
    return lines


def served_table(run: Path) -> list[str]:
    lines = ["| scenario | version | arm | calls |", "|---|---:|---|---:|"]
    for row in _rows(run / "locust_served.csv"):
        lines.append(
            f"| {row['scenario']} | {row['version']} | {row['arm'] or '—'} | "
            f"{int(row['calls']):,} |"
        )
    return lines


def sweep_table(runs: list[Path]) -> list[str]:
    """One line per run (all requests together), by the number of users it ran."""
    lines = [
        "| users | requests | failures | req/s | p50 ms | p95 ms | p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    measured = []
    for run in runs:
        total = next(r for r in _rows(run / "locust_stats.csv") if r["Name"] == "Aggregated")
        users = max(int(_float(r["User Count"])) for r in _history(run))
        measured.append((users, total))
    for users, total in sorted(measured, key=lambda pair: pair[0]):
        lines.append(
            f"| {users} | {int(total['Request Count']):,} | {int(total['Failure Count']):,} | "
            f"{_float(total['Requests/s']):.1f} | {total['50%']} | {total['95%']} | "
            f"{total['99%']} |"
        )
    return lines


def _history(run: Path) -> list[dict[str, str]]:
    return [r for r in _rows(run / "locust_stats_history.csv") if r["Name"] == "Aggregated"]


def charts(run: Path, out: Path, steps: list[tuple[float, str]]) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    history = _history(run)
    start = _float(history[0]["Timestamp"]) if history else 0.0
    t = [_float(r["Timestamp"]) - start for r in history]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    top.plot(t, [_float(r["Requests/s"]) for r in history], label="requests/s")
    top.plot(t, [_float(r["Failures/s"]) for r in history], label="failures/s", color="red")
    top.set_ylabel("per second")
    top.legend(loc="lower right")
    twin = top.twinx()
    twin.plot(t, [_float(r["User Count"]) for r in history], color="grey", linestyle=":")
    twin.set_ylabel("users", color="grey")
    for key in ("50%", "95%", "99%"):
        bottom.plot(t, [_float(r[key]) for r in history], label=f"p{key[:-1]}")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds since start")
    bottom.legend(loc="upper right")
    for at, label in steps:
        for axis in (top, bottom):
            axis.axvline(at - start, color="purple", alpha=0.3)
        top.text(at - start, top.get_ylim()[1] * 0.95, label, rotation=90, fontsize=7, va="top")
    fig.suptitle("Locust run: throughput, failures and latency over time")
    fig.tight_layout()
    fig.savefig(out / "locust-history.png", dpi=110)
    plt.close(fig)
    pictures = ["locust-history.png"]
    served = _rows(run / "locust_served_history.csv")
    if served:
        pictures.append(_served_chart(served, start, out, steps))
    return pictures


SMOOTHING_S = 5.0


def _served_chart(
    served: list[dict[str, str]], start: float, out: Path, steps: list[tuple[float, str]]
) -> str:
    """Calls per second by version (and arm), over time: through the experiment above, by
    label below; rates over `SMOOTHING_S` windows."""
    panels: dict[str, dict[str, dict[float, float]]] = {
        "Classify experiment": defaultdict(dict),
        "labels": defaultdict(dict),
    }
    for row in served:
        scenario = row["scenario"]
        if scenario == "Classify experiment":
            series = f"v{row['version']} ({row['arm']} arm)"
            totals = panels[scenario]
        elif scenario in ("Classify label stable", "Classify label canary"):
            series = f"{scenario.removeprefix('Classify label ')}: v{row['version']}"
            totals = panels["labels"]
        else:
            continue
        at = float(row["time"])
        totals[series][at] = totals[series].get(at, 0) + float(row["calls_so_far"])
    fig, axes = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    titles = ("through the experiment (by arm)", "by label")
    for ax, totals, title in zip(axes, panels.values(), titles, strict=True):
        for series, points in sorted(totals.items()):
            times = sorted(points)
            xs, rates = [times[0] - start], [0.0]
            last = times[0]
            for at in times[1:]:
                if at - last >= SMOOTHING_S:
                    xs.append(at - start)
                    rates.append((points[at] - points[last]) / (at - last))
                    last = at
            ax.plot(xs, rates, label=series)
        ax.set_ylabel("calls/s")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        for at, _label in steps:
            ax.axvline(at - start, color="purple", alpha=0.3)
    for at, label in steps:
        axes[0].text(
            at - start, axes[0].get_ylim()[1] * 0.98, label, rotation=90, fontsize=7, va="top"
        )
    axes[-1].set_xlabel("seconds since start")
    fig.suptitle(f"Who served the calls: version per second ({SMOOTHING_S:g} s windows)")
    fig.tight_layout()
    fig.savefig(out / "served-versions.png", dpi=110)
    plt.close(fig)
    return "served-versions.png"


def rollout_steps(paths: list[Path]) -> list[tuple[float, str]]:
    """Marks for the charts: each rollout's weight changes and its outcome."""
    marks = []
    for path in paths:
        for event in json.loads(path.read_text())["history"]:
            at = datetime.fromisoformat(event["time"]).timestamp()
            who = f"v{event['version']}"
            if event["event"] == "weights" and not event.get("restarted"):
                shadow = " +shadow" if event["shadow"] else ""
                marks.append((at, f"{who} canary {event['canary']:g}%{shadow}"))
            elif event["event"] in ("promoted", "rolled_back", "rejected"):
                marks.append((at, f"{who} {event['event']}"))
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--name", default="loadtest")
    parser.add_argument("--title", default="Load test")
    parser.add_argument("--intro", default="")
    parser.add_argument("--rollout-events", type=Path, nargs="*", default=[])
    parser.add_argument("--sweep", type=Path, nargs="*", default=[], help="runs at other loads")
    args = parser.parse_args()
    pictures = charts(args.run, args.out / args.name, rollout_steps(args.rollout_events))
    lines = [
        f"# {args.title}",
        "",
        args.intro,
        "",
        "## Figures",
        "",
        *stats_table(args.run),
        "",
        *(
            ["## The same mix at other numbers of users", "", *sweep_table(args.sweep), ""]
            if args.sweep
            else []
        ),
        "## Who served the calls",
        "",
        *served_table(args.run),
        "",
        "## Charts",
        "",
    ]
    lines += [f"![{p}]({args.name}/{p})" for p in pictures]
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print(args.out / f"{args.name}.md")


if __name__ == "__main__":
    main()
