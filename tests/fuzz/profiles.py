"""Hypothesis profiles of the fuzz run, picked by the environment variable IMGCLF_FUZZ_PROFILE.

- `ci` (the default, inside `make test`): a few examples per test, derandomized so every CI run
  tries the same inputs, about half a minute in all on a 2-core machine.
- `long` (`make fuzz`): thousands of examples per family (over 10,000 in all), seeded at random
  so each run tries new inputs; a failure prints the `@reproduce_failure` blob to replay it.

No example database is written (`database=None`): nothing appears in the work tree.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

PROFILE_ENV = "IMGCLF_FUZZ_PROFILE"
PROFILE = os.environ.get(PROFILE_ENV, "ci")
_COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        # The session's gateway is shared by every example on purpose: it must keep serving.
        HealthCheck.function_scoped_fixture,
    ],
}
settings.register_profile("ci", max_examples=10, derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=1000, derandomize=False, **_COMMON)
if PROFILE not in ("ci", "long"):
    raise RuntimeError(f"{PROFILE_ENV} must be 'ci' or 'long', not {PROFILE!r}")

F = TypeVar("F", bound=Callable[..., Any])


def fuzz(*, ci: int, long: int) -> Callable[[F], F]:
    """The test's hypothesis settings under the current profile, with its number of examples."""
    count = ci if PROFILE == "ci" else long
    chosen = settings(settings.get_profile(PROFILE), max_examples=count)

    def decorate(test: F) -> F:
        return chosen(test)

    return decorate
