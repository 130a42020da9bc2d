"""Which arm serves a call: sticky by routing key, otherwise drawn at random by weight.

With a key, every arm draws a number from a hash of (experiment, arm, key) — the same on every
process and every replica, since nothing random per process goes into it — and the arm whose
exponential "race time" `-ln(u) / weight` is smallest wins (weighted rendezvous hashing). Each
arm then wins a share of keys exactly proportional to its weight. When weights change, a key can
only leave an arm whose weight shrank, or join one whose weight grew: with two arms only keys of
the shrinking arm move, and in general the share of keys that move is at most twice the weight
that changed hands.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence

from server.experiments.definitions import Arm

_SCALE = float(1 << 64)


def _uniform(experiment: str, arm: str, key: str) -> float:
    """A number in (0, 1) fixed by its inputs."""
    material = "\x1f".join((experiment, arm, key)).encode()
    value = int.from_bytes(hashlib.blake2b(material, digest_size=8).digest(), "big")
    return (value + 0.5) / _SCALE


def sticky_arm(experiment: str, arms: Sequence[Arm], key: str) -> Arm:
    """The arm `key` lands on while the weights stay the same."""
    best: Arm | None = None
    best_time = math.inf
    for arm in arms:
        if arm.weight <= 0:
            continue
        race_time = -math.log(_uniform(experiment, arm.name, key)) / arm.weight
        if race_time < best_time:
            best, best_time = arm, race_time
    if best is None:
        raise ValueError(f"experiment '{experiment}' has no arm with a weight above 0")
    return best


def random_arm(arms: Sequence[Arm], rng: random.Random) -> Arm:
    """An arm drawn with probability proportional to its weight."""
    return rng.choices(list(arms), weights=[a.weight for a in arms])[0]


def choose_arm(experiment: str, arms: Sequence[Arm], key: str, rng: random.Random) -> Arm:
    return sticky_arm(experiment, arms, key) if key else random_arm(arms, rng)
