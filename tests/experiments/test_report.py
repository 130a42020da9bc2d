"""The experiment report: every figure recomputed here from the rows, with plain loops.

One small hand-built log whose figures are written out, and one seeded random log (errors,
versions, shadows that fail or lack a primary, feedback arriving out of order) whose figures are
recounted independently of the report's code.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from common.statistics import SequentialTestSettings, verdict, wilson_interval
from server.experiments.records import PredictionRow, Role
from server.experiments.report import ArmReport, ExperimentReport, ShadowReport, build_report

T0 = datetime(2025, 1, 1, tzinfo=UTC)
GENERATED = T0 + timedelta(hours=1)
SETTINGS = SequentialTestSettings(min_samples=5)


def _row(
    request_id: str,
    arm: str,
    *,
    role: Role = Role.PRIMARY,
    status: str = "OK",
    version: int | None = 1,
    predicted: int | None = 0,
    confidence: float | None = 0.5,
    latency: float = 10.0,
    truth: int | None = None,
    order: int | None = None,
) -> PredictionRow:
    return PredictionRow(
        request_id=request_id,
        arm=arm,
        role=role,
        model="cifar10",
        version=version if status == "OK" else None,
        status=status,
        predicted_class=predicted if status == "OK" else None,
        confidence=confidence if status == "OK" else None,
        latency_ms=latency,
        created_at=T0,
        true_class=truth,
        feedback_order=order,
    )


def _same(actual: float, expected: float) -> bool:
    return (math.isnan(actual) and math.isnan(expected)) or actual == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------
# A hand-built log
# ---------------------------------------------------------------------------------------------


def _hand_rows() -> list[PredictionRow]:
    shadow = Role.SHADOW
    return [
        # stable: r1 right, r2 wrong, r3 no feedback, r4 failed (with feedback: not an outcome).
        _row("r1", "stable", predicted=3, confidence=0.9, latency=10, truth=3, order=2),
        _row("r2", "stable", predicted=5, confidence=0.6, latency=20, version=2, truth=4, order=1),
        _row("r3", "stable", predicted=3, confidence=0.3, latency=30),
        _row("r4", "stable", status="UNAVAILABLE", latency=500, truth=1, order=3),
        # canary: one OK call, right.
        _row("r5", "canary", predicted=7, confidence=0.8, latency=40, version=9, truth=7, order=4),
        # v3 shadows r1 (agrees, both right), r2 (shadow right, primary wrong), r3 (no feedback,
        # disagrees), r4 (primary failed: no pair) and r5 (shadow failed: no pair).
        _row("r1", "v3", role=shadow, predicted=3, latency=15, truth=3, order=2),
        _row("r2", "v3", role=shadow, predicted=4, latency=25, truth=4, order=1),
        _row("r3", "v3", role=shadow, predicted=6, latency=35),
        _row("r4", "v3", role=shadow, predicted=1, latency=45, truth=1, order=3),
        _row("r5", "v3", role=shadow, status="DEADLINE_EXCEEDED", latency=99, truth=7, order=4),
        # A shadow copy whose primary record is missing (dropped by the log): no pair.
        _row("r9", "v3", role=shadow, predicted=2, latency=55),
        # An arm no longer in the definition, primary and shadow.
        _row("r6", "old", predicted=1, latency=60, truth=1, order=5),
        _row("r6", "ghost", role=shadow, predicted=2, latency=70, truth=1, order=5),
    ]


def test_hand_built_log() -> None:
    report = build_report("exp", ["stable", "canary"], ["v3"], _hand_rows(), SETTINGS, GENERATED)

    assert (report.name, report.generated_at) == ("exp", GENERATED)
    assert [a.name for a in report.arms] == ["stable", "canary", "old"]
    assert [s.name for s in report.shadows] == ["v3", "ghost"]

    stable = report.arms[0]
    assert (stable.requests, stable.errors) == (4, {"UNAVAILABLE": 1})
    assert stable.latency_ms.p50 == 20.0  # OK calls only: 10, 20, 30
    assert stable.latency_ms.p95 == pytest.approx(29.0)  # 20 + 0.9 * 10
    assert stable.latency_ms.p99 == pytest.approx(29.8)
    assert stable.versions == {1: 2, 2: 1}
    assert stable.predicted_classes == {3: 2, 5: 1}
    assert stable.mean_confidence == pytest.approx((0.9 + 0.6 + 0.3) / 3)
    assert (stable.feedback, stable.correct, stable.accuracy) == (2, 1, 0.5)
    assert stable.accuracy_interval == wilson_interval(1, 2)

    canary = report.arms[1]
    assert (canary.requests, canary.errors, canary.versions) == (1, {}, {9: 1})
    assert (canary.feedback, canary.correct, canary.accuracy) == (1, 1, 1.0)
    assert canary.latency_ms.p50 == canary.latency_ms.p99 == 40.0

    v3 = report.shadows[0]
    assert (v3.requests, v3.errors) == (6, {"DEADLINE_EXCEEDED": 1})
    assert v3.latency_ms.p50 == 35.0  # OK shadow calls: 15, 25, 35, 45, 55
    assert (v3.pairs, v3.agreements) == (3, 1)  # r1, r2, r3; agree on r1 only
    assert v3.agreement == pytest.approx(1 / 3)
    assert v3.agreement_interval == wilson_interval(1, 3)
    assert (v3.paired_feedback, v3.shadow_correct, v3.primary_correct) == (2, 2, 1)
    assert (v3.mcnemar.b, v3.mcnemar.c, v3.mcnemar.exact_p) == (0, 1, 1.0)
    assert v3.accuracy_difference == pytest.approx(0.5)

    ghost = report.shadows[1]
    assert (ghost.requests, ghost.pairs, ghost.agreements) == (1, 1, 0)
    assert (ghost.paired_feedback, ghost.shadow_correct, ghost.primary_correct) == (1, 0, 1)
    assert (ghost.mcnemar.b, ghost.mcnemar.c, ghost.accuracy_difference) == (1, 0, -1.0)

    # The verdict reads the named primary arms' outcomes in feedback order: r2, r1, r5 ("old"'s
    # r6 and the failed r4 are not outcomes of it).
    assert report.verdict == verdict(
        ["stable", "canary"], ["stable", "stable", "canary"], [False, True, True], SETTINGS
    )
    assert report.verdict.samples == {"stable": 2, "canary": 1}
    assert report.verdict.outcome == "insufficient_data"


def test_empty_log_reports_every_named_arm_with_zero_counts() -> None:
    report = build_report("exp", ["stable", "canary"], ["v3"], [], SETTINGS, GENERATED)

    assert [a.name for a in report.arms] == ["stable", "canary"]
    for arm in report.arms:
        assert (arm.requests, arm.errors, arm.versions, arm.predicted_classes) == (0, {}, {}, {})
        assert (arm.feedback, arm.correct) == (0, 0)
        assert all(math.isnan(x) for x in (arm.accuracy, arm.mean_confidence, arm.latency_ms.p50))
        assert math.isnan(arm.accuracy_interval.low)
    (shadow,) = report.shadows
    assert (shadow.requests, shadow.pairs, shadow.paired_feedback) == (0, 0, 0)
    assert (shadow.mcnemar.b, shadow.mcnemar.c, shadow.mcnemar.exact_p) == (0, 0, 1.0)
    assert math.isnan(shadow.agreement) and math.isnan(shadow.latency_ms.p99)
    assert report.verdict.outcome == "insufficient_data"
    assert report.verdict.samples == {"stable": 0, "canary": 0}


def test_nothing_named_and_nothing_recorded() -> None:
    report = build_report("exp", [], [], [], SETTINGS, GENERATED)

    assert (report.arms, report.shadows) == ((), ())
    assert report.verdict.summary.startswith("a comparison needs two arms")


# ---------------------------------------------------------------------------------------------
# A random log, recounted
# ---------------------------------------------------------------------------------------------

PRIMARY_ARMS = {"stable": 0.85, "canary": 0.95, "retired": 0.5}  # arm -> chance to be right
SHADOW_ARMS = {"v3": 0.9, "ghost": 0.4}
STATUSES = ["OK"] * 8 + ["UNAVAILABLE", "DEADLINE_EXCEEDED"]


def _random_rows(seed: int, requests: int) -> list[PredictionRow]:
    rng = np.random.default_rng(seed)
    orders = iter(rng.permutation(requests * 3).tolist())
    rows = []
    for i in range(requests):
        request_id = f"req-{i}"
        truth = int(rng.integers(10)) if rng.random() < 0.7 else None
        order = next(orders) if truth is not None else None
        arm = str(rng.choice(list(PRIMARY_ARMS)))

        def answer(right_chance: float, truth: int | None = truth) -> int:
            if truth is not None and rng.random() < right_chance:
                return truth
            return int(rng.integers(10))

        if rng.random() < 0.95:  # the log may drop a primary record
            rows.append(
                _row(
                    request_id,
                    arm,
                    status=str(rng.choice(STATUSES)),
                    version=int(rng.integers(1, 4)),
                    predicted=answer(PRIMARY_ARMS[arm]),
                    confidence=float(rng.random()),
                    latency=float(rng.gamma(2.0, 10.0)),
                    truth=truth,
                    order=order,
                )
            )
        for shadow, right_chance in SHADOW_ARMS.items():
            if rng.random() < 0.6:
                rows.append(
                    _row(
                        request_id,
                        shadow,
                        role=Role.SHADOW,
                        status=str(rng.choice(STATUSES)),
                        predicted=answer(right_chance),
                        latency=float(rng.gamma(3.0, 10.0)),
                        truth=truth,
                        order=order,
                    )
                )
    rng.shuffle(rows)  # the report must not depend on the order rows come in
    return rows


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return math.nan, math.nan, math.nan
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return float(p50), float(p95), float(p99)


def _count(values: Iterator[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _check_arm(arm: ArmReport, rows: list[PredictionRow]) -> None:
    mine = [r for r in rows if r.arm == arm.name and r.role == Role.PRIMARY]
    ok = [r for r in mine if r.status == "OK"]
    errors: dict[str, int] = {}
    for r in mine:
        if r.status != "OK":
            errors[r.status] = errors.get(r.status, 0) + 1
    with_truth = [r for r in ok if r.true_class is not None]
    correct = sum(1 for r in with_truth if r.predicted_class == r.true_class)

    assert arm.requests == len(mine)
    assert arm.errors == errors
    assert (arm.latency_ms.p50, arm.latency_ms.p95, arm.latency_ms.p99) == pytest.approx(
        _percentiles([r.latency_ms for r in ok]), nan_ok=True
    )
    assert arm.versions == _count(r.version for r in ok if r.version is not None)
    assert arm.predicted_classes == _count(
        r.predicted_class for r in ok if r.predicted_class is not None
    )
    confidences = [r.confidence for r in ok if r.confidence is not None]
    assert _same(arm.mean_confidence, sum(confidences) / len(confidences))
    assert (arm.feedback, arm.correct) == (len(with_truth), correct)
    assert arm.accuracy == pytest.approx(correct / len(with_truth))
    assert arm.accuracy_interval == wilson_interval(correct, len(with_truth))


def _check_shadow(shadow: ShadowReport, rows: list[PredictionRow]) -> None:
    mine = [r for r in rows if r.arm == shadow.name and r.role == Role.SHADOW]
    primaries = {r.request_id: r for r in rows if r.role == Role.PRIMARY}
    pairs = agreements = paired = shadow_right = primary_right = b = c = 0
    for s in mine:
        p = primaries.get(s.request_id)
        if s.status != "OK" or p is None or p.status != "OK":
            continue
        pairs += 1
        agreements += s.predicted_class == p.predicted_class
        if s.true_class is None:
            continue
        paired += 1
        s_ok, p_ok = s.predicted_class == s.true_class, p.predicted_class == p.true_class
        shadow_right += s_ok
        primary_right += p_ok
        b += p_ok and not s_ok
        c += s_ok and not p_ok

    assert shadow.requests == len(mine)
    assert sum(shadow.errors.values()) == sum(1 for r in mine if r.status != "OK")
    ok_latencies = [r.latency_ms for r in mine if r.status == "OK"]
    assert (shadow.latency_ms.p50, shadow.latency_ms.p95, shadow.latency_ms.p99) == pytest.approx(
        _percentiles(ok_latencies)
    )
    assert (shadow.pairs, shadow.agreements) == (pairs, agreements)
    assert shadow.agreement == pytest.approx(agreements / pairs)
    assert shadow.agreement_interval == wilson_interval(agreements, pairs)
    assert (shadow.paired_feedback, shadow.shadow_correct, shadow.primary_correct) == (
        paired,
        shadow_right,
        primary_right,
    )
    assert (shadow.mcnemar.b, shadow.mcnemar.c) == (b, c)
    # Two-sided exact binomial p-value of min(b, c) in b + c fair flips, summed here.
    tail = sum(math.comb(b + c, i) for i in range(min(b, c) + 1)) / 2 ** (b + c)
    assert shadow.mcnemar.exact_p == pytest.approx(min(1.0, 2 * tail))
    assert shadow.accuracy_difference == pytest.approx((shadow_right - primary_right) / paired)


def test_random_log_recounted() -> None:
    rows = _random_rows(seed=3, requests=3000)
    named, shadows = ["stable", "canary"], ["v3"]

    report: ExperimentReport = build_report("exp", named, shadows, rows, SETTINGS, GENERATED)

    assert [a.name for a in report.arms] == ["stable", "canary", "retired"]
    assert [s.name for s in report.shadows] == ["v3", "ghost"]
    for arm in report.arms:
        _check_arm(arm, rows)
    for shadow in report.shadows:
        _check_shadow(shadow, rows)

    outcomes = sorted(
        (
            r
            for r in rows
            if r.role == Role.PRIMARY
            and r.arm in named
            and r.status == "OK"
            and r.true_class is not None
        ),
        key=lambda r: r.feedback_order or 0,
    )
    expected = verdict(
        named,
        [r.arm for r in outcomes],
        [r.predicted_class == r.true_class for r in outcomes],
        SETTINGS,
    )
    assert report.verdict == expected
    assert report.verdict.samples == {
        arm: sum(1 for r in outcomes if r.arm == arm) for arm in named
    }
    # 95% against 85% over several hundred outcomes each: the canary should win.
    assert (report.verdict.outcome, report.verdict.winner) == ("winner", "canary")


def test_feedback_order_not_row_order_drives_the_verdict() -> None:
    # Canary's outcomes arrive first in feedback order though its rows come last.
    rows = [_row(f"s{i}", "stable", predicted=0, truth=0, order=100 + i) for i in range(6)] + [
        _row(f"c{i}", "canary", predicted=1, truth=0, order=i) for i in range(6)
    ]

    report = build_report("exp", ["stable", "canary"], [], rows, SETTINGS, GENERATED)

    assert report.verdict == verdict(
        ["stable", "canary"], ["canary"] * 6 + ["stable"] * 6, [False] * 6 + [True] * 6, SETTINGS
    )
