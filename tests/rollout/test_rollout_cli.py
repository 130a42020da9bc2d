"""The rollout command line as an operator runs it, under steady load: `start` killed outright in
the middle of a step, `status` showing where it stopped, `resume` finishing it with no failed
request; and the refusals (unknown plan, nothing to resume)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

from server.store import RolloutStore
from server.store.engine import create_store_engine
from tests.rollout.conftest import GOOD, TOKEN, Drivers, Stack, quick_plan_toml

WAIT_S = 120.0


def command(stack: Stack, tmp_path: Path, *args: str) -> list[str]:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    return [
        sys.executable,
        "-m",
        "server.rollout",
        *args,
        "--model",
        "cnn",
        "--config",
        str(stack.config),
        "--backend",
        f"127.0.0.1:{stack.backend_port}",
        "--gateway",
        f"127.0.0.1:{stack.gateway.port}",
        "--token-file",
        str(token),
        "--store-url",
        stack.store_url,
    ]


async def run(argv: list[str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_killed_rollout_is_resumed_and_finished(drivers: Drivers, tmp_path: Path) -> None:
    stack = drivers.stack
    plans = tmp_path / "rollout.toml"
    plans.write_text(quick_plan_toml(shadow=False))
    argv = command(stack, tmp_path, "start", "--version", str(GOOD), "--plan", "test",
                   "--plan-file", str(plans))  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    store = RolloutStore(create_store_engine(stack.store_url, timeout_s=10), timeout_s=10)
    try:
        deadline = time.monotonic() + WAIT_S
        while True:  # until the second step is being analysed
            rollout = await store.active_rollout("cnn")
            events = [] if rollout is None else await store.events(rollout.id)
            if any(e.event["event"] == "analysis" and e.event["step"] == 1 for e in events):
                break
            assert time.monotonic() < deadline, "the rollout never reached its second step"
            assert process.returncode is None, "the rollout ended before it was killed"
            await asyncio.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        assert process.stdout is not None
        lines = [json.loads(line) for line in (await process.stdout.read()).decode().splitlines()]
        assert any(e["event"] == "step" and e["step"] == 1 for e in lines)
        stopped = await store.active_rollout("cnn")
        assert stopped is not None and (stopped.state, stopped.step) == ("ramping", 1)

        code, out, _ = await run(command(stack, tmp_path, "status"))
        assert code == 0
        assert "ramping, step 2 of 3 (canary 50%)" in out
        assert "weights: stable 50, canary 50" in out
        assert "error_rate" in out and "history:" in out
        code, out, _ = await run(command(stack, tmp_path, "status", "--json"))
        assert json.loads(out)["state"] == "ramping"

        code, out, err = await run(command(stack, tmp_path, "resume"))
        assert code == 0, err
        assert '"event": "resumed"' in out and '"event": "promoted"' in out
        finished = await store.latest_rollout("cnn")
        assert finished is not None and finished.state == "promoted"
    finally:
        await store.close()
        if process.returncode is None:
            process.kill()
    assert stack.labels() == {"stable": GOOD, "canary": GOOD}
    assert stack.failures == []


async def test_refusals(stack: Stack, tmp_path: Path) -> None:
    code, _, err = await run(command(stack, tmp_path, "resume"))
    assert code == 2 and "no rollout of 'cnn' to resume" in err
    code, _, err = await run(command(stack, tmp_path, "start", "--version", "2", "--plan", "nope"))
    assert code == 2 and "no plan 'nope'" in err
    code, out, _ = await run(command(stack, tmp_path, "status"))
    assert code == 0 and "no rollout of 'cnn' yet" in out
