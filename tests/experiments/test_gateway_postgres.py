"""Two gateways on one real PostgreSQL (a throwaway cluster in a temporary directory): one report
that adds both, feedback through either replica, definitions that reach every replica, and an
outage of the database that no Classify call notices."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator

import grpc
import pytest
from imgclf.v1 import admin_pb2, classifier_pb2, experiments_pb2

from server.gateway.server import Gateway
from server.store import upgrade
from tests.experiments.conftest import ADMIN, EXPERIMENT, GatewayFactory, Stubs, through
from tests.support.postgres import PostgresCluster, postgres_or_skip

WAIT_S = 60.0


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    with postgres_or_skip() as cluster:
        yield cluster


@pytest.fixture
def pg_url(postgres: PostgresCluster) -> str:
    """A fresh, migrated database for each test."""
    url = postgres.create_database(f"gw_{time.monotonic_ns()}")
    upgrade(url)
    return url


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def report(stubs: Stubs) -> experiments_pb2.ExperimentReport:
    return await stubs.experiments.GetExperimentReport(
        experiments_pb2.GetExperimentReportRequest(name=EXPERIMENT)
    )


def totals(reply: experiments_pb2.ExperimentReport) -> tuple[int, int, int]:
    return (
        sum(a.requests for a in reply.arms),
        sum(a.feedback for a in reply.arms),
        sum(a.correct for a in reply.arms),
    )


async def test_two_gateways_on_one_postgres_give_one_report(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs], pg_url: str
) -> None:
    first = connect(await make_gateway(store_url=pg_url, store_migrate_on_start=False))
    second = connect(await make_gateway(store_url=pg_url, store_migrate_on_start=False))
    correct = 0
    for i in range(30):
        serving, other = (first, second) if i % 2 else (second, first)
        result = await serving.classifier.Classify(through(seed=i, key=f"user-{i}"))
        true_class = i % 10
        correct += result.scores[0].index == true_class
        # Feedback through the other replica: the record may still be in the first one's buffer.
        await other.classifier.Feedback(
            classifier_pb2.FeedbackRequest(request_id=result.request_id, class_index=true_class)
        )
    assert totals(await report(first)) == totals(await report(second)) == (30, 30, correct)
    # A definition changed through one replica reaches the other.
    (current,) = (
        await first.experiments.ListExperiments(experiments_pb2.ListExperimentsRequest())
    ).experiments
    current.arms[0].weight = 0.0
    updated = await first.admin.UpdateExperiment(
        admin_pb2.UpdateExperimentRequest(experiment=current), metadata=ADMIN
    )

    async def second_sees_it() -> bool:
        listed = await second.experiments.ListExperiments(experiments_pb2.ListExperimentsRequest())
        return listed.experiments[0].revision == updated.revision

    await wait_until(second_sees_it, "the update on the second replica")
    answers = {(await second.classifier.Classify(through(key=f"k{i}"))).arm for i in range(20)}
    assert answers == {"canary"}


def store_up(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    line = next(line for line in text.splitlines() if line.startswith("imgclf_gateway_store_up "))
    return float(line.split()[-1])


async def test_a_database_outage_leaves_classify_working(
    make_gateway: GatewayFactory,
    connect: Callable[[Gateway], Stubs],
    pg_url: str,
    postgres: PostgresCluster,
) -> None:
    gateway = await make_gateway(store_url=pg_url, store_timeout_s=1.0)
    stubs = connect(gateway)
    for i in range(10):
        await stubs.classifier.Classify(through(seed=i))
    await wait_until(lambda: _total_is(stubs, 10), "the first records")
    postgres.stop()
    try:
        during = [await stubs.classifier.Classify(through(seed=i), timeout=10) for i in range(40)]
        assert len(during) == 40 and all(r.experiment == EXPERIMENT for r in during)
        with pytest.raises(grpc.aio.AioRpcError) as report_down:
            await report(stubs)
        assert report_down.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError) as feedback_down:
            await stubs.classifier.Feedback(
                classifier_pb2.FeedbackRequest(request_id=during[0].request_id, class_index=1)
            )
        assert feedback_down.value.code() == grpc.StatusCode.UNAVAILABLE
        assert gateway.metrics_port
        assert await asyncio.to_thread(store_up, gateway.metrics_port) == 0.0
    finally:
        postgres.start()
    # The records kept in the buffer during the outage are written once the database is back.
    await wait_until(lambda: _total_is(stubs, 50), "the buffered records")
    assert gateway.metrics_port
    assert await asyncio.to_thread(store_up, gateway.metrics_port) == 1.0


async def _total_is(stubs: Stubs, count: int) -> bool:
    try:
        return totals(await report(stubs))[0] == count
    except grpc.aio.AioRpcError:
        return False


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    )


async def test_a_full_buffer_drops_records_and_counts_them_never_a_call(
    make_gateway: GatewayFactory,
    connect: Callable[[Gateway], Stubs],
    pg_url: str,
    postgres: PostgresCluster,
) -> None:
    gateway = await make_gateway(
        store_url=pg_url, store_timeout_s=1.0, prediction_log_max_pending=5
    )
    stubs = connect(gateway)
    await stubs.classifier.Classify(through(seed=0))
    await wait_until(lambda: _total_is(stubs, 1), "the first record")
    postgres.stop()
    try:
        answers = [await stubs.classifier.Classify(through(seed=i), timeout=10) for i in range(20)]
        assert len(answers) == 20
        assert gateway.metrics_port
        dropped = 'imgclf_gateway_prediction_log_dropped_total{reason="overflow"}'
        assert await asyncio.to_thread(metric, gateway.metrics_port, dropped) == 15
    finally:
        postgres.start()
    await wait_until(lambda: _total_is(stubs, 6), "the records kept in the buffer")
