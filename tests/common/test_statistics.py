"""Shared statistics: Wilson intervals by hand, the sequential verdict by simulation.

The simulations know the truth (two arms' real accuracies), draw feedback 50/50 at random, and
read the production verdict every 50 feedbacks up to 10,000, as an operator refreshing the report
would. Each experiment's p-value path is computed once with `always_valid_p_values`, the helper
`verdict` itself uses; `verdict` is then called on the prefixes where the answer can change (see
`_read_experiment`), and on every prefix for a few experiments to show the two agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import pytest

from common.statistics import (
    VARIANCE_PSEUDO_COUNT,
    SequentialTestSettings,
    Verdict,
    always_valid_p_values,
    verdict,
    wilson_interval,
)

FEEDBACKS = 10_000
READ_EVERY = 50
# The number of outcomes seen at each read: 50, 100, ..., 10,000.
READS = np.arange(READ_EVERY, FEEDBACKS + 1, READ_EVERY)
ARMS = ("stable", "canary")
SETTINGS = SequentialTestSettings()

# ---------------------------------------------------------------------------------------------
# Wilson interval
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "trials", "confidence", "low", "high"),
    [
        # z = 1.959964, z²/n = 0.3841459: centre (0.8 + 0.1920729) / 1.3841459 = 0.716740,
        # half width 1.959964 / 1.3841459 * sqrt(0.016 + 0.0096036) = 0.226578.
        (8, 10, 0.95, 0.490162, 0.943318),
        # No successes: centre = half width = 0.1920729 / 1.3841459 = 0.138767.
        (0, 10, 0.95, 0.0, 0.277533),
        (10, 10, 0.95, 0.722467, 1.0),
        # z = 2.575829, z²/n = 0.0663490: half width 2.415557 * sqrt(0.0025 + 0.00016587).
        (50, 100, 0.99, 0.375280, 0.624720),
    ],
)
def test_wilson_interval_matches_hand_computed_values(
    successes: int, trials: int, confidence: float, low: float, high: float
) -> None:
    interval = wilson_interval(successes, trials, confidence)

    assert interval.low == pytest.approx(low, abs=2e-6)
    assert interval.high == pytest.approx(high, abs=2e-6)


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombes_published_examples(
    successes: int, trials: int, low: float, high: float
) -> None:
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table II,
    # method 3 (score interval without continuity correction), 95%.
    interval = wilson_interval(successes, trials)

    assert (interval.low, interval.high) == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_of_nothing_is_nan() -> None:
    interval = wilson_interval(0, 0)

    assert math.isnan(interval.low) and math.isnan(interval.high)


@pytest.mark.parametrize(
    ("successes", "trials", "confidence"), [(3, 2, 0.95), (-1, 2, 0.95), (1, 2, 1.0), (1, 2, 0)]
)
def test_wilson_interval_rejects_impossible_arguments(
    successes: int, trials: int, confidence: float
) -> None:
    with pytest.raises(ValueError):
        wilson_interval(successes, trials, confidence)


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("alpha", 0.0, "alpha must be between 0 and 1"),
        ("alpha", 1.0, "alpha must be between 0 and 1"),
        ("min_samples", 0, "min_samples must be at least 1"),
        ("mixture_sd", 0.0, "mixture_sd must be positive"),
        ("mixture_sd", -0.1, "mixture_sd must be positive"),
        ("mixture_sd", math.nan, "mixture_sd must be positive"),
    ],
)
def test_settings_reject_values_that_break_the_test(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SequentialTestSettings(**{field: value})  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The p-value path against the formula, one outcome at a time
# ---------------------------------------------------------------------------------------------


def test_always_valid_p_values_follow_the_mixture_ratio_step_by_step() -> None:
    rng = np.random.default_rng(7)
    is_challenger = rng.random(400) < 0.4
    correct = np.where(is_challenger, rng.random(400) < 0.95, rng.random(400) < 0.8)
    min_samples, tau = 30, 0.05

    path = always_valid_p_values(is_challenger, correct, min_samples, tau)

    expected, running = [], 1.0
    counts = {False: [0, 0], True: [0, 0]}  # arm -> [outcomes, correct]
    for arm, right in zip(is_challenger.tolist(), correct.tolist(), strict=True):
        counts[arm][0] += 1
        counts[arm][1] += right
        (n_c, s_c), (n_t, s_t) = counts[False], counts[True]
        if min(n_c, n_t) >= min_samples:
            variance = 0.0
            for n, s in ((n_c, s_c), (n_t, s_t)):
                p = (s + VARIANCE_PSEUDO_COUNT / 2) / (n + VARIANCE_PSEUDO_COUNT)
                variance += p * (1 - p) / n
            difference = s_t / n_t - s_c / n_c
            ratio = math.sqrt(variance / (variance + tau**2)) * math.exp(
                tau**2 * difference**2 / (2 * variance * (variance + tau**2))
            )
            running = min(running, 1.0, 1 / ratio)
        expected.append(running)

    np.testing.assert_allclose(path.p_values, expected, rtol=1e-9)
    assert path.p_values[-1] < 0.01  # 95% against 80%: decided well within 400 outcomes


def test_always_valid_p_values_of_no_outcomes() -> None:
    path = always_valid_p_values([], [], 10, 0.1)

    assert path.p_values.shape == path.differences.shape == (0,)


# ---------------------------------------------------------------------------------------------
# Verdict on hand-built feedback
# ---------------------------------------------------------------------------------------------


def _spread(count: int, right: int, out_of: int) -> list[bool]:
    """`count` outcomes with `right` of every `out_of` correct, spread evenly."""
    return [((i + 1) * right) // out_of - (i * right) // out_of == 1 for i in range(count)]


def _round_robin(outcomes: dict[str, list[bool]]) -> tuple[list[str], list[bool]]:
    """The arms' outcomes interleaved one by one, as (outcome arms, outcome correct)."""
    arms, correct = [], []
    for i in range(max(len(v) for v in outcomes.values())):
        for arm, results in outcomes.items():
            if i < len(results):
                arms.append(arm)
                correct.append(results[i])
    return arms, correct


