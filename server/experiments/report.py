"""An experiment's report from its prediction log: a pure function of the rows the store returns.

Per primary arm (the arms that answered callers): traffic, errors, latency, served versions,
predicted classes and, where feedback arrived, accuracy with a Wilson interval. Per shadow arm
(copies of primary requests, never answered to callers): traffic, errors, latency, and how it
compares with the primary answer to the same request: agreement, and on requests with feedback
the paired accuracies with McNemar's exact test. On top, the sequential verdict over the primary
arms (`common.statistics.verdict`), which stays valid however often the report is read.

Nothing here does I/O or reads a clock; the caller passes the rows and the time.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from common.statistics import (
    Interval,
    McNemar,
    SequentialTestSettings,
    Verdict,
    mcnemar_from_counts,
    verdict,
    wilson_interval,
)
from server.experiments.records import PredictionRow, Role

OK = "OK"


@dataclass(frozen=True)
class Latency:
    """Latency percentiles in milliseconds over an arm's OK calls (NaN when there are none)."""

    p50: float
    p95: float
    p99: float


@dataclass(frozen=True)
class ArmReport:
    """One primary arm.

    `requests`: rows recorded for it; `errors`: status code name -> count for the calls that were
    not OK; `versions` and `predicted_classes`: OK calls per served version and per top-1 class;
    `mean_confidence`: mean top-1 probability of the OK calls (NaN when none). `feedback`: OK calls
    whose request got a true class, `correct` those the arm got right, `accuracy` their share
    (NaN without feedback) and `accuracy_interval` its 95% Wilson interval.
    """

    name: str
    requests: int
    errors: dict[str, int]
    latency_ms: Latency
    versions: dict[int, int]
    predicted_classes: dict[int, int]
    mean_confidence: float
    feedback: int
    correct: int
    accuracy: float
    accuracy_interval: Interval


@dataclass(frozen=True)
class ShadowReport:
    """One shadow arm, and how it compares with the primary answers to the same requests.

    `pairs`: shadow calls whose request's primary call is recorded, both OK; `agreements` those
    where both predicted the same class, `agreement` their share (NaN without pairs) with its 95%
    Wilson interval. On the pairs whose request got feedback (`paired_feedback`):
    `shadow_correct` and `primary_correct`, McNemar's test (`mcnemar.b`: primary right and shadow
    wrong, `mcnemar.c`: shadow right and primary wrong, `mcnemar.exact_p`), and
    `accuracy_difference` = shadow accuracy - primary accuracy on those pairs (NaN without any).
    """

    name: str
    requests: int
    errors: dict[str, int]
    latency_ms: Latency
    pairs: int
    agreements: int
    agreement: float
    agreement_interval: Interval
    paired_feedback: int
    shadow_correct: int
    primary_correct: int
    mcnemar: McNemar
    accuracy_difference: float


@dataclass(frozen=True)
class ExperimentReport:
    """The whole report.

    `arms` and `shadows` list the named arms first, in the order given, then any arm found in the
    rows but not named (sorted by name), so nothing recorded is hidden. `verdict` is computed
    over the named primary arms only (`arm_names[0]` is the control): an arm no longer in the
    definition neither decides nor holds up the verdict.
    """

    name: str
    generated_at: datetime
    arms: tuple[ArmReport, ...]
    shadows: tuple[ShadowReport, ...]
    verdict: Verdict


def build_report(
    name: str,
    arm_names: Sequence[str],
    shadow_names: Sequence[str],
    rows: Sequence[PredictionRow],
    settings: SequentialTestSettings,
    generated_at: datetime,
) -> ExperimentReport:
    """The report of experiment `name` from all its prediction rows (any order).

    The verdict reads, in `feedback_order`, one outcome per OK primary call of a named arm whose
    request got feedback: right when its predicted class is the true class.
    """
    primary_rows = _by_arm(row for row in rows if row.role == Role.PRIMARY)
    shadow_rows = _by_arm(row for row in rows if row.role == Role.SHADOW)
    # The primary answer to each request (the first one recorded, should a request repeat).
    primary_of: dict[str, PredictionRow] = {}
    for row in rows:
        if row.role == Role.PRIMARY:
            primary_of.setdefault(row.request_id, row)

    arms = tuple(
        _arm_report(arm, primary_rows.get(arm, [])) for arm in _ordered(arm_names, primary_rows)
    )
    shadows = tuple(
        _shadow_report(arm, shadow_rows.get(arm, []), primary_of)
        for arm in _ordered(shadow_names, shadow_rows)
    )

    named = set(arm_names)
    outcomes = sorted(
        (
            row
            for row in rows
            if row.role == Role.PRIMARY and row.arm in named and _correct(row) is not None
        ),
        key=lambda row: (row.feedback_order is None, row.feedback_order or 0),
    )
    return ExperimentReport(
        name=name,
        generated_at=generated_at,
        arms=arms,
        shadows=shadows,
        verdict=verdict(
            list(dict.fromkeys(arm_names)),
            [row.arm for row in outcomes],
            [bool(_correct(row)) for row in outcomes],
            settings,
        ),
    )


