"""Rollout plans: the steps a new model version goes through and the thresholds it must meet.

Plans live in `serving_config/rollout.toml`, one `[plans.NAME]` table each:

    [plans.default]
    experiment = "{model}-stable-vs-canary"   # the experiment that splits the traffic
    [plans.default.shadow]                    # optional: before any live traffic
    min_duration_s = 30
    min_requests = 100
    [[plans.default.steps]]                   # live steps: the canary's share of the traffic
    weight = 10
    min_duration_s = 60
    min_requests = 100
    [plans.default.thresholds]
    max_error_rate = 0.01     # canary calls failing for the server's reasons
    max_p99_ratio = 2.0       # canary p99 over stable p99
    min_agreement = 0.9       # shadow step: same top class as stable
    verdict = true            # fail when the experiment's verdict names stable better

A step passes once it has lasted `min_duration_s`, the canary (or, in the shadow step, the
shadow) has answered `min_requests` calls in it, and every check holds; a failed check rolls
back at once. The plan a rollout starts with is stored with it, so a resumed rollout follows
the same plan even if the file changed.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SHADOW, CANARY = "shadow", "canary"


class PlanError(ValueError):
    """The plan is refused; the message says what is wrong."""


@dataclass(frozen=True)
class Step:
    kind: str  # SHADOW or CANARY
    weight: float  # the canary arm's share, 0..100 (0 in the shadow step)
    min_duration_s: float
    min_requests: int

    def describe(self) -> str:
        return "shadow" if self.kind == SHADOW else f"canary {self.weight:g}%"


@dataclass(frozen=True)
class Thresholds:
    max_error_rate: float = 0.01
    max_p99_ratio: float = 2.0
    min_agreement: float = 0.9
    verdict: bool = True


@dataclass(frozen=True)
class Plan:
    name: str
    steps: tuple[Step, ...]
    thresholds: Thresholds = field(default_factory=Thresholds)
    experiment: str = "{model}-stable-vs-canary"
    stable_label: str = "stable"
    canary_label: str = "canary"
    load_timeout_s: float = 300.0
    settle_s: float = 3.0
    poll_interval_s: float = 2.0
    retire_previous: bool = True

    def experiment_for(self, model: str) -> str:
        return self.experiment.replace("{model}", model)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        fields = dict(data)
        fields["steps"] = tuple(Step(**s) for s in fields.get("steps", ()))
        fields["thresholds"] = Thresholds(**fields.get("thresholds", {}))
        plan = cls(**fields)
        validate(plan)
        return plan


def _number(table: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PlanError(f"{where}: {key} must be a number, got {value!r}")
    return float(value)


def _step(table: Mapping[str, Any], kind: str, where: str) -> Step:
    unknown = sorted(set(table) - {"weight", "min_duration_s", "min_requests"})
    if unknown:
        raise PlanError(f"{where}: unknown key(s) {', '.join(unknown)}")
    weight = 0.0 if kind == SHADOW else _number(table, "weight", math.nan, where)
    return Step(
        kind,
        weight,
        _number(table, "min_duration_s", 60.0, where),
        int(_number(table, "min_requests", 100, where)),
    )


def validate(plan: Plan) -> None:
    where = f"plan '{plan.name}'"
    canary = [s for s in plan.steps if s.kind == CANARY]
    if not canary:
        raise PlanError(f"{where} has no canary step ([[plans.{plan.name}.steps]] with a weight)")
    if any(s.kind == SHADOW for s in plan.steps[1:]):
        raise PlanError(f"{where}: the shadow step must come first")
    weights = [s.weight for s in canary]
    if any(not 0 < w <= 100 for w in weights):
        raise PlanError(f"{where}: step weights must be above 0 and at most 100, got {weights}")
    if weights != sorted(weights):
        raise PlanError(f"{where}: step weights must not go down, got {weights}")
    if any(s.min_duration_s < 0 or s.min_requests < 0 for s in plan.steps):
        raise PlanError(f"{where}: min_duration_s and min_requests must be >= 0")
    t = plan.thresholds
    if not (0 <= t.max_error_rate <= 1 and t.max_p99_ratio > 0 and 0 <= t.min_agreement <= 1):
        raise PlanError(
            f"{where}: thresholds need 0 <= max_error_rate <= 1, max_p99_ratio > 0 and "
            "0 <= min_agreement <= 1"
        )
    if not plan.experiment or plan.stable_label == plan.canary_label:
        raise PlanError(f"{where}: needs an experiment and two different labels")


def from_table(name: str, table: Mapping[str, Any]) -> Plan:
    where = f"plan '{name}'"
    known = {
        "experiment",
        "stable_label",
        "canary_label",
        "load_timeout_s",
        "settle_s",
        "poll_interval_s",
        "retire_previous",
        "shadow",
        "steps",
        "thresholds",
    }
    unknown = sorted(set(table) - known)
    if unknown:
        raise PlanError(f"{where}: unknown key(s) {', '.join(unknown)}")
    steps: list[Step] = []
    if "shadow" in table:
        steps.append(_step(table["shadow"], SHADOW, f"{where}, shadow"))
    for index, entry in enumerate(table.get("steps", [])):
        steps.append(_step(entry, CANARY, f"{where}, steps[{index}]"))
    thresholds_table = table.get("thresholds", {})
    defaults = Thresholds()
    thresholds = Thresholds(
        max_error_rate=_number(thresholds_table, "max_error_rate", defaults.max_error_rate, where),
        max_p99_ratio=_number(thresholds_table, "max_p99_ratio", defaults.max_p99_ratio, where),
        min_agreement=_number(thresholds_table, "min_agreement", defaults.min_agreement, where),
        verdict=bool(thresholds_table.get("verdict", defaults.verdict)),
    )
    base = Plan(name, tuple(steps), thresholds)
    plan = Plan(
        name=name,
        steps=tuple(steps),
        thresholds=thresholds,
        experiment=str(table.get("experiment", base.experiment)),
        stable_label=str(table.get("stable_label", base.stable_label)),
        canary_label=str(table.get("canary_label", base.canary_label)),
        load_timeout_s=_number(table, "load_timeout_s", base.load_timeout_s, where),
        settle_s=_number(table, "settle_s", base.settle_s, where),
        poll_interval_s=_number(table, "poll_interval_s", base.poll_interval_s, where),
        retire_previous=bool(table.get("retire_previous", base.retire_previous)),
    )
    validate(plan)
    return plan


def load_plan(path: Path, name: str) -> Plan:
    """Plan `name` of the TOML file at `path`."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise PlanError(f"cannot read the rollout plans in {path}: {error}") from error
    plans = data.get("plans", {})
    if name not in plans:
        raise PlanError(f"{path} has no plan '{name}' (plans: {', '.join(plans) or 'none'})")
    return from_table(name, plans[name])