def _verdict(
    outcomes: dict[str, list[bool]], settings: SequentialTestSettings = SETTINGS
) -> Verdict:
    return verdict(list(outcomes), *_round_robin(outcomes), settings)


def test_insufficient_data_says_which_arm_needs_how_much() -> None:
    result = _verdict({"stable": _spread(250, 9, 10), "canary": _spread(40, 9, 10)})

    assert result.outcome == "insufficient_data"
    assert result.winner is None
    assert result.samples == {"stable": 250, "canary": 40}
    assert result.needed == 160
    assert result.summary == (
        "not enough feedback yet: arm 'canary' has 40 of the 200 outcomes needed"
    )
    assert result.parameters == {"alpha": 0.05, "mixture_sd": 0.02, "min_samples": 200.0}
    assert result.test.startswith("mSPRT")


def test_empty_inputs() -> None:
    result = verdict(["stable", "canary"], [], [], SETTINGS)

    assert (result.outcome, result.winner, result.p_value) == ("insufficient_data", None, 1.0)
    assert result.samples == {"stable": 0, "canary": 0}
    assert result.needed == 200
    assert "arm 'stable' has 0 of the 200 outcomes needed" in result.summary
    assert [(c.challenger, c.p_value, c.significant) for c in result.comparisons] == [
        ("canary", 1.0, False)
    ]
    assert math.isnan(result.comparisons[0].difference)


@pytest.mark.parametrize(("arms", "detail"), [([], "none is defined"), (["stable"], "'stable'")])
def test_fewer_than_two_arms(arms: list[str], detail: str) -> None:
    result = verdict(arms, ["stable"] * 300, [True] * 300, SETTINGS)

    assert result.outcome == "insufficient_data"
    assert result.summary.startswith("a comparison needs two arms")
    assert detail in result.summary
    assert result.comparisons == ()
    assert result.needed == 0


def test_outcomes_of_other_arms_are_ignored_and_lengths_must_match() -> None:
    result = verdict(["a", "b"], ["a", "x", "b"], [True, False, True], SETTINGS)
    assert result.samples == {"a": 1, "b": 1}

    with pytest.raises(ValueError, match="2 outcome arms but 1"):
        verdict(["a", "b"], ["a", "b"], [True], SETTINGS)


