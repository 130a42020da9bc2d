"""Statistics shared by training, serving and benchmarks: plain numpy and the standard library.

- McNemar's test on paired correctness (two models on the same images).
- Wilson score intervals for a proportion.
- A sequential test for the difference of two accuracies that stays valid however often it is
  read (the normal-mixture mSPRT: Johari, Pekelis and Walsh, "Always valid inference", 2017;
  Johari, Koomen, Pekelis and Walsh, "Peeking at A/B tests", KDD 2017), and the verdict of an
  A/B experiment built on it.

Why sequential: an experiment's report is read while feedback is still arriving. A fixed-horizon
test (a two-proportion z-test, say) read again and again declares a false winner far more often
than its nominal alpha; an always-valid p-value can be read after every outcome and stopped on at
any time with its false-positive rate still at most alpha.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

# ---------------------------------------------------------------------------------------------
# McNemar's test
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on paired predictions.

    `b`: rows model A got right and B wrong; `c`: the reverse. `exact_p` is the two-sided exact
    binomial p-value (b ~ Binomial(b + c, 1/2) under equal error rates); `chi_square` uses
    Edwards' continuity correction, clipped at 0 so that b == c gives 0, with `chi_square_p` its
    p-value at one degree of freedom.
    """

    b: int
    c: int
    exact_p: float
    chi_square: float
    chi_square_p: float


def binomial_two_sided_p(b: int, c: int) -> float:
    """Exact two-sided p-value of b successes in b + c fair coin flips (1 when b + c == 0)."""
    trials = b + c
    tail = sum(math.comb(trials, i) for i in range(min(b, c) + 1))
    # Python divides big integers exactly before rounding, so large counts stay accurate.
    return min(1.0, 2 * tail / (1 << trials))


def chi_square_1df_p(statistic: float) -> float:
    """Upper-tail p-value of a chi-square statistic with one degree of freedom."""
    # That distribution is a squared standard normal, whose two-sided tail is erfc(z / sqrt 2).
    return math.erfc(math.sqrt(statistic / 2))


def mcnemar_from_counts(b: int, c: int) -> McNemar:
    """McNemar's test from the two discordant counts."""
    discordant = b + c
    chi_square = max(abs(b - c) - 1, 0) ** 2 / discordant if discordant else 0.0
    return McNemar(b, c, binomial_two_sided_p(b, c), chi_square, chi_square_1df_p(chi_square))


def mcnemar(correct_a: npt.ArrayLike, correct_b: npt.ArrayLike) -> McNemar:
    """McNemar's test from two models' per-row correctness (bool arrays of equal length)."""
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(f"shapes differ: {correct_a.shape} vs {correct_b.shape}")
    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    return mcnemar_from_counts(b, c)


