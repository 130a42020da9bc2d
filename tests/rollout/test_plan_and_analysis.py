"""Rollout plans (the committed file, validation messages) and the judgement of one step from
reports with known figures."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from imgclf_client import (
    ArmReport,
    Experiment,
    ExperimentReport,
    Latency,
    ShadowReport,
    Verdict,
)

from server.rollout.analysis import FAILED, PASSED, WAITING, analyse
from server.rollout.plan import (
    CANARY,
    SHADOW,
    Plan,
    PlanError,
    Step,
    Thresholds,
    from_table,
    load_plan,
)


def test_the_committed_plans_load() -> None:
    for name in ("default", "quick"):
        plan = load_plan(Path("serving_config/rollout.toml"), name)
        assert plan.steps[0].kind == SHADOW
        assert [s.weight for s in plan.steps[1:]] == [10, 50, 100]
        assert Plan.from_dict(plan.to_dict()) == plan
        assert plan.experiment_for("cnn") == "cnn-stable-vs-canary"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "has no canary step"),
        ({"steps": [{"weight": 50}, {"weight": 10}]}, "must not go down"),
        ({"steps": [{"weight": 150}]}, "at most 100"),
        ({"steps": [{"weight": 10, "size": 3}]}, "unknown key(s) size"),
        ({"steps": [{"weight": 10}], "colour": "red"}, "unknown key(s) colour"),
        ({"steps": [{"weight": 10}], "thresholds": {"min_agreement": 2}}, "thresholds"),
        ({"steps": [{"weight": "ten"}]}, "weight must be a number"),
        ({"steps": [{"weight": 10}], "canary_label": "stable"}, "two different labels"),
    ],
)
def test_bad_plans_are_refused_with_the_reason(table: dict[str, object], message: str) -> None:
    with pytest.raises(PlanError) as caught:
        from_table("p", table)
    assert message in str(caught.value)


def test_a_missing_plan_names_those_there_are(tmp_path: Path) -> None:
    path = tmp_path / "rollout.toml"
    path.write_text("[plans.only]\n[[plans.only.steps]]\nweight = 10\n")
    with pytest.raises(PlanError, match=r"no plan 'other' \(plans: only\)"):
        load_plan(path, "other")


def arm(name: str, requests: int, errors: dict[str, int], p99: float) -> ArmReport:
    return ArmReport(name, None, 50, requests, errors, Latency(1, 2, p99), {}, [], 0.9, 0, 0,
                     math.nan, (math.nan, math.nan))  # fmt: skip


def report(
    arms: list[ArmReport],
    shadows: list[ShadowReport] = (),
    outcome: str = "NO_DIFFERENCE",  # type: ignore[assignment]
    winner: str = "",
) -> ExperimentReport:
    verdict = Verdict(outcome, winner, 0.5, "summary", "mSPRT", 0.05, 0.02, 200, {}, 0, [])
    return ExperimentReport(Experiment("e", []), datetime.now(UTC), arms, list(shadows), verdict)


def shadow(requests: int, pairs: int, agreements: int) -> ShadowReport:
    return ShadowReport("candidate", None, 1.0, requests, {}, Latency(1, 2, 4), pairs, agreements,
                        agreements / pairs, (0, 1), 0, 0, 0, 0, 0, 1.0, 0.0)  # fmt: skip


CANARY_STEP = Step(CANARY, 10, min_duration_s=60, min_requests=100)
THRESHOLDS = Thresholds(max_error_rate=0.01, max_p99_ratio=2.0, min_agreement=0.9)
STABLE = arm("stable", 1000, {}, 10.0)


def test_a_step_waits_for_its_minimums_then_passes() -> None:
    few = report([STABLE, arm("canary", 50, {}, 12.0)])
    waiting = analyse(CANARY_STEP, THRESHOLDS, few, few, elapsed_s=90)
    assert waiting.status == WAITING and "requests 50" in waiting.reason
    enough = report([STABLE, arm("canary", 150, {"INVALID_ARGUMENT": 9}, 12.0)])
    assert analyse(CANARY_STEP, THRESHOLDS, enough, enough, elapsed_s=30).status == WAITING
    passed = analyse(CANARY_STEP, THRESHOLDS, enough, enough, elapsed_s=61)
    assert passed.status == PASSED
    figure = passed.figure("p99_ratio")
    assert figure is not None and figure.value == pytest.approx(1.2)
    error_rate = passed.figure("error_rate")
    assert error_rate is not None and error_rate.value == 0.0  # a caller's bad image is not a fault


def test_errors_fail_a_step_as_soon_as_they_doom_it() -> None:
    doomed = report([STABLE, arm("canary", 10, {"UNAVAILABLE": 2}, 12.0)])
    failed = analyse(CANARY_STEP, THRESHOLDS, doomed, doomed, elapsed_s=1)
    assert failed.status == FAILED and "error rate" in failed.reason
    one = report([STABLE, arm("canary", 10, {"INTERNAL": 1}, 12.0)])
    assert analyse(CANARY_STEP, THRESHOLDS, one, one, elapsed_s=1).status == WAITING


def test_slow_canaries_and_stable_winners_fail() -> None:
    slow = report([STABLE, arm("canary", 200, {}, 25.0)])
    failed = analyse(CANARY_STEP, THRESHOLDS, slow, slow, elapsed_s=61)
    assert failed.status == FAILED and "2.50x" in failed.reason
    fine = report([STABLE, arm("canary", 200, {}, 12.0)])
    worse = report([STABLE, arm("canary", 200, {}, 12.0)], outcome="WINNER", winner="stable")
    verdict = analyse(CANARY_STEP, THRESHOLDS, fine, worse, elapsed_s=5)
    assert verdict.status == FAILED and "verdict names stable better" in verdict.reason
    better = report([STABLE, arm("canary", 200, {}, 12.0)], outcome="WINNER", winner="canary")
    assert analyse(CANARY_STEP, THRESHOLDS, fine, better, elapsed_s=61).status == PASSED


def test_without_stable_calls_in_the_step_latency_is_judged_against_the_whole_rollout() -> None:
    window = report([arm("stable", 0, {}, math.nan), arm("canary", 300, {}, 15.0)])
    whole = report([STABLE, arm("canary", 400, {}, 15.0)])
    result = analyse(Step(CANARY, 100, 0, 100), THRESHOLDS, window, whole, elapsed_s=1)
    figure = result.figure("p99_ratio")
    assert figure is not None and figure.value == pytest.approx(1.5)


def test_the_shadow_step_is_judged_on_agreement() -> None:
    step = Step(SHADOW, 0, min_duration_s=0, min_requests=100)
    agreeing = report([STABLE], [shadow(200, 200, 190)])
    assert analyse(step, THRESHOLDS, agreeing, agreeing, elapsed_s=1).status == PASSED
    disagreeing = report([STABLE], [shadow(200, 200, 40)])
    failed = analyse(step, THRESHOLDS, disagreeing, disagreeing, elapsed_s=1)
    assert failed.status == FAILED and "agreement with stable 20.0%" in failed.reason
