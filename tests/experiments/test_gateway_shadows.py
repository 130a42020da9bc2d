"""Shadow arms on a real gateway, behind a real proxy that can stall or break the shadow's model:
the caller's answers never wait for the shadow nor change with it, a full shadow queue drops
copies (counted), and the report pairs each shadow answer with the primary one."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from imgclf.v1 import classifier_pb2, experiments_pb2

from server.gateway.server import Gateway
from tests.experiments.conftest import EXPERIMENT, GatewayFactory, Stubs, raw_image, through
from tests.support.backend_proxy import BackendProxy

SHADOW_TOML = f"""
[experiments.{EXPERIMENT}]
arms = [
  {{ name = "stable", model = "cnn", label = "stable", weight = 50 }},
  {{ name = "canary", model = "cnn", label = "canary", weight = 50 }},
]
shadows = [{{ name = "candidate", model = "shadow", sample_rate = 1.0 }}]
"""
CALLS = 24
WAIT_S = 60.0


@pytest.fixture
async def proxy(exp_backend: int) -> AsyncIterator[BackendProxy]:
    running = BackendProxy(f"127.0.0.1:{exp_backend}", rule=lambda model: None)
    running.port = await running.start()  # type: ignore[attr-defined]
    yield running
    await running.stop()


def by_model(seed: int, name: str, version: int) -> classifier_pb2.ClassifyRequest:
    return classifier_pb2.ClassifyRequest(
        raw=raw_image(seed),
        model=classifier_pb2.ModelSelector(name=name, version=version),
        top_k=0,
    )


async def direct_answers(
    stubs: Stubs, results: list[classifier_pb2.ClassifyResponse]
) -> list[list[float]]:
    """What the arm's model answers for the same images when called by name."""
    answers = []
    for seed, result in enumerate(results):
        reply = await stubs.classifier.Classify(by_model(seed, "cnn", result.model_version))
        answers.append([s.probability for s in reply.scores])
    return answers


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def report(stubs: Stubs) -> experiments_pb2.ExperimentReport:
    return await stubs.experiments.GetExperimentReport(
        experiments_pb2.GetExperimentReportRequest(name=EXPERIMENT)
    )


async def test_a_stalled_shadow_never_holds_the_caller(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs], proxy: BackendProxy
) -> None:
    proxy.rule = lambda model: "hold" if model == "shadow" else None
    gateway = await make_gateway(SHADOW_TOML, backend_port=proxy.port)  # type: ignore[attr-defined]
    stubs = connect(gateway)
    results = [
        await stubs.classifier.Classify(through(seed=i, key=f"user-{i}"), timeout=10)
        for i in range(CALLS)
    ]
    # Every caller has its answer while no shadow copy has got past the proxy.
    assert proxy.forwarded.get("shadow", 0) == 0
    assert proxy.held >= 1
    assert [[s.probability for s in r.scores] for r in results] == await direct_answers(
        stubs, results
    )
    proxy.release()

    async def all_shadows_recorded() -> bool:
        shadows = (await report(stubs)).shadows
        return bool(shadows) and shadows[0].requests == CALLS

    await wait_until(all_shadows_recorded, "the shadow records")
    (shadow,) = (await report(stubs)).shadows
    assert shadow.name == "candidate" and shadow.errors == {}
    expected_agreements = 0
    for seed, result in enumerate(results):
        shadow_top = (await stubs.classifier.Classify(by_model(seed, "shadow", 1))).scores[0].index
        expected_agreements += shadow_top == result.scores[0].index
    assert (shadow.pairs, shadow.agreements) == (CALLS, expected_agreements)
    assert shadow.agreement == pytest.approx(expected_agreements / CALLS)


async def test_a_failing_shadow_changes_nothing_for_the_caller(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs], proxy: BackendProxy
) -> None:
    proxy.rule = lambda model: "fail" if model == "shadow" else None
    gateway = await make_gateway(SHADOW_TOML, backend_port=proxy.port)  # type: ignore[attr-defined]
    stubs = connect(gateway)
    results = [await stubs.classifier.Classify(through(seed=i)) for i in range(CALLS)]
    assert [[s.probability for s in r.scores] for r in results] == await direct_answers(
        stubs, results
    )

    async def failures_recorded() -> bool:
        shadows = (await report(stubs)).shadows
        return bool(shadows) and shadows[0].requests == CALLS

    await wait_until(failures_recorded, "the failed shadow records")
    (shadow,) = (await report(stubs)).shadows
    assert dict(shadow.errors) == {"INTERNAL": CALLS}
    assert shadow.pairs == 0
    primary = {a.name: a for a in (await report(stubs)).arms}
    assert sum(a.requests for a in primary.values()) == CALLS
    assert all(a.errors == {} for a in primary.values())


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return str(reply.read().decode())


async def test_a_full_shadow_queue_drops_copies_and_counts_them(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs], proxy: BackendProxy
) -> None:
    proxy.rule = lambda model: "hold" if model == "shadow" else None
    gateway = await make_gateway(
        SHADOW_TOML,
        backend_port=proxy.port,  # type: ignore[attr-defined]
        shadow_queue_size=2,
        shadow_workers=1,
    )
    stubs = connect(gateway)
    for i in range(CALLS):
        await stubs.classifier.Classify(through(seed=i), timeout=10)
    assert gateway.metrics_port
    text = await asyncio.to_thread(scrape, gateway.metrics_port)
    labels = f'arm="candidate",experiment="{EXPERIMENT}",outcome="dropped"'
    dropped = f"imgclf_gateway_shadow_requests_total{{{labels}}}"
    line = next(line for line in text.splitlines() if line.startswith(dropped))
    # One copy is held at the proxy, two wait in the queue; the rest were dropped.
    assert float(line.split()[-1]) == CALLS - 3
    proxy.release()


async def test_calls_that_fail_are_recorded_with_their_code(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    stubs = connect(await make_gateway())
    bad = through(key="same-key")
    bad.raw.pixels = b"\x00" * 5  # not height x width x channels bytes
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.classifier.Classify(bad)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await stubs.classifier.Classify(through(key="same-key"))
    arms = {a.name: a for a in (await report(stubs)).arms}
    served = [a for a in arms.values() if a.requests]
    assert len(served) == 1  # the key is sticky: both calls went to one arm
    assert served[0].requests == 2 and dict(served[0].errors) == {"INVALID_ARGUMENT": 1}
