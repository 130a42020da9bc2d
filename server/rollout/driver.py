"""Drives one model version through its plan, keeping its state in the store so it can resume.

    pending -> loading -> labelling -> shadow / ramping (step by step) -> promoting -> promoted
               `-> rejected (failed to load)          `-> rolling_back -> rolled_back
                                                       `-> aborted (traffic back on stable)

Every transition is written to the store before the next action, and every action is
idempotent (set these weights, point this label at that version, retire that version), so a
driver killed anywhere can be resumed from the stored state, and `rollback` or `abort` from
another process take over: the running driver re-reads the state at every poll and stops when it
is no longer its own. The order of actions keeps every call answered: a version is AVAILABLE
before a label names it; traffic leaves an arm, and the gateways' caches (`settle_s`) catch up,
before its label moves; a version is retired only when no label points at it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imgclf_client import (
    AsyncClient,
    Experiment,
    ExperimentArm,
    ExperimentReport,
    ModelRef,
    ServerError,
    ShadowArm,
)

from server import model_versions
from server.model_versions import BackendControl, LoadFailed
from server.rollout.analysis import FAILED, PASSED, SHADOW_ARM, StepAnalysis, analyse
from server.rollout.plan import SHADOW, Plan
from server.store import (
    TERMINAL_STATES,
    RolloutConflict,
    RolloutStateConflict,
    RolloutStore,
    StoredRollout,
)

Emit = Callable[[dict[str, Any]], None]
TAKE_OVER_ATTEMPTS = 20
WHOLE_REFRESH_S = 10.0
WHOLE_REFRESH_POLLS = 5


class RolloutError(Exception):
    """The rollout cannot go on (or start); the message says why."""


class TakenOver(RolloutError):
    """Another command (rollback, abort) changed the rollout's state meanwhile."""


@dataclass(frozen=True)
class Weights:
    stable: float
    canary: float
    shadow: bool = False