def _by_arm(rows: Iterable[PredictionRow]) -> dict[str, list[PredictionRow]]:
    grouped: dict[str, list[PredictionRow]] = {}
    for row in rows:
        grouped.setdefault(row.arm, []).append(row)
    return grouped


def _ordered(names: Sequence[str], seen: dict[str, list[PredictionRow]]) -> list[str]:
    named = list(dict.fromkeys(names))
    return named + sorted(set(seen) - set(named))


def _correct(row: PredictionRow) -> bool | None:
    """Whether an OK call got its request's true class; None without an answer or feedback."""
    if row.status != OK or row.predicted_class is None or row.true_class is None:
        return None
    return row.predicted_class == row.true_class


def _errors(rows: Sequence[PredictionRow]) -> dict[str, int]:
    return dict(sorted(Counter(row.status for row in rows if row.status != OK).items()))


def _latency(ok: Sequence[PredictionRow]) -> Latency:
    if not ok:
        return Latency(math.nan, math.nan, math.nan)
    p50, p95, p99 = np.percentile([row.latency_ms for row in ok], [50, 95, 99])
    return Latency(float(p50), float(p95), float(p99))


def _share(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


def _arm_report(arm: str, rows: Sequence[PredictionRow]) -> ArmReport:
    ok = [row for row in rows if row.status == OK]
    confidences = [row.confidence for row in ok if row.confidence is not None]
    judged = [c for c in (_correct(row) for row in ok) if c is not None]
    correct = sum(judged)
    return ArmReport(
        name=arm,
        requests=len(rows),
        errors=_errors(rows),
        latency_ms=_latency(ok),
        versions=dict(sorted(Counter(r.version for r in ok if r.version is not None).items())),
        predicted_classes=dict(
            sorted(Counter(r.predicted_class for r in ok if r.predicted_class is not None).items())
        ),
        mean_confidence=float(np.mean(confidences)) if confidences else math.nan,
        feedback=len(judged),
        correct=correct,
        accuracy=_share(correct, len(judged)),
        accuracy_interval=wilson_interval(correct, len(judged)),
    )


def _shadow_report(
    arm: str, rows: Sequence[PredictionRow], primary_of: dict[str, PredictionRow]
) -> ShadowReport:
    ok = [row for row in rows if row.status == OK]
    pairs = agreements = paired_feedback = shadow_correct = primary_correct = b = c = 0
    for shadow in ok:
        primary = primary_of.get(shadow.request_id)
        if primary is None or primary.status != OK:
            continue
        if shadow.predicted_class is None or primary.predicted_class is None:
            continue
        pairs += 1
        agreements += shadow.predicted_class == primary.predicted_class
        truth = shadow.true_class if shadow.true_class is not None else primary.true_class
        if truth is None:
            continue
        paired_feedback += 1
        shadow_right = shadow.predicted_class == truth
        primary_right = primary.predicted_class == truth
        shadow_correct += shadow_right
        primary_correct += primary_right
        b += primary_right and not shadow_right
        c += shadow_right and not primary_right
    return ShadowReport(
        name=arm,
        requests=len(rows),
        errors=_errors(rows),
        latency_ms=_latency(ok),
        pairs=pairs,
        agreements=agreements,
        agreement=_share(agreements, pairs),
        agreement_interval=wilson_interval(agreements, pairs),
        paired_feedback=paired_feedback,
        shadow_correct=shadow_correct,
        primary_correct=primary_correct,
        mcnemar=mcnemar_from_counts(b, c),
        accuracy_difference=_share(shadow_correct - primary_correct, paired_feedback),
    )