def test_no_difference_summary() -> None:
    result = _verdict({"stable": _spread(1000, 9, 10), "canary": _spread(1000, 9, 10)})

    assert (result.outcome, result.winner, result.p_value) == ("no_difference", None, 1.0)
    assert result.needed == 0
    assert result.summary == (
        "no difference detected between 'stable' (90.0%, n=1000) and 'canary' (90.0%, n=1000); "
        "always-valid p=1; reading it again later stays valid"
    )


def test_a_better_challenger_wins() -> None:
    result = _verdict({"stable": _spread(1000, 90, 100), "canary": _spread(1000, 94, 100)})

    assert (result.outcome, result.winner) == ("winner", "canary")
    assert 0.025 < result.p_value <= 0.05  # used by the Bonferroni test below
    (comparison,) = result.comparisons
    assert comparison.difference == pytest.approx(0.04)
    assert (comparison.significant, comparison.better) == (True, "canary")
    assert result.summary.startswith(
        "'canary' is better than 'stable': 94.0% vs 90.0% (n=1000 vs 1000), always-valid p=0.03"
    )


def test_the_control_wins_when_better_than_every_challenger() -> None:
    result = _verdict(
        {
            "stable": _spread(3000, 95, 100),
            "canary": _spread(3000, 85, 100),
            "nightly": _spread(3000, 80, 100),
        }
    )

    assert (result.outcome, result.winner) == ("winner", "stable")
    assert all(c.significant and c.better == "stable" for c in result.comparisons)
    assert result.summary.startswith("'stable' (95.0%, n=3000) is better than 'canary' (85.0%")


def test_the_control_does_not_win_unless_better_than_all() -> None:
    result = _verdict(
        {
            "stable": _spread(3000, 90, 100),
            "canary": _spread(3000, 80, 100),
            "nightly": _spread(3000, 90, 100),
        }
    )

    assert result.outcome == "no_difference"
    assert "('canary' significantly worse than 'stable')" in result.summary


def test_the_most_accurate_of_several_better_challengers_wins() -> None:
    result = _verdict(
        {
            "stable": _spread(3000, 80, 100),
            "canary": _spread(3000, 90, 100),
            "nightly": _spread(3000, 95, 100),
        }
    )

    assert (result.outcome, result.winner) == ("winner", "nightly")
    assert all(c.significant for c in result.comparisons)


def test_bonferroni_doubles_the_p_value_with_two_challengers() -> None:
    stable, canary = _spread(1000, 90, 100), _spread(1000, 94, 100)
    two_arms = _verdict({"stable": stable, "canary": canary})

    three_arms = _verdict({"stable": stable, "canary": canary, "nightly": _spread(1000, 9, 10)})

    assert two_arms.outcome == "winner"
    canary_vs_stable = three_arms.comparisons[0]
    assert canary_vs_stable.challenger == "canary"
    assert canary_vs_stable.p_value == pytest.approx(2 * two_arms.p_value)
    assert not canary_vs_stable.significant
    assert three_arms.outcome == "no_difference"
    assert three_arms.p_value == pytest.approx(2 * two_arms.p_value)


# ---------------------------------------------------------------------------------------------
# Simulations against known truth
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Experiment:
    """One simulated experiment: the arm and correctness of each of its feedbacks, in order."""

    arms: list[str]
    correct: list[bool]
    is_canary: npt.NDArray[np.bool_]
    correct_array: npt.NDArray[np.bool_]


def _experiments(
    stable_accuracy: float, canary_accuracy: float, count: int, seed: int
) -> list[Experiment]:
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(count):
        is_canary = rng.random(FEEDBACKS) < 0.5
        draws = rng.random(FEEDBACKS)
        correct = np.where(is_canary, draws < canary_accuracy, draws < stable_accuracy)
        arms = np.where(is_canary, ARMS[1], ARMS[0]).tolist()
        result.append(Experiment(arms, correct.tolist(), is_canary, correct))
    return result


def _verdict_at(experiment: Experiment, seen: int) -> Verdict:
    return verdict(ARMS, experiment.arms[:seen], experiment.correct[:seen], SETTINGS)


