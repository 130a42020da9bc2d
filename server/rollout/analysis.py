"""Judges one rollout step from the experiment's reports: waiting, passed or failed, and why.

Figures, each against its threshold:
- `requests`: calls the canary (in the shadow step, the shadow) answered in the step;
- `duration_s`: how long the step has lasted;
- `error_rate`: those calls that failed for the server's reasons (UNAVAILABLE, INTERNAL,
  DEADLINE_EXCEEDED, UNKNOWN...; a caller's bad image is not the version's fault);
- `p99_ratio`: their p99 latency over the stable arm's (the stable arm's in the step, or since
  the rollout started when the step has too few stable calls, e.g. at 100%);
- `agreement` (shadow step): how often the shadow's top class is the stable answer's;
- `verdict`: the experiment's sequential verdict on ground truth; fails when it names the stable
  arm better (it stays valid however often it is read, so every poll may look at it).

A step fails as soon as a check fails with enough data to say so: the error rate is judged once
the failures alone put it over the threshold at `min_requests`; latency and agreement once the
step has its `min_requests`. It passes when it has lasted `min_duration_s`, has `min_requests`,
and every check holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from imgclf_client import ArmReport, ExperimentReport, ShadowReport

from server.rollout.plan import SHADOW, Step, Thresholds

WAITING, PASSED, FAILED = "waiting", "passed", "failed"
SERVER_FAULTS = frozenset(
    {"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "UNKNOWN", "DATA_LOSS", "ABORTED"}
)
MIN_REFERENCE_CALLS = 20
SHADOW_ARM = "candidate"


@dataclass(frozen=True)
class Figure:
    name: str
    value: float | str | None
    threshold: str
    ok: bool | None  # None: not enough data to judge yet


@dataclass(frozen=True)
class StepAnalysis:
    status: str
    figures: tuple[Figure, ...]
    reason: str

    def figure(self, name: str) -> Figure | None:
        return next((f for f in self.figures if f.name == name), None)


def _arm(report: ExperimentReport, name: str) -> ArmReport | None:
    return next((a for a in report.arms if a.name == name), None)


def _shadow(report: ExperimentReport) -> ShadowReport | None:
    return next((s for s in report.shadows if s.name == SHADOW_ARM), None)


def _faults(errors: dict[str, int]) -> int:
    return sum(count for code, count in errors.items() if code in SERVER_FAULTS)


def _reference_p99(window: ExperimentReport, whole: ExperimentReport, stable: str) -> float:
    for report in (window, whole):
        arm = _arm(report, stable)
        if arm is not None and arm.requests - sum(arm.errors.values()) >= MIN_REFERENCE_CALLS:
            return arm.latency.p99_ms
    return math.nan


def analyse(
    step: Step,
    thresholds: Thresholds,
    window: ExperimentReport,
    whole: ExperimentReport,
    *,
    elapsed_s: float,
    stable: str = "stable",
    canary: str = "canary",
) -> StepAnalysis:
    """The step's status from its window's report and the report since the rollout started."""
    figures: list[Figure] = []
    failures: list[str] = []
    if step.kind == SHADOW:
        shadow = _shadow(window)
        requests = shadow.requests if shadow else 0
        errors = _faults(shadow.errors) if shadow else 0
        p99 = shadow.latency.p99_ms if shadow else math.nan
    else:
        arm = _arm(window, canary)
        requests = arm.requests if arm else 0
        errors = _faults(arm.errors) if arm else 0
        p99 = arm.latency.p99_ms if arm else math.nan
    enough = requests >= step.min_requests
    figures.append(Figure("requests", requests, f">= {step.min_requests}", enough))
    long_enough = elapsed_s >= step.min_duration_s
    figures.append(
        Figure("duration_s", round(elapsed_s, 1), f">= {step.min_duration_s:g}", long_enough)
    )

    rate = errors / requests if requests else math.nan
    doomed = errors > thresholds.max_error_rate * max(requests, step.min_requests)
    error_ok = None if not (enough or doomed) else not doomed and rate <= thresholds.max_error_rate
    figures.append(Figure("error_rate", rate, f"<= {thresholds.max_error_rate:g}", error_ok))
    if error_ok is False:
        failures.append(f"error rate {rate:.2%} over {thresholds.max_error_rate:.2%}")

    reference = _reference_p99(window, whole, stable)
    ratio = p99 / reference if reference and not math.isnan(reference) else math.nan
    ratio_ok = None if not enough or math.isnan(ratio) else ratio <= thresholds.max_p99_ratio
    figures.append(Figure("p99_ratio", ratio, f"<= {thresholds.max_p99_ratio:g}", ratio_ok))
    if ratio_ok is False:
        failures.append(f"p99 {p99:.1f} ms is {ratio:.2f}x stable's {reference:.1f} ms")

    if step.kind == SHADOW:
        shadow = _shadow(window)
        agreement = shadow.agreement if shadow and shadow.pairs else math.nan
        agree_ok = (
            None if not enough or math.isnan(agreement) else (agreement >= thresholds.min_agreement)
        )
        figures.append(Figure("agreement", agreement, f">= {thresholds.min_agreement:g}", agree_ok))
        if agree_ok is False:
            failures.append(
                f"agreement with stable {agreement:.1%} under {thresholds.min_agreement:.0%}"
            )

    if thresholds.verdict:
        verdict = whole.verdict
        stable_better = verdict.outcome == "WINNER" and verdict.winner == stable
        shown = verdict.outcome + (f" ({verdict.winner})" if verdict.winner else "")
        figures.append(Figure("verdict", shown, f"not WINNER ({stable})", not stable_better))
        if stable_better:
            failures.append(f"the verdict names {stable} better: {verdict.summary}")

    if failures:
        return StepAnalysis(FAILED, tuple(figures), "; ".join(failures))
    if enough and long_enough and all(f.ok is not False for f in figures):
        return StepAnalysis(PASSED, tuple(figures), f"{step.describe()} passed")
    waiting = [f"{f.name} {f.value} (needs {f.threshold})" for f in figures if f.ok is False]
    return StepAnalysis(WAITING, tuple(figures), "waiting for " + ", ".join(waiting or ["data"]))
