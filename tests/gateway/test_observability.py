"""Metrics, batching and access logs of a real gateway, read back the way operators read them:
the /metrics endpoint over HTTP, a real Prometheus scraping it, and the JSON log lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import grpc
import pytest
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

from server.gateway.server import Gateway, create_server
from server.logs import JsonFormatter
from tests.gateway.conftest import gateway_settings

HOPPER = Path(__file__).resolve().parents[3] / "shared/testdata/images/odd/jpeg_baseline_rgb.jpg"
PROMETHEUS = shutil.which("prometheus")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def classify(model: str = "cnn", **selector: object) -> pb.ClassifyRequest:
    return pb.ClassifyRequest(
        encoded=HOPPER.read_bytes(),
        model=pb.ModelSelector(name=model, **selector),  # type: ignore[arg-type]
    )


async def test_metrics_count_calls_by_model_version_and_code(fresh_gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fresh_gateway.port}") as channel:
        stub = classifier_pb2_grpc.ClassifierStub(channel)
        for _ in range(3):
            await stub.Classify(classify(version=1))
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Classify(classify(model="nope"))
    assert fresh_gateway.metrics_port
    text = await asyncio.to_thread(scrape, fresh_gateway.metrics_port)
    requests = "imgclf_gateway_requests_total"
    ok = {"method": "Classify", "model": "cnn", "version": "1", "code": "OK"}
    assert sample(text, requests, **ok) == 3
    # An unconfigured model name is counted under one fixed value, never as a series of its own.
    assert sample(text, requests, method="Classify", model="_unknown", code="NOT_FOUND") == 1
    assert 'model="nope"' not in text
    assert sample(text, "imgclf_gateway_request_seconds_count", method="Classify") == 4
    for stage in ("preprocess", "queue", "backend"):
        assert sample(text, "imgclf_gateway_stage_seconds_count", stage=stage) == 3, stage
    assert sample(text, "imgclf_gateway_batch_size_count") == 3


async def concurrent_calls(gateway: Gateway, count: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = classifier_pb2_grpc.ClassifierStub(channel)
        replies = await asyncio.gather(*(stub.Classify(classify(version=2)) for _ in range(count)))
    assert {r.model_version for r in replies} == {2}


async def test_concurrent_requests_share_backend_calls(fresh_gateway: Gateway) -> None:
    await concurrent_calls(fresh_gateway, 32)
    text = await asyncio.to_thread(scrape, fresh_gateway.metrics_port or 0)
    batches = sample(text, "imgclf_gateway_batch_size_count")
    images = sample(text, "imgclf_gateway_batch_size_sum")
    assert images == 32
    assert batches < 32, "no two requests were ever sent together"


async def test_batching_off_sends_every_image_alone(backend_port: int, models_config: Path) -> None:
    gateway = await create_server(gateway_settings(backend_port, models_config, batching=False))
    try:
        await concurrent_calls(gateway, 16)
        text = await asyncio.to_thread(scrape, gateway.metrics_port or 0)
    finally:
        await gateway.stop(0)
    assert sample(text, "imgclf_gateway_batch_size_count") == 16
    assert sample(text, "imgclf_gateway_batch_size_sum") == 16


async def test_one_json_log_line_per_call_with_its_request_id(fresh_gateway: Gateway) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("imgclf.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{fresh_gateway.port}") as channel:
            stub = classifier_pb2_grpc.ClassifierStub(channel)
            reply = await stub.Classify(classify(label="canary"))
            mine = classify(version=9)
            mine.request_id = "trace-42"
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Classify(mine)
    finally:
        access.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["request_id"] == reply.request_id and len(reply.request_id) >= 16
    assert (first["method"], first["model"], first["version"], first["code"]) == (
        "Classify",
        "cnn",
        "2",
        "OK",
    )
    assert first["duration_ms"] > 0
    assert (second["request_id"], second["code"]) == ("trace-42", "NOT_FOUND")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def query(port: int, promql: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
    except OSError:
        return []
    return list(body.get("data", {}).get("result", []))


@pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus is not installed (make setup installs it)"
)
async def test_a_real_prometheus_scrapes_the_gateway(
    fresh_gateway: Gateway, tmp_path: Path
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fresh_gateway.port}") as channel:
        stub = classifier_pb2_grpc.ClassifierStub(channel)
        for _ in range(5):
            await stub.Classify(classify(label="stable"))
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: imgclf-gateway\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{fresh_gateway.metrics_port}']\n"
    )
    web_port = free_port()
    prometheus = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{web_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    promql = 'imgclf_gateway_requests_total{method="Classify",model="cnn",version="1",code="OK"}'
    try:
        deadline = time.monotonic() + 60
        result: list[dict[str, object]] = []
        while not result and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            result = await asyncio.to_thread(query, web_port, promql)
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
    assert result, "Prometheus never returned the gateway's request counter"
    value = result[0]["value"]
    assert isinstance(value, list)
    assert float(value[1]) == 5
    assert result[0]["metric"]["job"] == "imgclf-gateway"  # type: ignore[index]
