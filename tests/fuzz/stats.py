"""What a fuzz run saw: cases per family and the status codes answered, printed at the end of the
run and, for `make fuzz`, written to docs/fuzz.md.

A *case* is one example hypothesis ran (shrinking included); one case may make several calls
and a Compare or a stream answers several statuses, so the histogram counts every status seen:
call-level statuses and the per-item statuses inside Compare and ClassifyStream answers.
"""

from __future__ import annotations

import os
import platform
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

FAMILIES: tuple[str, ...] = ("images", "raw pixels", "selectors", "malformed messages")
FORBIDDEN: frozenset[str] = frozenset({"INTERNAL", "UNKNOWN"})


@dataclass
class Tally:
    """Counters shared by every fuzz test of one pytest session."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    by_family: dict[str, Counter[str]] = field(default_factory=dict)
    probes: int = 0
    probe_failures: int = 0
    failures: list[str] = field(default_factory=list)
    problems: Counter[str] = field(default_factory=Counter)
    """Answers outside the property, by kind (shrinking repeats each one many times)."""

    def case(self, family: str) -> None:
        self.cases[family] += 1

    def status(self, family: str, code: str) -> None:
        self.statuses[code] += 1
        self.by_family.setdefault(family, Counter())[code] += 1

    def problem(self, what: str) -> None:
        self.problems[what] += 1

    def forbidden(self) -> int:
        return sum(self.statuses[code] for code in FORBIDDEN)

    def total_cases(self) -> int:
        return sum(self.cases.values())

    def empty(self) -> bool:
        return not self.cases

    def summary_lines(self) -> list[str]:
        lines = [
            f"fuzz cases: {self.total_cases()} (gateway probes: {self.probes}, "
            f"failed: {self.probe_failures})"
        ]
        for family in FAMILIES:
            seen = self.by_family.get(family, Counter())
            histogram = ", ".join(f"{code} {n}" for code, n in seen.most_common())
            lines.append(f"  {family:<19} {self.cases[family]:>6} cases   {histogram}")
        total = ", ".join(f"{code} {n}" for code, n in self.statuses.most_common())
        lines.append(f"  statuses seen: {total}")
        lines.append(f"  INTERNAL or UNKNOWN: {self.forbidden()}")
        for what, n in self.problems.most_common():
            lines.append(f"  outside the property ({n}x): {what}")
        return lines


TALLY = Tally()
"""The one tally of this process (pytest runs the fuzz tests in one process)."""


def report_markdown(tally: Tally, *, command: str, profile: str, wall_s: float) -> str:
    """docs/fuzz.md: what ran, how long, and every status seen."""
    rows = "\n".join(
        f"| {family} | {tally.cases[family]:,} | "
        + (
            ", ".join(
                f"{code} {n:,}" for code, n in tally.by_family.get(family, Counter()).most_common()
            )
            or "none"
        )
        + " |"
        for family in FAMILIES
    )
    statuses = "\n".join(
        f"| {code} | {n:,} |" for code, n in sorted(tally.statuses.items(), key=lambda kv: -kv[1])
    )
    problems = "".join(f"\n| {what} | {n:,} |" for what, n in tally.problems.most_common())
    findings = (
        "None: every answer kept to the property."
        if not tally.problems and not tally.failures
        else "Answers outside the property (each kind is repeated while hypothesis shrinks the "
        "input to a minimal one; the minimal inputs are in `tests/fuzz/test_regressions.py`):\n\n"
        "| answer | times |\n| --- | ---: |"
        + problems
        + "\n\nFailing tests:\n"
        + "".join(f"\n- `{name}`" for name in tally.failures)
    )
    return f"""# Fuzzing the gateway

Property-based fuzzing (hypothesis) of the running gateway through real gRPC: an in-process
gateway in front of an in-process model host, both on ephemeral ports, serving tiny real
SavedModels (`tests/model_factory.py`). The target is in `tests/fuzz/`; `make test` runs a short,
derandomized pass of it and `make fuzz` the long one that wrote this page.

**The property:** every call ends with a status from the allowed set (OK, INVALID_ARGUMENT,
NOT_FOUND, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, OUT_OF_RANGE, DEADLINE_EXCEEDED, UNAVAILABLE,
and ALREADY_EXISTS for Feedback or UNAUTHENTICATED for Admin), never INTERNAL or UNKNOWN, with a
bounded message (values echoed back are truncated), also inside Compare answers and stream
items; and the gateway keeps serving: a normal Classify succeeds after every batch of examples.

The four families:
- **images**: mutations (byte flips, truncation, zeroed / repeated / inserted runs, splices) of
  the real files of `shared/testdata/images/odd/`, images made with Pillow in every format it
  writes (modes, sizes, frames, compression options), and arbitrary bytes, with or without a
  known magic number; sent through Classify, Compare and ClassifyStream.
- **raw pixels**: `RawImage` with arbitrary height, width, channels and pixel byte lengths,
  matching or not, up to huge declared sizes.
- **selectors**: model name, version, label and experiment (empty, very long, unicode, unknown,
  negative and huge versions), `top_k`, routing keys and request ids, through Classify, GetModel,
  Compare, ClassifyStream and Feedback; experiment names and `since` times through
  GetExperimentReport; whole experiment definitions (arms, weights and sample rates that are NaN,
  infinite or negative, analysis settings) through the Admin service with a valid token.
- **malformed messages**: arbitrary bytes as the serialized request of every method of the
  Classifier, Experiments and Admin services, valid requests with bytes flipped, truncated or
  inserted, and strings that are not UTF-8; unary and stream items.

An input that broke the property is kept as a plain test in `tests/fuzz/test_regressions.py`.

## Last run

- Command: `{command}` (hypothesis profile `{profile}`)
- Wall time: {wall_s:.0f} s on {os.cpu_count()} cores ({platform.machine()}), \
{datetime.now(UTC):%Y-%m-%d}
- Cases: **{tally.total_cases():,}**; gateway probes (a normal Classify between batches of
  examples): {tally.probes:,}, of which failed: {tally.probe_failures:,}
- INTERNAL or UNKNOWN answers: **{tally.forbidden():,}**

| family | cases | statuses seen |
| --- | ---: | --- |
{rows}

All statuses seen (calls plus the items inside Compare and stream answers):

| status | count |
| --- | ---: |
{statuses}

## Findings

{findings}
"""


def write_report(tally: Tally, path: Path, *, command: str, profile: str, wall_s: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_markdown(tally, command=command, profile=profile, wall_s=wall_s))
