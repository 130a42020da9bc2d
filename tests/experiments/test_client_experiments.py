"""The client library and the command lines against a real gateway: classify through an
experiment, feedback, compare, the report (as a table and as JSON) and the Admin calls."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from imgclf_client import (
    AsyncClient,
    Client,
    Experiment,
    ExperimentArm,
    InvalidInput,
    ModelRef,
    NotFound,
    PermissionDenied,
    ServerError,
)
from PIL import Image

from server.gateway.server import Gateway
from tests.experiments.conftest import ADMIN_TOKEN, EXPERIMENT, GatewayFactory, Stubs

BIN = Path(sys.executable).parent
PIXELS = np.random.default_rng(5).integers(0, 256, (32, 32, 3), dtype=np.uint8)


async def test_async_client_through_an_experiment(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    async with AsyncClient(f"127.0.0.1:{gateway.port}", admin_token=ADMIN_TOKEN) as client:
        result = await client.classify(PIXELS, experiment=EXPERIMENT, routing_key="user-1")
        assert (result.experiment, result.arm) in {(EXPERIMENT, "stable"), (EXPERIMENT, "canary")}
        again = await client.classify(PIXELS, experiment=EXPERIMENT, routing_key="user-1")
        assert again.arm == result.arm
        stored = await client.feedback(result.request_id, "cat")
        assert (stored.class_index, stored.duplicate) == (3, False)
        assert (await client.feedback(result.request_id, 3)).duplicate
        with pytest.raises(NotFound):
            await client.feedback("unknown-request", 1)
        report = await client.experiment_report(EXPERIMENT)
        arm = next(a for a in report.arms if a.name == result.arm)
        assert (arm.requests, arm.feedback) == (2, 1)
        assert report.verdict.outcome == "INSUFFICIENT_DATA"
        answers = await client.compare(PIXELS, ["cnn:1", "cnn@canary", ModelRef("cnn", version=7)])
        assert [a.model for a in answers] == [
            ModelRef("cnn", 1),
            ModelRef("cnn", label="canary"),
            ModelRef("cnn", 7),
        ]
        assert [getattr(a.result, "version", None) for a in answers[:2]] == [1, 2]
        assert isinstance(answers[2].result, NotFound)
        (listed,) = await client.list_experiments()
        updated = await client.update_experiment(
            listed.with_weights({"stable": 0}), expected_revision=listed.revision
        )
        assert [a.weight for a in updated.arms] == [0, 50]
        assert (await client.classify(PIXELS, experiment=EXPERIMENT)).arm == "canary"


def test_client_checks_arguments_before_calling() -> None:
    with Client("127.0.0.1:1") as client:
        with pytest.raises(InvalidInput):
            client.classify(PIXELS, model="cnn", experiment=EXPERIMENT)
        with pytest.raises(InvalidInput):
            client.classify(PIXELS)
        with pytest.raises(InvalidInput):
            client.classify(PIXELS, model="cnn", version=0)
        with pytest.raises(InvalidInput):
            client.compare(PIXELS, ["cnn"])
        with pytest.raises(InvalidInput):
            client.feedback("", 1)
        with pytest.raises(InvalidInput, match="admin_token"):
            client.end_experiment(EXPERIMENT)
        arms = [ExperimentArm("a", ModelRef("cnn"), 0), ExperimentArm("b", ModelRef("cnn"), 0)]
        with Client("127.0.0.1:1", admin_token="t") as admin:
            with pytest.raises(InvalidInput, match="sum to 0"):
                admin.create_experiment(Experiment("x", arms))
            with pytest.raises(InvalidInput, match="duplicate"):
                admin.create_experiment(Experiment("x", [arms[0], arms[0]]))


async def test_sync_client_admin_calls_need_the_token(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    target = f"127.0.0.1:{gateway.port}"

    def calls() -> None:
        with Client(target, admin_token="wrong") as client, pytest.raises(PermissionDenied):
            client.end_experiment(EXPERIMENT)
        with Client(target, admin_token=ADMIN_TOKEN) as client:
            assert client.end_experiment(EXPERIMENT).ended
            with pytest.raises(ServerError):
                client.classify(PIXELS, experiment=EXPERIMENT)

    await asyncio.to_thread(calls)


async def run(*command: str | Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *map(str, command),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_command_lines(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs], tmp_path: Path
) -> None:
    gateway = await make_gateway()
    target = ["--target", f"127.0.0.1:{gateway.port}"]
    image = tmp_path / "image.png"
    Image.fromarray(PIXELS).save(image)
    code, out, _ = await run(
        BIN / "classify",
        image,
        "--experiment",
        EXPERIMENT,
        "--routing-key",
        "u9",
        "--json",
        *target,
    )
    assert code == 0
    answer = json.loads(out)
    assert answer["experiment"] == EXPERIMENT and answer["arm"] in ("stable", "canary")
    code, out, _ = await run(
        BIN / "imgclf-experiment", "feedback", answer["request_id"], "frog", *target
    )
    assert code == 0 and "'frog' (6)" in out
    code, out, _ = await run(BIN / "imgclf-experiment", "report", EXPERIMENT, *target)
    assert code == 0
    assert "arm" in out and "accuracy [95% CI]" in out and "Verdict: INSUFFICIENT_DATA" in out
    code, out, _ = await run(BIN / "imgclf-experiment", "report", EXPERIMENT, "--json", *target)
    assert code == 0 and json.loads(out)["verdict"]["outcome"] == "INSUFFICIENT_DATA"
    code, _, err = await run(BIN / "imgclf-experiment", "report", "nope", *target)
    assert code == 1 and "NOT_FOUND" in err
    token = tmp_path / "token"
    token.write_text(ADMIN_TOKEN + "\n")
    admin = [*target, "--token-file", token]
    code, out, _ = await run(
        BIN / "imgclf-experiment", "set-weights", EXPERIMENT, "stable=10", "canary=90", *admin
    )
    assert code == 0 and "stable 10, canary 90" in out
    definition = tmp_path / "exp.toml"
    definition.write_text(
        '[experiments.cli-exp]\narms = [{ name = "one", model = "cnn", version = 1 },'
        ' { name = "two", model = "cnn", version = 2 }]\n'
    )
    code, out, _ = await run(BIN / "imgclf-experiment", "create", definition, *admin)
    assert code == 0 and "created cli-exp (revision 1)" in out
    code, out, _ = await run(BIN / "imgclf-experiment", "list", *target)
    assert code == 0 and "cli-exp" in out and "one=cnn:1" in out
    code, _, err = await run(BIN / "imgclf-experiment", "end", "cli-exp", *target)
    assert code == 2 and "admin_token" in err
    code, out, _ = await run(BIN / "imgclf-experiment", "end", "cli-exp", *admin)
    assert code == 0 and "ended cli-exp" in out
