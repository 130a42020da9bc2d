"""The faults benchmark's trials, figures and report: what each kill or freeze measured, their
medians and maxima, and the Markdown of docs/faults.md (`bench.faults` measures)."""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.manifest import Manifest

POLL_S = 0.02
FAST_S = 0.25
"""A Classify answer within this is a fail-fast one (the breaker), not a call that hung..."""
FAST_RUN = 10
"""...when this many calls in a row are answered so."""
SETTINGS_SHOWN = (
    "readiness_interval_s",
    "readiness_timeout_s",
    "backend_timeout_s",
    "breaker_failures",
    "breaker_open_s",
    "default_timeout_s",
)


@dataclass
class Poll:
    """How long until a condition held (None: not within its cap) and what was seen first."""

    seconds: float | None
    seen: dict[str, int] = field(default_factory=dict)
    """Answers before and including the one that met the condition, by status code."""
    slowest_s: float = 0.0


@dataclass
class KillTrial:
    not_serving: Poll
    classify_unavailable: Poll
    host_answers: Poll
    """Restart to the model host answering Predict itself (its own start)."""
    serving: Poll
    classify_ok: Poll


@dataclass
class Call:
    sent_s: float
    seconds: float
    code: str


@dataclass
class FreezeTrial:
    not_serving: Poll
    calls: list[Call]
    serving: Poll
    classify_ok: Poll

    def first_unavailable_s(self) -> float | None:
        """When (since the freeze) the first call was answered UNAVAILABLE."""
        ends = [c.sent_s + c.seconds for c in self.calls if c.code == "UNAVAILABLE"]
        return round(min(ends), 4) if ends else None

    def fail_fast_from_s(self) -> float | None:
        """When (since the freeze) calls started failing fast: the sending time of the first of
        FAST_RUN calls in a row each answered UNAVAILABLE within FAST_S (calls queued behind a
        batch that times out also fail together, but not for that long)."""
        run: list[Call] = []
        for call in sorted(self.calls, key=lambda c: c.sent_s):
            fast = call.code == "UNAVAILABLE" and call.seconds <= FAST_S
            run = [*run, call] if fast else []
            if len(run) >= FAST_RUN:
                return run[0].sent_s
        return None

    def longest_s(self) -> float | None:
        return max((c.seconds for c in self.calls), default=None)

    def held_over_1s(self) -> int:
        return sum(c.seconds > 1.0 for c in self.calls)


def seconds_shown(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.3f} s"


@dataclass
class Figure:
    name: str
    median_s: float | None
    max_s: float | None
    min_s: float | None
    reached: int
    repeats: int
    values_s: list[float | None]


def figure(name: str, values: list[float | None]) -> Figure:
    found = [v for v in values if v is not None]
    return Figure(
        name=name,
        median_s=round(statistics.median(found), 4) if found else None,
        max_s=max(found) if found else None,
        min_s=min(found) if found else None,
        reached=len(found),
        repeats=len(values),
        values_s=values,
    )


def _lag(after: Poll, before: Poll) -> float | None:
    if after.seconds is None or before.seconds is None:
        return None
    return round(after.seconds - before.seconds, 4)