# ---------------------------------------------------------------------------------------------
# Wilson score interval
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A closed interval `[low, high]`; both NaN when there is nothing to estimate from."""

    low: float
    high: float


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval for a proportion: `successes` out of `trials`.

    Unlike the normal ("Wald") interval it stays inside [0, 1] and keeps a sensible width at 0 or
    `trials` successes. (NaN, NaN) for 0 trials.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return Interval(math.nan, math.nan)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    z2_n = z * z / trials
    share = successes / trials
    centre = (share + z2_n / 2) / (1 + z2_n)
    half_width = z / (1 + z2_n) * math.sqrt(share * (1 - share) / trials + z2_n / (4 * trials))
    # At 0 (or all) successes the bound is exactly 0 (or 1); say so rather than leave rounding.
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == trials else min(1.0, centre + half_width)
    return Interval(low, high)


# ---------------------------------------------------------------------------------------------
# Sequential test: the normal-mixture mSPRT on a difference of two accuracies
# ---------------------------------------------------------------------------------------------

SEQUENTIAL_TEST_NAME = "mSPRT (normal mixture) on the difference of two accuracies"

# Added (as half a success and half a failure) to each arm's counts in the *variance* only, so
# that an arm that has been right (or wrong) every time so far does not get a zero variance and
# an infinite likelihood ratio. The difference itself uses the raw accuracies; with hundreds of
# outcomes per arm the pseudo-count moves the variance by well under 1%.
VARIANCE_PSEUDO_COUNT = 1.0


@dataclass(frozen=True)
class SequentialTestSettings:
    """How the sequential test reads an experiment.

    Defaults, and why (from simulations like those in `tests/common/test_statistics.py`: two arms
    at about 90% accuracy, feedback split 50/50, a read every 50 outcomes up to 10,000, 2,000
    experiments per setting):

    - `alpha` 0.05: the false-winner rate the test guarantees however often it is read.
    - `mixture_sd` 0.02: the spread of the N(0, τ²) prior on the true accuracy difference the
      test mixes over; the test is most sensitive to differences of about that size at the
      traffic where their standard error is a few times smaller. Among 0.005, 0.01, 0.02, 0.03,
      0.05 and 0.1, 0.02 detected the most: 99.5% of 3-point differences (0.90 vs 0.93), 98% of
      0.87 vs 0.90, 78% of 2-point and 20% of 1-point differences by 10,000 outcomes, with 2%
      false winners. 0.005 detected only 95% and 75% of the 3-point cases; 0.1 let more false
      winners through (3.5%) and still lost power. Model versions differ by a few points, so
      a prior of two points is also the honest one.
    - `min_samples` 200 outcomes per arm before the test is computed: the test rests on a normal
      approximation with a plug-in variance, poor for small counts at accuracies near 1 (a lucky
      streak makes an arm look perfect). With the default `mixture_sd` the mixture barely reacts
      to so few outcomes anyway (the false-winner rate was the same with 1), so the burn-in costs
      almost no power; with a wide mixture (0.3) it cut false winners from 2% to 0.6%. It is also
      the least evidence a person would act on.
    """

    alpha: float = 0.05
    min_samples: int = 200
    mixture_sd: float = 0.02

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be between 0 and 1 (exclusive), got {self.alpha}")
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, got {self.min_samples}")
        if not self.mixture_sd > 0.0:
            raise ValueError(f"mixture_sd must be positive, got {self.mixture_sd}")


@dataclass(frozen=True)
class SequentialPath:
    """The sequential test after each outcome of a two-arm sequence (arrays of equal length).

    `p_values[i]` is the always-valid p-value after outcome `i` (1.0 until both arms have
    `min_samples` outcomes; never increasing), `differences[i]` the challenger's accuracy minus
    the control's after outcome `i` (NaN while an arm has no outcomes).
    """

    p_values: npt.NDArray[np.float64]
    differences: npt.NDArray[np.float64]


def always_valid_p_values(
    is_challenger: npt.ArrayLike,
    correct: npt.ArrayLike,
    min_samples: int,
    mixture_sd: float,
) -> SequentialPath:
    """The normal-mixture mSPRT on a sequence of outcomes of two arms, after every outcome.

    `is_challenger[i]` says which arm outcome `i` belongs to (False: control), `correct[i]`
    whether that arm's prediction was right. With d̂ the accuracy difference (challenger minus
    control) and V its estimated variance, p̂c(1-p̂c)/n_c + p̂t(1-p̂t)/n_t (the p̂ in V carry
    `VARIANCE_PSEUDO_COUNT`, so V > 0), the mixture likelihood ratio against "no difference" with a
    N(0, τ²) mixture is

        Λ = sqrt(V / (V + τ²)) · exp(τ² d̂² / (2 V (V + τ²))),      τ = `mixture_sd`,

    and the always-valid p-value is the running minimum of min(1, 1/Λ) over the outcomes after
    which both arms have at least `min_samples` (1.0 before).
    """
    challenger = np.asarray(is_challenger, dtype=bool)
    right = np.asarray(correct, dtype=bool)
    if challenger.shape != right.shape or challenger.ndim != 1:
        raise ValueError(f"need two 1-D arrays of equal length: {challenger.shape}, {right.shape}")
    if min_samples < 1 or not mixture_sd > 0.0:
        raise ValueError(f"need min_samples >= 1 and mixture_sd > 0: {min_samples}, {mixture_sd}")
    n_t = np.cumsum(challenger, dtype=np.float64)
    n_c = np.arange(1, challenger.size + 1, dtype=np.float64) - n_t
    s_t = np.cumsum(challenger & right, dtype=np.float64)
    s_c = np.cumsum(~challenger & right, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        differences = s_t / n_t - s_c / n_c
    ready = (n_c >= min_samples) & (n_t >= min_samples)
    p_values = np.ones(challenger.size, dtype=np.float64)
    if np.any(ready):
        half = VARIANCE_PSEUDO_COUNT / 2
        smoothed_t = (s_t[ready] + half) / (n_t[ready] + VARIANCE_PSEUDO_COUNT)
        smoothed_c = (s_c[ready] + half) / (n_c[ready] + VARIANCE_PSEUDO_COUNT)
        variance = (
            smoothed_t * (1 - smoothed_t) / n_t[ready] + smoothed_c * (1 - smoothed_c) / n_c[ready]
        )
        tau2 = mixture_sd * mixture_sd
        shrink = 0.5 * np.log(variance / (variance + tau2))
        evidence = tau2 * differences[ready] ** 2 / (2 * variance * (variance + tau2))
        log_ratio = shrink + evidence
        # min(1, 1/Λ) computed in logs: Λ overflows a float long before a test is decided.
        p_values[ready] = np.exp(np.minimum(0.0, -log_ratio))
    return SequentialPath(np.minimum.accumulate(p_values), differences)


@dataclass(frozen=True)
class Comparison:
    """One challenger against the control.

    `difference`: the challenger's accuracy minus the control's (NaN while an arm has no
    outcomes). `p_value`: the always-valid p-value multiplied by the number of challengers
    (Bonferroni), capped at 1. `significant`: `p_value <= alpha`. `better`: the arm the test
    found better (the sign of the difference when the p-value first fell to alpha; a decision
    made once stays, so reading again later does not flip it), None while not significant.
    """

    control: str
    challenger: str
    difference: float
    p_value: float
    significant: bool
    better: str | None


@dataclass(frozen=True)
class Verdict:
    """The state of an A/B experiment, for a person or a rollout tool.

    `outcome`: "insufficient_data" (an arm has fewer than `min_samples` outcomes, or there are
    fewer than two arms), "winner" or "no_difference". `winner`: the arm that won, else None.
    `p_value`: the smallest Bonferroni-adjusted always-valid p-value over the comparisons,
    capped at 1 (1.0 when there is none). `samples`: outcomes per arm. `needed`: how many more
    outcomes the arm furthest from `min_samples` needs (0 once every arm has them). `summary`:
    one sentence to act on. `test` and `parameters`: what produced this.
    """

    outcome: str
    winner: str | None
    p_value: float
    samples: dict[str, int]
    needed: int
    summary: str
    test: str
    parameters: dict[str, float]
    comparisons: tuple[Comparison, ...]


def verdict(
    arms: Sequence[str],
    outcome_arms: Sequence[str],
    outcome_correct: Sequence[bool],
    settings: SequentialTestSettings,
) -> Verdict:
    """The verdict of an experiment from every feedback outcome so far, in feedback order.

    `arms[0]` is the control, the others challengers; outcomes of arms not in `arms` are
    ignored. Each challenger is tested against the control on their own outcomes with
    `always_valid_p_values`, at alpha / (number of challengers) (Bonferroni). A challenger wins
    when it is significantly better than the control (the most accurate such challenger, if
    several); the control wins when it is significantly better than every challenger. While an
    arm is short of `min_samples` the outcome is "insufficient_data", but the comparisons are
    still filled in as they stand.
    """
    if len(outcome_arms) != len(outcome_correct):
        raise ValueError(
            f"{len(outcome_arms)} outcome arms but {len(outcome_correct)} outcome results"
        )
    if len(set(arms)) != len(arms):
        raise ValueError(f"arm names repeat: {list(arms)}")
    names = np.asarray(list(outcome_arms), dtype=object)
    correct = np.asarray(list(outcome_correct), dtype=bool)
    members = {arm: names == arm for arm in arms}
    samples = {arm: int(np.count_nonzero(members[arm])) for arm in arms}
    hits = {arm: int(np.count_nonzero(members[arm] & correct)) for arm in arms}
    counts = _Counts(samples, hits)
    comparisons: tuple[Comparison, ...] = ()
    if len(arms) >= 2:
        comparisons = tuple(
            _compare(arms[0], challenger, members, correct, settings, len(arms) - 1)
            for challenger in arms[1:]
        )
    outcome, winner, summary = _decide(arms, comparisons, counts, settings)
    return Verdict(
        outcome=outcome,
        winner=winner,
        p_value=min((c.p_value for c in comparisons), default=1.0),
        samples=samples,
        needed=max([0, *(settings.min_samples - n for n in samples.values())]),
        summary=summary,
        test=SEQUENTIAL_TEST_NAME,
        parameters={
            "alpha": settings.alpha,
            "mixture_sd": settings.mixture_sd,
            "min_samples": float(settings.min_samples),
        },
        comparisons=comparisons,
    )


@dataclass(frozen=True)
class _Counts:
    samples: dict[str, int]
    hits: dict[str, int]

    def accuracy(self, arm: str) -> float:
        return self.hits[arm] / self.samples[arm] if self.samples[arm] else math.nan

    def describe(self, arm: str) -> str:
        accuracy = self.accuracy(arm)
        shown = "n/a" if math.isnan(accuracy) else f"{accuracy:.1%}"
        return f"{arm!r} ({shown}, n={self.samples[arm]})"


def _decide(
    arms: Sequence[str],
    comparisons: tuple[Comparison, ...],
    counts: _Counts,
    settings: SequentialTestSettings,
) -> tuple[str, str | None, str]:
    """(outcome, winner, summary) from the comparisons."""
    if len(arms) < 2:
        only = f" (only {arms[0]!r} is defined)" if arms else " (none is defined)"
        return "insufficient_data", None, f"a comparison needs two arms{only}"
    short = [arm for arm in arms if counts.samples[arm] < settings.min_samples]
    if short:
        arm = min(short, key=lambda a: counts.samples[a])
        summary = (
            f"not enough feedback yet: arm {arm!r} has {counts.samples[arm]} of the "
            f"{settings.min_samples} outcomes needed"
        )
        if len(short) > 1:
            summary += f" ({len(short)} arms are short)"
        return "insufficient_data", None, summary

    control = arms[0]
    better = [c for c in comparisons if c.better == c.challenger]
    if better:
        best = max(better, key=lambda c: (counts.accuracy(c.challenger), -c.p_value))
        summary = (
            f"{best.challenger!r} is better than {control!r}: "
            f"{counts.accuracy(best.challenger):.1%} vs {counts.accuracy(control):.1%} "
            f"(n={counts.samples[best.challenger]} vs {counts.samples[control]}), "
            f"always-valid p={_p(best.p_value)}"
        )
        return "winner", best.challenger, summary
    if all(c.better == control for c in comparisons):
        others = ", ".join(counts.describe(c.challenger) for c in comparisons)
        summary = (
            f"{counts.describe(control)} is better than {others}, "
            f"always-valid p={_p(max(c.p_value for c in comparisons))}"
        )
        return "winner", control, summary

    listed = " and ".join(counts.describe(arm) for arm in arms)
    p_value = min(c.p_value for c in comparisons)
    summary = f"no difference detected between {listed}; always-valid p={_p(p_value)}"
    worse = [repr(c.challenger) for c in comparisons if c.better == control]
    if worse:
        summary += f" ({', '.join(worse)} significantly worse than {control!r})"
    return "no_difference", None, summary + "; reading it again later stays valid"


def _compare(
    control: str,
    challenger: str,
    members: dict[str, npt.NDArray[np.bool_]],
    correct: npt.NDArray[np.bool_],
    settings: SequentialTestSettings,
    challengers: int,
) -> Comparison:
    pair = members[control] | members[challenger]
    path = always_valid_p_values(
        members[challenger][pair], correct[pair], settings.min_samples, settings.mixture_sd
    )
    if not path.p_values.size:
        return Comparison(control, challenger, math.nan, 1.0, False, None)
    adjusted = np.minimum(1.0, path.p_values * challengers)
    significant = bool(adjusted[-1] <= settings.alpha)
    better = None
    if significant:
        first = int(np.argmax(adjusted <= settings.alpha))
        better = challenger if path.differences[first] > 0 else control
    return Comparison(
        control, challenger, float(path.differences[-1]), float(adjusted[-1]), significant, better
    )


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 0.001 else "<0.001"
