"""`python -m server.rollout status`: the rollout's state, the figures of its current step against
their thresholds, and its history, as text or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from server.rollout.plan import Plan
from server.store import RolloutEvent, StoredRollout


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _summary(event: dict[str, Any]) -> str:
    kind = event.get("event", "?")
    skip = {"time", "rollout", "model", "version", "event", "figures"}
    details = ", ".join(f"{k}={_value(v)}" for k, v in event.items() if k not in skip)
    return f"{kind}: {details}" if details else str(kind)


def render_status(
    rollout: StoredRollout, events: Sequence[RolloutEvent], *, as_json: bool = False
) -> str:
    plan = Plan.from_dict(rollout.plan)
    analyses = [e.event for e in events if e.event.get("event") == "analysis"]
    weights = [e.event for e in events if e.event.get("event") == "weights"]
    if as_json:
        return json.dumps(
            {
                "id": rollout.id,
                "model": rollout.model,
                "version": rollout.version,
                "state": rollout.state,
                "step": rollout.step,
                "steps": [s.describe() for s in plan.steps],
                "detail": rollout.detail,
                "weights": weights[-1] if weights else None,
                "analysis": analyses[-1] if analyses else None,
                "history": [e.event for e in events],
            },
            indent=2,
        )
    step = (
        f"step {rollout.step + 1} of {len(plan.steps)} ({plan.steps[rollout.step].describe()})"
        if 0 <= rollout.step < len(plan.steps)
        else "no step yet"
    )
    lines = [
        f"rollout {rollout.id}: {rollout.model} version {rollout.version} "
        f"(from stable {rollout.previous_stable}), {rollout.state}, {step}",
        f"  plan '{plan.name}': " + " -> ".join(s.describe() for s in plan.steps) + " -> promote",
    ]
    if rollout.detail:
        lines.append(f"  {rollout.detail}")
    if weights:
        last = weights[-1]
        lines.append(
            f"  weights: stable {_value(last.get('stable'))}, canary "
            f"{_value(last.get('canary'))}{', shadow on' if last.get('shadow') else ''}"
        )
    if analyses:
        last = analyses[-1]
        lines += [
            "",
            f"  current analysis ({last.get('status')}): {last.get('reason')}",
            "    figure       value        threshold    ok",
        ]
        for name, figure in last.get("figures", {}).items():
            ok = {True: "yes", False: "NO", None: "-"}[figure.get("ok")]
            lines.append(
                f"    {name:<12} {_value(figure.get('value')):<12} "
                f"{figure.get('threshold', ''):<12} {ok}"
            )
    lines += ["", "  history:"]
    shown = [e for e in events if e.event.get("event") != "analysis"] + (
        [events[-1]] if events and events[-1].event.get("event") == "analysis" else []
    )
    for event in shown:
        lines.append(f"    {event.at:%H:%M:%S}  {_summary(event.event)}")
    return "\n".join(lines)
