"""Rollouts under steady load, through the real stack: a good version shadowed, ramped
10% -> 50% -> 100% and promoted; one that fails to load rejected before any traffic; one that
answers wrongly rolled back by the analysis; a manual rollback mid-ramp; two rollouts of one model
refused. Across all of them no caller's request fails, and each step's traffic share is within
5 points of its weight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from server.experiments.assignment import sticky_arm
from server.experiments.definitions import Arm
from server.gateway.domain import ModelRef
from server.model_versions import BackendControl
from server.rollout.driver import RolloutError
from server.store import RolloutStore
from server.store.engine import create_store_engine
from tests.model_host.helpers import add_corrupt_version
from tests.rollout.conftest import (
    CORRUPT,
    EXPERIMENT,
    GOOD,
    KEYS,
    WRONG,
    Drivers,
    Stack,
    quick_plan,
    step_windows,
)

WAIT_S = 120.0


def expected_arm(key: str, canary_weight: float) -> str:
    arms = [
        Arm("stable", ModelRef("cnn", label="stable"), 100 - canary_weight),
        Arm("canary", ModelRef("cnn", label="canary"), canary_weight),
    ]
    return sticky_arm(EXPERIMENT, arms, key).name


def assert_shares_follow_the_weights(stack: Stack, drivers: Drivers) -> None:
    """In every live step each call went to the arm its key gets under that step's weights, and
    the keys the callers cycle through split within 5 points of the weight, so the traffic does.
    (Calls are routed by key, so the split of the calls is the split of the keys they carry.)"""
    windows = step_windows(drivers.events)
    assert len(windows) == 3, windows
    keys = [f"user-{i}" for i in range(KEYS)]
    for start, end, weight in windows:
        key_share = 100 * sum(expected_arm(k, weight) == "canary" for k in keys) / len(keys)
        assert abs(key_share - weight) <= 5, f"{weight}% step: keys split {key_share:.1f}%"
        calls = [c for c in stack.calls if c.kind == "experiment" and start <= c.at <= end]
        assert len(calls) >= 20, f"too little traffic in the {weight}% step: {len(calls)}"
        misrouted = [c for c in calls if c.arm != expected_arm(c.key, weight)]
        assert misrouted == [], f"{weight}% step: {len(misrouted)} of {len(calls)} calls misrouted"


def versions_served(stack: Stack, kind: str) -> set[int]:
    return {c.version for c in stack.calls if c.kind == kind and not c.error}


async def test_a_good_version_is_shadowed_ramped_and_promoted(drivers: Drivers) -> None:
    stack = drivers.stack
    rollout = await drivers.make().start("cnn", GOOD, quick_plan())
    assert rollout.state == "promoted", rollout.detail
    assert stack.failures == []
    assert stack.labels() == {"stable": GOOD, "canary": GOOD}
    assert stack.served_versions() == [GOOD]
    with BackendControl(f"127.0.0.1:{stack.backend_port}") as backend:
        backend.wait_gone("cnn", 1, 30)
        assert backend.available("cnn") == {GOOD}
    kinds = [e["event"] for e in drivers.events]
    assert (
        kinds.index("label")
        < kinds.index("step")
        < kinds.index("promoted")
        < kinds.index("retired")
    )
    shadow_step = [e for e in drivers.events if e["event"] == "analysis" and e["step"] == 0]
    assert shadow_step[-1]["status"] == "passed"
    assert shadow_step[-1]["figures"]["agreement"]["value"] == 1.0
    assert_shares_follow_the_weights(stack, drivers)
    await asyncio.sleep(1.0)  # calls made after the promotion
    assert GOOD in versions_served(stack, "stable")


async def test_a_version_that_fails_to_load_is_rejected_before_any_traffic(
    drivers: Drivers,
) -> None:
    stack = drivers.stack
    before = len(stack.calls)
    rollout = await drivers.make().start("cnn", CORRUPT, quick_plan())
    assert rollout.state == "rejected"
    assert "failed to load" in rollout.detail
    assert stack.labels() == {"stable": 1, "canary": 1}
    assert stack.served_versions() == [1]
    assert not any(e["event"] in ("weights", "step", "label") for e in drivers.events)
    # A corrupt version published while the callers go on takes nothing away either.
    add_corrupt_version(stack.root / "cnn", stack.root / "cnn" / "1")
    await asyncio.sleep(1.0)
    assert len(stack.calls) > before
    assert stack.failures == []
    assert versions_served(stack, "experiment") == {1}
    assert CORRUPT not in versions_served(stack, "canary")


@pytest.mark.parametrize("shadow", [True, False], ids=["caught by the shadow", "by the verdict"])
async def test_a_version_that_answers_wrongly_is_rolled_back_automatically(
    drivers: Drivers, shadow: bool
) -> None:
    stack = drivers.stack
    plan = quick_plan(shadow=shadow, min_requests=100_000)  # only a failed check ends a step
    rollout = await drivers.make().start("cnn", WRONG, plan)
    assert rollout.state == "rolled_back"
    reason = "agreement with stable" if shadow else "the verdict names stable better"
    assert reason in rollout.detail
    assert stack.labels() == {"stable": 1, "canary": 1}
    assert stack.served_versions() == [1]
    assert stack.failures == []
    if shadow:
        # Caught before any caller of the experiment was sent to it.
        assert WRONG not in versions_served(stack, "experiment")


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_a_manual_rollback_in_the_middle_of_the_ramp(drivers: Drivers) -> None:
    stack = drivers.stack
    plan = quick_plan(shadow=False, min_requests=100_000)
    running = asyncio.ensure_future(drivers.make().start("cnn", GOOD, plan))
    store = RolloutStore(create_store_engine(stack.store_url, timeout_s=10), timeout_s=10)
    try:

        async def ramping() -> bool:
            rollout = await store.active_rollout("cnn")
            return rollout is not None and rollout.state == "ramping"

        await wait_for(ramping, "the ramp")
        await asyncio.sleep(1.5)
        rolled = await drivers.make().rollback("cnn", "an operator saw enough")
        assert rolled.state == "rolled_back"
        finished = await asyncio.wait_for(running, WAIT_S)
        assert finished.state == "rolled_back"
    finally:
        await store.close()
    assert stack.labels() == {"stable": 1, "canary": 1}
    assert stack.served_versions() == [1]
    assert stack.failures == []
    with pytest.raises(RolloutError, match="no rollout"):
        await drivers.make().resume("cnn")


async def test_two_rollouts_of_one_model_are_refused(drivers: Drivers) -> None:
    plan = quick_plan(shadow=False, min_requests=100_000)
    running = asyncio.ensure_future(drivers.make().start("cnn", GOOD, plan))
    store = RolloutStore(create_store_engine(drivers.stack.store_url, timeout_s=10), timeout_s=10)
    try:

        async def started() -> bool:
            return await store.active_rollout("cnn") is not None

        await wait_for(started, "the first rollout")
        with pytest.raises(RolloutError, match="still"):
            await drivers.make().start("cnn", WRONG, plan)
        aborted = await drivers.make().abort("cnn", "test over")
        assert aborted.state == "aborted"
        await asyncio.wait_for(running, WAIT_S)
    finally:
        await store.close()
    assert drivers.stack.failures == []
