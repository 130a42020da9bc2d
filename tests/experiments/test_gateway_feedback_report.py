"""Feedback and reports through a real gateway with a real SQLite store: feedback semantics, every
report figure recomputed here from the calls the test made, a verdict that names the better arm,
the HTTP verdict endpoints on the report port (and not on the metrics port), a
restart that keeps the report, and retention."""

from __future__ import annotations

import asyncio
import json
import math
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import numpy as np
import pytest
from imgclf.v1 import classifier_pb2, experiments_pb2

from server.experiments.records import PredictionRecord, Role
from server.gateway.server import Gateway
from server.store import ExperimentStore
from tests.experiments.conftest import EXPERIMENT, GatewayFactory, Stubs, raw_image, through
from tests.support.http import request

FEEDBACK_TOML = f"""
[experiments.{EXPERIMENT}]
arms = [
  {{ name = "stable", model = "cnn", label = "stable", weight = 50 }},
  {{ name = "canary", model = "cnn", label = "canary", weight = 50 }},
]
[experiments.{EXPERIMENT}.analysis]
min_samples = 1000
"""
Z95 = 1.959963984540054


def wilson(successes: int, n: int) -> tuple[float, float]:
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return centre - half, centre + half


def feedback(
    request_id: str, *, index: int | None = None, name: str | None = None
) -> classifier_pb2.FeedbackRequest:
    request = classifier_pb2.FeedbackRequest(request_id=request_id)
    if index is not None:
        request.class_index = index
    if name is not None:
        request.class_name = name
    return request


async def report(stubs: Stubs, name: str = EXPERIMENT) -> experiments_pb2.ExperimentReport:
    return await stubs.experiments.GetExperimentReport(
        experiments_pb2.GetExperimentReportRequest(name=name)
    )


async def code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code()


