"""Sticky weighted assignment, by simulation against known truth: shares follow the weights, a key
keeps its arm in any process, and a weight change moves few keys."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter

import numpy as np

from server.experiments.assignment import random_arm, sticky_arm
from server.experiments.definitions import Arm
from server.gateway.domain import ModelRef

KEYS = [f"user-{i}" for i in range(10_000)]


def arms(*weights: float) -> list[Arm]:
    return [Arm(f"arm{i}", ModelRef("cnn", version=i + 1), w) for i, w in enumerate(weights)]


def assignment(weights: tuple[float, ...], keys: list[str] = KEYS) -> list[str]:
    chosen = arms(*weights)
    return [sticky_arm("exp", chosen, key).name for key in keys]


def shares(names: list[str], count: int) -> list[float]:
    counts = Counter(names)
    return [counts[f"arm{i}"] / len(names) for i in range(count)]


def test_key_shares_follow_the_weights() -> None:
    for weights in [(50, 50), (10, 90), (1, 2, 3, 4), (0, 30, 70)]:
        total = sum(weights)
        for share, weight in zip(shares(assignment(weights), len(weights)), weights, strict=True):
            assert abs(share - weight / total) < 0.02, (weights, share)


def test_an_arm_of_weight_zero_gets_no_key() -> None:
    assert "arm0" not in set(assignment((0, 1)))


def test_the_same_key_gets_the_same_arm_in_another_process() -> None:
    here = assignment((30, 30, 40), KEYS[:200])
    script = (
        "from server.experiments.assignment import sticky_arm\n"
        "from server.experiments.definitions import Arm\n"
        "from server.gateway.domain import ModelRef\n"
        "arms = [Arm(f'arm{i}', ModelRef('cnn', version=i + 1), w)"
        " for i, w in enumerate((30, 30, 40))]\n"
        "print(' '.join(sticky_arm('exp', arms, f'user-{i}').name for i in range(200)))\n"
    )
    # A different hash seed: nothing per process may go into the assignment.
    other = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        cwd=".",
    ).stdout.split()
    assert other == here


def test_with_two_arms_only_keys_of_the_shrinking_arm_move() -> None:
    before = assignment((50, 50))
    after = assignment((20, 80))
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert all(b == "arm0" and a == "arm1" for b, a in moved)
    assert abs(len(moved) / len(KEYS) - 0.30) < 0.02  # once the weight that changed hands


def test_keys_moved_are_at_most_twice_the_weight_that_changed_hands() -> None:
    rng = np.random.default_rng(7)
    keys = KEYS[:4000]
    for _ in range(20):
        old = rng.dirichlet(np.ones(4))
        new = rng.dirichlet(np.ones(4))
        changed_hands = float(np.sum(np.clip(new - old, 0, None)))
        before = assignment(tuple(old), keys)
        after = assignment(tuple(new), keys)
        moved = sum(b != a for b, a in zip(before, after, strict=True)) / len(keys)
        # Sampling noise on 4,000 keys is about 0.008; allow three of it.
        assert moved <= 2 * changed_hands + 0.025, (old, new, moved, changed_hands)
        # A key may only leave an arm that shrank, or join one that grew.
        for b, a in zip(before, after, strict=True):
            if b != a:
                assert new[int(b[3:])] < old[int(b[3:])] or new[int(a[3:])] > old[int(a[3:])]


def test_random_draws_follow_the_weights() -> None:
    rng = random.Random(3)
    chosen = arms(25, 75)
    counts = Counter(random_arm(chosen, rng).name for _ in range(10_000))
    assert abs(counts["arm0"] / 10_000 - 0.25) < 0.02