class RolloutDriver:
    def __init__(
        self,
        *,
        store: RolloutStore,
        client: AsyncClient,
        backend: BackendControl,
        config_path: Path,
        emit: Emit,
    ) -> None:
        self._store = store
        self._client = client
        self._backend = backend
        self._config = config_path
        self._emit = emit

    # Commands ----------------------------------------------------------------------------------

    async def start(self, model: str, version: int, plan: Plan) -> StoredRollout:
        labels = await asyncio.to_thread(model_versions.labels, self._config, model)
        if plan.stable_label not in labels:
            raise RolloutError(f"model '{model}' has no '{plan.stable_label}' label to roll from")
        if labels[plan.stable_label] == version:
            raise RolloutError(f"version {version} is already '{plan.stable_label}'")
        try:
            rollout = await self._store.create_rollout(
                model,
                version,
                plan.experiment_for(model),
                plan.to_dict(),
                previous_stable=labels[plan.stable_label],
                previous_canary=labels.get(plan.canary_label),
            )
        except RolloutConflict as error:
            raise RolloutError(
                f"rollout {error.existing.id} of '{model}' (version {error.existing.version}) "
                f"is still {error.existing.state}; resume, abort or roll it back first"
            ) from error
        await self._event(
            rollout, "started", plan=plan.name, previous_stable=labels[plan.stable_label]
        )
        return await self.run(rollout)

    async def resume(self, model: str) -> StoredRollout:
        rollout = await self._store.active_rollout(model)
        if rollout is None:
            raise RolloutError(f"no rollout of '{model}' to resume")
        await self._event(rollout, "resumed", state=rollout.state, step=rollout.step)
        return await self.run(rollout)

    async def rollback(self, model: str, reason: str) -> StoredRollout:
        rollout = await self._take_over(model, "rolling_back", reason)
        await self._event(rollout, "rollback", reason=reason)
        return await self._roll_back(rollout)

    async def abort(self, model: str, reason: str) -> StoredRollout:
        rollout = await self._take_over(model, "aborting", reason)
        plan = Plan.from_dict(rollout.plan)
        await self._set_weights(rollout, plan, Weights(100, 0))
        rollout = await self._transition(rollout, "aborted", detail=f"aborted: {reason}")
        await self._event(rollout, "aborted", reason=reason)
        return rollout

    # The state machine -------------------------------------------------------------------------

    async def run(self, rollout: StoredRollout) -> StoredRollout:
        """Drives `rollout` from its stored state to a terminal one; if another command takes it
        over meanwhile, waits for that command to finish and returns its outcome."""
        try:
            return await self._drive(rollout)
        except TakenOver:
            return await self._until_terminal(rollout)

    async def _until_terminal(self, rollout: StoredRollout) -> StoredRollout:
        while True:
            current = await self._current(rollout)
            if current.state in TERMINAL_STATES:
                return current
            await asyncio.sleep(0.2)

    async def _drive(self, rollout: StoredRollout) -> StoredRollout:
        plan = Plan.from_dict(rollout.plan)
        if rollout.state in ("pending", "loading"):
            rollout = await self._transition(rollout, "loading", detail="loading the version")
            try:
                await asyncio.to_thread(
                    model_versions.load_version,
                    self._config,
                    self._backend,
                    rollout.model,
                    rollout.version,
                    timeout_s=plan.load_timeout_s,
                )
            except LoadFailed as error:
                rollout = await self._transition(rollout, "rejected", detail=str(error))
                await self._event(rollout, "rejected", reason=str(error))
                return rollout
            rollout = await self._transition(rollout, "labelling")
        if rollout.state == "labelling":
            await self._start_experiment(rollout, plan)
            await asyncio.to_thread(
                model_versions.set_label,
                self._config,
                self._backend,
                rollout.model,
                plan.canary_label,
                rollout.version,
            )
            await self._event(rollout, "label", label=plan.canary_label, version=rollout.version)
            first = plan.steps[0]
            rollout = await self._enter_step(
                rollout, 0, SHADOW if first.kind == SHADOW else "ramping"
            )
        while rollout.state in ("shadow", "ramping"):
            outcome = await self._run_step(rollout, plan)
            if outcome is None:
                raise TakenOver(f"rollout {rollout.id} was taken over")
            if outcome.status == FAILED:
                rollout = await self._transition(rollout, "rolling_back", detail=outcome.reason)
                await self._event(rollout, "rollback", reason=outcome.reason, automatic=True)
                return await self._roll_back(rollout)
            if rollout.step + 1 < len(plan.steps):
                following = plan.steps[rollout.step + 1]
                state = SHADOW if following.kind == SHADOW else "ramping"
                rollout = await self._enter_step(rollout, rollout.step + 1, state)
            else:
                rollout = await self._transition(rollout, "promoting")
        if rollout.state == "promoting":
            return await self._promote(rollout, plan)
        if rollout.state == "rolling_back":
            return await self._roll_back(rollout)
        return rollout

    async def _run_step(self, rollout: StoredRollout, plan: Plan) -> StepAnalysis | None:
        step = plan.steps[rollout.step]
        weights = (
            Weights(100, 0, shadow=True)
            if step.kind == SHADOW
            else Weights(100 - step.weight, step.weight)
        )
        try:
            await self._set_weights(rollout, plan, weights)
        except ServerError:
            current = await self._current(rollout)
            if current.state != rollout.state or current.step != rollout.step:
                return None  # a rollback or an abort changed the weights meanwhile
            raise
        started = rollout.step_started_at or datetime.now(UTC)
        whole: ExperimentReport | None = None
        whole_at = 0.0
        refresh_s = min(WHOLE_REFRESH_S, WHOLE_REFRESH_POLLS * plan.poll_interval_s)
        await self._event(
            rollout,
            "step",
            step=rollout.step,
            step_kind=step.kind,
            weights={"stable": weights.stable, "canary": weights.canary},
        )
        while True:
            current = await self._current(rollout)
            if current.state != rollout.state or current.step != rollout.step:
                return None
            window = await self._client.experiment_report(rollout.experiment, since=started)
            if whole is None or time.monotonic() - whole_at >= refresh_s:
                # The report since the rollout began (the verdict, stable's latency) changes
                # slowly and costs the most: it is read every few polls only.
                whole = await self._client.experiment_report(
                    rollout.experiment, since=rollout.created_at
                )
                whole_at = time.monotonic()
            elapsed = (datetime.now(UTC) - started).total_seconds()
            analysis = analyse(
                step,
                plan.thresholds,
                window,
                whole,
                elapsed_s=elapsed,
                stable=plan.stable_label,
                canary=plan.canary_label,
            )
            await self._event(
                rollout,
                "analysis",
                step=rollout.step,
                status=analysis.status,
                reason=analysis.reason,
                figures={
                    f.name: {"value": _plain(f.value), "threshold": f.threshold, "ok": f.ok}
                    for f in analysis.figures
                },
            )
            if analysis.status in (PASSED, FAILED):
                return analysis
            await asyncio.sleep(plan.poll_interval_s)

    async def _promote(self, rollout: StoredRollout, plan: Plan) -> StoredRollout:
        model, version = rollout.model, rollout.version
        await asyncio.to_thread(
            model_versions.set_label, self._config, self._backend, model, plan.stable_label, version
        )
        await self._set_weights(rollout, plan, Weights(100, 0))
        await asyncio.to_thread(
            model_versions.set_label, self._config, self._backend, model, plan.canary_label, version
        )
        await self._event(rollout, "promoted", stable=version)
        await asyncio.sleep(plan.settle_s)
        retired = []
        if plan.retire_previous:
            for old in {rollout.previous_stable, rollout.previous_canary} - {None, version}:
                assert old is not None
                if await asyncio.to_thread(
                    model_versions.retire_version, self._config, self._backend, model, old
                ):
                    retired.append(old)
        rollout = await self._transition(
            rollout, "promoted", detail=f"version {version} is {plan.stable_label}"
        )
        await self._event(rollout, "retired", versions=retired)
        return rollout

    async def _roll_back(self, rollout: StoredRollout) -> StoredRollout:
        plan = Plan.from_dict(rollout.plan)
        model = rollout.model
        await self._set_weights(rollout, plan, Weights(100, 0))
        await asyncio.sleep(plan.settle_s)
        labels = await asyncio.to_thread(model_versions.labels, self._config, model)
        previous = rollout.previous_canary or rollout.previous_stable
        if labels.get(plan.canary_label) == rollout.version and previous is not None:
            await asyncio.to_thread(
                model_versions.set_label,
                self._config,
                self._backend,
                model,
                plan.canary_label,
                previous,
            )
            await asyncio.sleep(plan.settle_s)
        await asyncio.to_thread(
            model_versions.retire_version, self._config, self._backend, model, rollout.version
        )
        rollout = await self._transition(rollout, "rolled_back", detail=rollout.detail)
        await self._event(rollout, "rolled_back", canary=previous)
        return rollout

    # Helpers -----------------------------------------------------------------------------------

    async def _start_experiment(self, rollout: StoredRollout, plan: Plan) -> None:
        """All traffic of the rollout's experiment on stable, its report started afresh, so no
        earlier version's answers under the canary arm count in this rollout's analysis."""
        await self._set_weights(rollout, plan, Weights(100, 0), restart=True)

    def _definition(self, rollout: StoredRollout, plan: Plan, weights: Weights) -> Experiment:
        stable = ModelRef(rollout.model, label=plan.stable_label)
        canary = ModelRef(rollout.model, label=plan.canary_label)
        shadows = [ShadowArm(SHADOW_ARM, canary, 1.0)] if weights.shadow else []
        return Experiment(
            rollout.experiment,
            arms=[
                ExperimentArm(plan.stable_label, stable, weights.stable),
                ExperimentArm(plan.canary_label, canary, weights.canary),
            ],
            shadows=shadows,
            description=f"rollout {rollout.id}: {rollout.model} version {rollout.version}",
        )

    async def _set_weights(
        self, rollout: StoredRollout, plan: Plan, weights: Weights, *, restart: bool = False
    ) -> None:
        """Gives the experiment these weights (and the shadow arm or none), then lets every
        gateway replica catch up (`settle_s`)."""
        definition = self._definition(rollout, plan, weights)
        current = next(
            (e for e in await self._client.list_experiments() if e.name == rollout.experiment),
            None,
        )
        if current is None:
            await self._client.create_experiment(definition)
        else:
            same = {a.name: a.weight for a in current.arms} == {
                a.name: a.weight for a in definition.arms
            } and [s.name for s in current.shadows] == [s.name for s in definition.shadows]
            if restart or not same:
                kept = Experiment(
                    definition.name,
                    definition.arms,
                    definition.shadows,
                    current.analysis,
                    definition.description,
                )
                await self._client.update_experiment(
                    kept, expected_revision=current.revision, restart=restart
                )
        await self._event(
            rollout,
            "weights",
            stable=weights.stable,
            canary=weights.canary,
            shadow=weights.shadow,
            restarted=restart,
        )
        await asyncio.sleep(plan.settle_s)

    async def _take_over(self, model: str, state: str, reason: str) -> StoredRollout:
        """Moves the model's rollout, whatever step a running driver has it at, into `state`."""
        for _ in range(TAKE_OVER_ATTEMPTS):
            rollout = await self._active(model)
            try:
                return await self._transition(rollout, state, detail=reason)
            except TakenOver:
                await asyncio.sleep(0.05)  # the running driver moved on: try its new state
        raise RolloutError(f"the rollout of '{model}' keeps changing; try again")

    async def _active(self, model: str) -> StoredRollout:
        rollout = await self._store.active_rollout(model)
        if rollout is None:
            raise RolloutError(f"no rollout of '{model}' is in progress")
        return rollout

    async def _current(self, rollout: StoredRollout) -> StoredRollout:
        current = await self._store.get_rollout(rollout.id)
        assert current is not None
        return current

    async def _enter_step(self, rollout: StoredRollout, step: int, state: str) -> StoredRollout:
        try:
            return await self._store.update_rollout(
                rollout.id,
                state=state,
                step=step,
                step_started_at=datetime.now(UTC),
                expected_state=rollout.state,
            )
        except RolloutStateConflict as error:
            raise TakenOver(f"rollout {rollout.id} is now {error.stored.state}") from error

    async def _transition(
        self, rollout: StoredRollout, state: str, detail: str | None = None
    ) -> StoredRollout:
        try:
            return await self._store.update_rollout(
                rollout.id, state=state, detail=detail, expected_state=rollout.state
            )
        except RolloutStateConflict as error:
            raise TakenOver(
                f"rollout {rollout.id} changed meanwhile (now {error.stored.state}); not going on"
            ) from error

    async def _event(self, rollout: StoredRollout, kind: str, **fields: Any) -> None:
        event = {
            "time": datetime.now(UTC).isoformat(),
            "rollout": rollout.id,
            "model": rollout.model,
            "version": rollout.version,
            "event": kind,
            **fields,
        }
        await self._store.add_event(rollout.id, event)
        self._emit(event)


def _plain(value: float | str | None) -> float | str | None:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