async def test_feedback_semantics(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    # A long flush interval: feedback must find a record still in the gateway's buffer.
    gateway = await make_gateway(prediction_log_flush_interval_s=60.0)
    stub = connect(gateway).classifier
    result = await stub.Classify(through(key="u1"))
    recorded = await stub.Feedback(feedback(result.request_id, index=3))
    assert recorded.outcome == classifier_pb2.FeedbackResponse.RECORDED
    assert (recorded.class_index, recorded.class_name, recorded.experiment) == (
        3,
        "cat",
        EXPERIMENT,
    )
    again = await stub.Feedback(feedback(result.request_id, name="cat"))
    assert again.outcome == classifier_pb2.FeedbackResponse.DUPLICATE
    with pytest.raises(grpc.aio.AioRpcError) as conflict:
        await stub.Feedback(feedback(result.request_id, index=4))
    assert conflict.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "first answer stands" in (conflict.value.details() or "")
    assert (await stub.Feedback(feedback(result.request_id, index=3))).class_index == 3

    other = await stub.Classify(through(key="u2"))
    assert (
        await code_of(stub.Feedback(feedback("no-such-request", index=1)))
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        await code_of(stub.Feedback(feedback(other.request_id, name="unicorn")))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        await code_of(stub.Feedback(feedback(other.request_id, index=10)))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        await code_of(stub.Feedback(feedback(other.request_id))) == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert await code_of(stub.Feedback(feedback("", index=1))) == grpc.StatusCode.INVALID_ARGUMENT
    plain = await stub.Classify(
        classifier_pb2.ClassifyRequest(
            raw=raw_image(1), model=classifier_pb2.ModelSelector(name="cnn")
        )
    )
    assert (
        await code_of(stub.Feedback(feedback(plain.request_id, index=1)))
        == grpc.StatusCode.NOT_FOUND
    )
    named = await stub.Feedback(feedback(other.request_id, name="ship"))
    assert named.class_index == 8


async def test_report_figures_match_the_calls_made(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    stubs = connect(await make_gateway(FEEDBACK_TOML))
    results = [await stubs.classifier.Classify(through(seed=i, key=f"user-{i}")) for i in range(60)]
    truth = {r.request_id: (i * 7) % 10 for i, r in enumerate(results) if i % 3}
    for request_id, true_class in truth.items():
        await stubs.classifier.Feedback(feedback(request_id, index=true_class))
    got = {a.name: a for a in (await report(stubs)).arms}
    by_arm: dict[str, list[classifier_pb2.ClassifyResponse]] = defaultdict(list)
    for result in results:
        by_arm[result.arm].append(result)
    assert set(by_arm) == {"stable", "canary"} == set(got)
    for arm, calls in by_arm.items():
        figures = got[arm]
        assert figures.requests == len(calls) and dict(figures.errors) == {}
        assert {v.version: v.count for v in figures.versions} == {
            calls[0].model_version: len(calls)
        }
        top = Counter(c.scores[0].index for c in calls)
        assert {c.index: c.count for c in figures.predicted_classes} == dict(top)
        names = {c.index: c.name for c in figures.predicted_classes}
        assert all(names[c.scores[0].index] == c.scores[0].name for c in calls)
        assert figures.mean_confidence == pytest.approx(
            np.mean([c.scores[0].probability for c in calls]), rel=1e-6
        )
        judged = [c for c in calls if c.request_id in truth]
        correct = sum(c.scores[0].index == truth[c.request_id] for c in judged)
        assert (figures.feedback, figures.correct) == (len(judged), correct)
        assert figures.accuracy == pytest.approx(correct / len(judged))
        low, high = wilson(correct, len(judged))
        assert figures.accuracy_interval.low == pytest.approx(low)
        assert figures.accuracy_interval.high == pytest.approx(high)
        latency = figures.latency
        assert 0 < latency.p50_ms <= latency.p95_ms <= latency.p99_ms
    verdict = (await report(stubs)).verdict
    assert verdict.outcome == experiments_pb2.Verdict.INSUFFICIENT_DATA
    samples = {arm: sum(c.request_id in truth for c in calls) for arm, calls in by_arm.items()}
    assert dict(verdict.samples) == samples
    assert verdict.needed == 1000 - min(samples.values())
    assert verdict.min_samples == 1000 and "mSPRT" in verdict.test


async def test_the_verdict_names_the_arm_that_is_right_more_often(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs], exp_backend: int
) -> None:
    toml = FEEDBACK_TOML.replace("min_samples = 1000", "min_samples = 30")
    gateway = await make_gateway(toml)
    stubs = connect(gateway)
    for i in range(300):
        result = await stubs.classifier.Classify(through(seed=1000 + i, key=f"user-{i}"))
        # The ground truth is what version 1 (the stable arm's) says: stable is always right.
        reference = await stubs.classifier.Classify(
            classifier_pb2.ClassifyRequest(
                raw=raw_image(1000 + i), model=classifier_pb2.ModelSelector(name="cnn", version=1)
            )
        )
        await stubs.classifier.Feedback(
            feedback(result.request_id, index=reference.scores[0].index)
        )
    verdict = (await report(stubs)).verdict
    assert verdict.outcome == experiments_pb2.Verdict.WINNER, verdict.summary
    assert verdict.winner == "stable"
    assert verdict.p_value <= 0.05
    assert gateway.report_port
    body = await asyncio.to_thread(
        get_json, gateway.report_port, f"/experiments/{EXPERIMENT}/verdict"
    )
    assert (body["experiment"], body["outcome"], body["winner"]) == (EXPERIMENT, "WINNER", "stable")
    assert body["p_value"] == pytest.approx(verdict.p_value)
    assert body["samples"] == dict(verdict.samples)


def get_json(port: int, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def http_status(port: int, path: str, method: str = "GET") -> int:
    try:
        get_json(port, path, method)
    except urllib.error.HTTPError as error:
        return error.code
    return 200


async def test_http_endpoints_on_the_report_port(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    gateway = await make_gateway()
    await connect(gateway).classifier.Classify(through())
    port = gateway.report_port
    assert port and port != gateway.metrics_port
    whole = await asyncio.to_thread(get_json, port, f"/experiments/{EXPERIMENT}/report")
    assert whole["experiment"]["name"] == EXPERIMENT
    assert sum(int(a["requests"]) for a in whole["arms"]) == 1
    verdict = await asyncio.to_thread(get_json, port, f"/experiments/{EXPERIMENT}/verdict")
    assert verdict["outcome"] == "INSUFFICIENT_DATA" and verdict["needed"] == 20
    head = await asyncio.to_thread(request, port, f"/experiments/{EXPERIMENT}/verdict", "HEAD")
    assert head.status == 200 and head.body == b""
    assert await asyncio.to_thread(http_status, port, "/experiments/nope/verdict") == 404
    long = await asyncio.to_thread(request, port, "/experiments/" + "x" * 8000 + "/verdict")
    assert long.status == 404 and len(long.body) < 1000  # the name is not echoed whole
    assert await asyncio.to_thread(http_status, port, f"/experiments/{EXPERIMENT}/") == 404
    assert await asyncio.to_thread(http_status, port, "/experiments//verdict") == 404
    assert await asyncio.to_thread(http_status, port, "/anything-else") == 404
    assert await asyncio.to_thread(http_status, port, "/metrics") == 404  # not metrics
    posted = await asyncio.to_thread(request, port, f"/experiments/{EXPERIMENT}/verdict", "POST")
    assert posted.status == 405 and posted.headers["allow"] == "GET, HEAD"


async def test_the_metrics_port_serves_no_experiment_data(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    gateway = await make_gateway()
    await connect(gateway).classifier.Classify(through())
    port = gateway.metrics_port
    assert port
    for path in (f"/experiments/{EXPERIMENT}/verdict", f"/experiments/{EXPERIMENT}/report"):
        for method in ("GET", "HEAD", "POST"):
            reply = await asyncio.to_thread(request, port, path, method)
            assert reply.status == 404, (path, method)
            assert EXPERIMENT.encode() not in reply.body
    assert (await asyncio.to_thread(request, port, "/metrics")).status == 200


async def test_the_report_port_can_be_turned_off(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(report_port=-1)
    assert gateway.report_port is None
    assert gateway.metrics_port
    path = f"/experiments/{EXPERIMENT}/verdict"
    assert await asyncio.to_thread(http_status, gateway.metrics_port, path) == 404


async def test_a_restart_keeps_the_report(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    first = await make_gateway()
    stub = connect(first).classifier
    for i in range(20):
        result = await stub.Classify(through(seed=i, key=f"k{i}"))
        await stub.Feedback(feedback(result.request_id, index=i % 10))
    before = await report(connect(first))
    await first.stop(0)
    second = await make_gateway()
    after = await report(connect(second))
    assert [(a.name, a.requests, a.feedback, a.correct) for a in after.arms] == [
        (a.name, a.requests, a.feedback, a.correct) for a in before.arms
    ]
    assert sum(a.requests for a in after.arms) == 20


async def test_retention_prunes_old_records(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs], tmp_path: Any
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'retention.db'}"
    first = await make_gateway(store_url=url)
    await first.stop(0)  # the store is migrated now
    old = datetime.now(UTC) - timedelta(days=10)
    async with await ExperimentStore.open(url) as store:
        await store.insert_predictions(
            [
                PredictionRecord(
                    f"old-{i}",
                    EXPERIMENT,
                    "stable",
                    Role.PRIMARY,
                    "cnn",
                    1,
                    "OK",
                    1,
                    0.5,
                    1.0,
                    old,
                    "test",
                )
                for i in range(5)
            ]
        )
        await make_gateway(store_url=url, prediction_retention_days=3)

        async def pruned() -> bool:
            return not await store.predictions_for("old-0")

        for _ in range(200):
            if await pruned():
                break
            await asyncio.sleep(0.05)
        assert await pruned()


async def test_a_report_since_a_time_covers_only_later_calls_but_the_whole_verdict(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    stubs = connect(await make_gateway())
    for i in range(5):
        result = await stubs.classifier.Classify(through(seed=i, key=f"early-{i}"))
        await stubs.classifier.Feedback(feedback(result.request_id, index=1))
    since = datetime.now(UTC)
    for i in range(7):
        result = await stubs.classifier.Classify(through(seed=i, key=f"late-{i}"))
        await stubs.classifier.Feedback(feedback(result.request_id, index=1))
    request = experiments_pb2.GetExperimentReportRequest(name=EXPERIMENT)
    request.since.FromDatetime(since)
    window = await stubs.experiments.GetExperimentReport(request)
    assert sum(a.requests for a in window.arms) == 7
    assert sum(a.feedback for a in window.arms) == 7
    assert sum(window.verdict.samples.values()) == 12
    assert sum(a.requests for a in (await report(stubs)).arms) == 12