def _read_experiment(experiment: Experiment) -> str | None:
    """The winner the verdict names at any read every 50 feedbacks, or None.

    The always-valid p-value never increases and a decision, once made, keeps its direction, so
    the verdict can only change from "no winner" to a winner once; the first read where the
    production p-value path is at or under alpha is that read. The verdict is called there, at
    the read before (no winner yet) and at the last read (the same winner).
    """
    path = always_valid_p_values(
        experiment.is_canary, experiment.correct_array, SETTINGS.min_samples, SETTINGS.mixture_sd
    )
    read_p = path.p_values[READS - 1]
    last = _verdict_at(experiment, FEEDBACKS)
    assert last.p_value == pytest.approx(read_p[-1], rel=1e-12)
    decided = np.flatnonzero(read_p <= SETTINGS.alpha)
    if not decided.size:
        assert last.outcome != "winner"
        return None
    first = int(decided[0])
    at_first = _verdict_at(experiment, int(READS[first]))
    assert at_first.p_value == pytest.approx(read_p[first], rel=1e-12)
    assert at_first.outcome == last.outcome == "winner"
    assert at_first.winner == last.winner
    if first:
        assert _verdict_at(experiment, int(READS[first - 1])).outcome != "winner"
    return at_first.winner


def _winners(experiments: Sequence[Experiment]) -> list[str | None]:
    return [_read_experiment(experiment) for experiment in experiments]


def test_reading_every_50_feedbacks_matches_the_p_value_path() -> None:
    for experiment in _experiments(0.9, 0.93, count=3, seed=11):
        path = always_valid_p_values(
            experiment.is_canary,
            experiment.correct_array,
            SETTINGS.min_samples,
            SETTINGS.mixture_sd,
        )
        winner_seen = False
        for seen in READS.tolist():
            result = _verdict_at(experiment, seen)
            assert result.p_value == pytest.approx(path.p_values[seen - 1], rel=1e-12)
            assert (result.outcome == "winner") == (path.p_values[seen - 1] <= SETTINGS.alpha)
            winner_seen = winner_seen or result.outcome == "winner"
            assert result.outcome == "winner" or not winner_seen  # a winner stays a winner


def test_equal_arms_rarely_produce_a_winner_however_often_the_verdict_is_read() -> None:
    winners = _winners(_experiments(0.9, 0.9, count=400, seed=1))

    false_winners = sum(w is not None for w in winners) / len(winners)
    assert false_winners <= SETTINGS.alpha
    print(f"false winners, equal arms at 0.90: {false_winners:.2%}")


@pytest.mark.parametrize(("stable_accuracy", "canary_accuracy"), [(0.90, 0.93), (0.87, 0.90)])
def test_a_three_point_difference_is_found_within_10000_feedbacks(
    stable_accuracy: float, canary_accuracy: float
) -> None:
    winners = _winners(_experiments(stable_accuracy, canary_accuracy, count=300, seed=2))

    right = winners.count("canary") / len(winners)
    wrong = winners.count("stable") / len(winners)
    assert right >= 0.9
    assert wrong <= 0.01
    print(
        f"{stable_accuracy} vs {canary_accuracy}: better arm named {right:.1%}, worse {wrong:.1%}"
    )


def test_a_fixed_horizon_z_test_read_every_50_feedbacks_declares_false_winners() -> None:
    """The trap the sequential test avoids: the same experiments, a z-test at every read."""
    critical = NormalDist().inv_cdf(1 - SETTINGS.alpha / 2)
    experiments = _experiments(0.9, 0.9, count=400, seed=1)

    declared = 0
    for experiment in experiments:
        canary, right = experiment.is_canary, experiment.correct_array
        n_t = np.cumsum(canary)[READS - 1].astype(float)
        n_c = READS - n_t
        s_t = np.cumsum(canary & right)[READS - 1]
        s_c = np.cumsum(~canary & right)[READS - 1]
        # Start at the same burn-in as the sequential test, so the burn-in is not the difference.
        ready = np.minimum(n_t, n_c) >= SETTINGS.min_samples
        pooled = (s_t + s_c) / READS
        with np.errstate(divide="ignore", invalid="ignore"):
            standard_error = np.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
            z = (s_t / n_t - s_c / n_c) / standard_error
        declared += bool(np.any(ready & (np.abs(z) >= critical)))

    false_winners = declared / len(experiments)
    assert false_winners > 0.10
    print(f"false winners, z-test read every 50: {false_winners:.1%}")
