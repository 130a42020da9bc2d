"""Classify through an experiment on a real gateway and model host: traffic shares, sticky keys
across gateway processes and restarts, few keys moved by a weight change, addressing errors and
metrics whose labels come only from configuration."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from imgclf.v1 import admin_pb2, classifier_pb2, classifier_pb2_grpc, experiments_pb2

from server.gateway.server import Gateway
from tests.experiments.conftest import (
    AB_TOML,
    ADMIN,
    EXPERIMENT,
    GatewayFactory,
    Stubs,
    raw_image,
    through,
)
from tests.support.ports import free_port

CALLS = 10_000
VERSION_OF_ARM = {"stable": 1, "canary": 2}
WEIGHTED_TOML = f"""
[experiments.{EXPERIMENT}]
arms = [
  {{ name = "stable", model = "cnn", label = "stable", weight = 30 }},
  {{ name = "canary", model = "cnn", label = "canary", weight = 70 }},
]
"""


async def stream_arms(stub: classifier_pb2_grpc.ClassifierStub, keys: list[str]) -> list[str]:
    """The arm that served each key, classified over streams of 1,000."""
    arms: list[str] = []
    for start in range(0, len(keys), 1000):
        requests = [
            through(seed=i % 7, key=key) for i, key in enumerate(keys[start : start + 1000])
        ]
        async for answer in stub.ClassifyStream(iter(requests), timeout=120):
            assert answer.WhichOneof("outcome") == "result", answer.error
            result = answer.result
            assert result.experiment == EXPERIMENT
            assert result.model_version == VERSION_OF_ARM[result.arm]
            arms.append(result.arm)
    return arms


async def test_shares_follow_the_weights_over_10000_calls(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    # Without a routing key each call is drawn at random by weight (the keyed shares are
    # checked over 10,000 keys in test_assignment, where they are exact functions of the keys).
    gateway = await make_gateway(WEIGHTED_TOML, store_url="")
    unkeyed = Counter(await stream_arms(connect(gateway).classifier, [""] * CALLS))
    assert abs(unkeyed["stable"] / CALLS - 0.30) <= 0.02, unkeyed


async def test_a_key_keeps_its_arm_and_the_response_names_it(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    stub = connect(await make_gateway()).classifier
    for key in ("alice", "bob", "carol"):
        answers = {
            (r.arm, r.model_version)
            for r in [await stub.Classify(through(key=key)) for _ in range(5)]
        }
        assert len(answers) == 1
        arm, version = answers.pop()
        assert version == VERSION_OF_ARM[arm]


@pytest.fixture
def subprocess_gateway(exp_backend: int, exp_models: Path, tmp_path: Path) -> Iterator[int]:
    """A second gateway in a process of its own (a replica), on its own port."""
    port = free_port()
    experiments = tmp_path / "replica-experiments.toml"
    experiments.write_text(AB_TOML)
    env = {
        **os.environ,
        "IMGCLF_GATEWAY_HOST": "127.0.0.1",
        "IMGCLF_GATEWAY_PORT": str(port),
        "IMGCLF_GATEWAY_BACKEND_TARGET": f"127.0.0.1:{exp_backend}",
        "IMGCLF_GATEWAY_MODELS_CONFIG_PATH": str(exp_models),
        "IMGCLF_GATEWAY_EXPERIMENTS_PATH": str(experiments),
        "IMGCLF_GATEWAY_STORE_URL": "",
        "IMGCLF_GATEWAY_METRICS_PORT": "-1",
        "IMGCLF_GATEWAY_REPORT_PORT": "-1",
        "PYTHONHASHSEED": "4242",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "server.gateway"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port
    finally:
        process.terminate()
        process.wait(30)


async def wait_ready(port: int) -> classifier_pb2_grpc.ClassifierStub:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    deadline = time.monotonic() + 120
    while True:
        try:
            await asyncio.wait_for(channel.channel_ready(), 5)
            stub = classifier_pb2_grpc.ClassifierStub(channel)
            await stub.ListModels(classifier_pb2.ListModelsRequest(), timeout=5)
            return stub
        except (TimeoutError, grpc.aio.AioRpcError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_stickiness_across_gateway_processes_and_a_restart(
    make_gateway: GatewayFactory,
    connect: Callable[[Gateway], Stubs],
    subprocess_gateway: int,
) -> None:
    keys = [f"user-{i}" for i in range(300)]
    first = await make_gateway(store_url="")
    here = await stream_arms(connect(first).classifier, keys)
    assert set(here) == {"stable", "canary"}
    await first.stop(0)
    restarted = await make_gateway(store_url="")
    assert await stream_arms(connect(restarted).classifier, keys) == here
    replica = await wait_ready(subprocess_gateway)
    assert await stream_arms(replica, keys) == here


async def test_a_weight_change_moves_only_keys_of_the_shrinking_arm(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    gateway = await make_gateway()
    stubs = connect(gateway)
    keys = [f"user-{i}" for i in range(2000)]
    before = await stream_arms(stubs.classifier, keys)
    (current,) = (
        await stubs.experiments.ListExperiments(experiments_pb2.ListExperimentsRequest())
    ).experiments
    current.arms[0].weight, current.arms[1].weight = 20, 80
    updated = await stubs.admin.UpdateExperiment(
        admin_pb2.UpdateExperimentRequest(experiment=current), metadata=ADMIN
    )
    assert [a.weight for a in updated.arms] == [20, 80]
    after = await stream_arms(stubs.classifier, keys)
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert all(b == "stable" and a == "canary" for b, a in moved), Counter(moved)
    assert abs(len(moved) / len(keys) - 0.30) < 0.04


async def test_addressing_errors(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    stubs = connect(await make_gateway())
    stub = stubs.classifier
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.Classify(through("no-such-experiment"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert "unknown experiment 'no-such-experiment'" in (unknown.value.details() or "")
    both = through()
    both.model.name = "cnn"
    with pytest.raises(grpc.aio.AioRpcError) as mixed:
        await stub.Classify(both)
    assert mixed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as long_key:
        await stub.Classify(through(key="k" * 257))
    assert long_key.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await stubs.admin.EndExperiment(admin_pb2.EndExperimentRequest(name=EXPERIMENT), metadata=ADMIN)
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await stub.Classify(through())
    assert ended.value.code() == grpc.StatusCode.NOT_FOUND
    assert "has ended" in (ended.value.details() or "")
    # A call naming a model still works as before, and names no experiment.
    plain = await stub.Classify(
        classifier_pb2.ClassifyRequest(
            raw=raw_image(0), model=classifier_pb2.ModelSelector(name="cnn", version=1)
        )
    )
    assert (plain.experiment, plain.arm) == ("", "")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return str(reply.read().decode())


async def test_metrics_per_experiment_and_arm_with_configured_labels_only(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    gateway = await make_gateway()
    stub = connect(gateway).classifier
    arms = Counter([(await stub.Classify(through(key=f"k{i}"))).arm for i in range(12)])
    for name in ("not-configured", "x" * 200):
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Classify(through(name))
    assert gateway.metrics_port
    text = await asyncio.to_thread(scrape, gateway.metrics_port)
    for arm, count in arms.items():
        labels = f'arm="{arm}",code="OK",experiment="{EXPERIMENT}"'
        line = f"imgclf_gateway_experiment_requests_total{{{labels}}} {float(count)}"
        assert line in text, line
    assert "not-configured" not in text and "x" * 200 not in text