def _sum_seen(polls: list[Poll]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for one in polls:
        total.update(one.seen)
    return dict(sorted(total.items()))


KILL_FIGURES: dict[str, Callable[[KillTrial], float | None]] = {
    "kill → health NOT_SERVING": lambda k: k.not_serving.seconds,
    "kill → Classify answers UNAVAILABLE": lambda k: k.classify_unavailable.seconds,
    "restart → model host answers Predict (its own start)": lambda k: k.host_answers.seconds,
    "restart → health SERVING": lambda k: k.serving.seconds,
    "restart → first successful Classify": lambda k: k.classify_ok.seconds,
    "host answers → health SERVING (the gateway's lag)": lambda k: _lag(k.serving, k.host_answers),
    "host answers → first successful Classify": lambda k: _lag(k.classify_ok, k.host_answers),
}
FREEZE_FIGURES: dict[str, Callable[[FreezeTrial], float | None]] = {
    "freeze → health NOT_SERVING": lambda f: f.not_serving.seconds,
    "freeze → first Classify answered UNAVAILABLE": FreezeTrial.first_unavailable_s,
    "longest Classify call while frozen": FreezeTrial.longest_s,
    "freeze → Classify fails fast (the circuit breaker)": FreezeTrial.fail_fast_from_s,
    "thaw → health SERVING": lambda f: f.serving.seconds,
    "thaw → first successful Classify": lambda f: f.classify_ok.seconds,
}


@dataclass
class FaultsReport:
    date: str
    command: str
    machine: str
    model: str
    settings: dict[str, Any]
    repeats: int
    kill: list[Figure]
    freeze: list[Figure]
    answers: dict[str, dict[str, int]]
    """Classify answers by status code in each phase, summed over the repeats."""
    frozen_calls: int
    frozen_held_over_1s: int
    host_crashes: list[str]
    """Model hosts that died by themselves (trials left out and run again)."""
    breaker_opened: int
    """How often the gateway logged its circuit breaker opening, over the whole run."""
    kill_trials: list[KillTrial]
    freeze_trials: list[FreezeTrial]


def summarise(
    args: argparse.Namespace,
    manifest: Manifest,
    settings: dict[str, Any],
    kills: list[KillTrial],
    freezes: list[FreezeTrial],
    breaker_opened: int,
    host_crashes: list[str],
) -> FaultsReport:
    kill_figures = [figure(name, [of(k) for k in kills]) for name, of in KILL_FIGURES.items()]
    freeze_figures = [figure(name, [of(f) for f in freezes]) for name, of in FREEZE_FIGURES.items()]
    frozen_codes: Counter[str] = Counter(c.code for f in freezes for c in f.calls)
    answers = {
        "after the kill, until UNAVAILABLE": _sum_seen([k.classify_unavailable for k in kills]),
        "after the restart, until OK": _sum_seen([k.classify_ok for k in kills]),
        "while frozen": dict(sorted(frozen_codes.items())),
        "after the thaw, until OK": _sum_seen([f.classify_ok for f in freezes]),
    }
    machine = manifest.machine
    return FaultsReport(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command="python -m bench.faults " + " ".join(shlex.quote(x) for x in sys.argv[1:]),
        machine=f"{machine.get('cpu', '?')}, {machine.get('cpu_cores', '?')} cores",
        model=manifest.model.describe(),
        settings={
            **settings,
            "poll_interval_s": POLL_S,
            "caller_deadline_s": args.deadline,
            "freeze_seconds": args.freeze_seconds,
            "freeze_call_interval_s": args.freeze_call_interval,
        },
        repeats=args.repeats,
        kill=kill_figures,
        freeze=freeze_figures,
        answers=answers,
        frozen_calls=sum(len(f.calls) for f in freezes),
        frozen_held_over_1s=sum(f.held_over_1s() for f in freezes),
        breaker_opened=breaker_opened,
        host_crashes=host_crashes,
        kill_trials=kills,
        freeze_trials=freezes,
    )


def _cell(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.3f}"


def _table(figures: list[Figure]) -> list[str]:
    lines = [
        "| Figure | Median (s) | Max (s) | Min (s) | Reached |",
        "|---|---:|---:|---:|---:|",
    ]
    for f in figures:
        lines.append(
            f"| {f.name} | {_cell(f.median_s)} | {_cell(f.max_s)} | {_cell(f.min_s)} "
            f"| {f.reached}/{f.repeats} |"
        )
    return lines


def _crashes(report: FaultsReport) -> list[str]:
    if not report.host_crashes:
        return []
    codes = Counter(crash.rsplit(" ", 1)[-1] for crash in report.host_crashes)
    return [
        f"The model host died by itself {len(report.host_crashes)} time(s) (exit code: "
        + ", ".join(f"{code} x{n}" for code, n in codes.items())
        + "; -11 is SIGSEGV). A kill trial whose restarted host died is left out and run "
        "again (up to twice the repeats in all), so the kill figures are of restarts that "
        "stayed up.",
        "",
    ]


def render(report: FaultsReport) -> str:
    s = report.settings
    answers = [
        f"| {phase} | " + (", ".join(f"{code} {n:,}" for code, n in codes.items()) or "—") + " |"
        for phase, codes in report.answers.items()
    ]
    lines = [
        "# Faults: a killed and a frozen backend, as the gateway's callers see them",
        "",
        f"Generated by `{report.command}` on {report.date} (`make faults`; `bench/faults.py`).",
        f"{report.repeats} repeats of each fault; times in seconds from the signal.",
        "",
        "## Backend killed (SIGKILL), then restarted on the same port",
        "",
        *_table(report.kill),
        "",
        "## Backend frozen (SIGSTOP), then thawed (SIGCONT)",
        "",
        f"A Classify call (caller deadline {s['caller_deadline_s']:g} s) starts every "
        f"{s['freeze_call_interval_s']:g} s for the first {s['freeze_seconds']:g} s of the "
        "freeze; the backend is thawed once they have all ended. A call is failing fast when it "
        f"is answered within {FAST_S:g} s.",
        "",
        *_table(report.freeze),
        "",
        f"Calls held over 1 s while frozen: {report.frozen_held_over_1s:,} of "
        f"{report.frozen_calls:,}; `backend_timeout_s` is {s.get('backend_timeout_s', '?')} s. "
        f"The gateway's log shows its circuit breaker opening {report.breaker_opened} time(s) "
        "over the whole run (`circuit open`).",
        "",
        *_crashes(report),
        "## Classify answers by status code (summed over the repeats)",
        "",
        "| Phase | Answers |",
        "|---|---|",
        *answers,
        "",
        "## How it was measured",
        "",
        f"- Machine: {report.machine}; other work may share it. Model: {report.model}.",
        "- Model host (`server.model_host`) and gateway (`bench.gateway_runner`: "
        "serving_config/gateway.toml as deployed, batching on) as real processes on 127.0.0.1; "
        "the gateway's settings that matter here: "
        + ", ".join(f"`{k}` {s[k]:g}" for k in SETTINGS_SHOWN if k in s)
        + ".",
        f'- The health service (grpc.health.v1 `Check`, service "") and Classify are polled '
        f"every {s['poll_interval_s'] * 1e3:g} ms on the gateway's port, one call at a time each; "
        "a figure is the time from the signal to the first answer that met it.",
        "- After a kill the model host starts anew (Python, TensorFlow, the model): the rows "
        '"host answers → ..." are what the gateway adds to that, its readiness check and its '
        "channel reconnecting to the backend. The host is polled (Predict, direct) on a channel "
        "of the benchmark's own that retries every 20 to 100 ms; the polls run side by side, "
        "so a lag can come out a few ms below zero.",
        "- Every trial is in `docs/faults.json`.",
        "",
    ]
    return "\n".join(lines)
