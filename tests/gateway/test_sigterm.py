"""SIGTERM on the gateway process (`python -m server.gateway`): health turns NOT_SERVING at once
while calls are still answered for the drain notice, then the process drains and exits 0 within
notice + grace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
PHOTO = REPO.parent / "shared/testdata/images/odd/jpeg_baseline_rgb.jpg"
NOTICE_S, GRACE_S = 2.0, 2.0


def test_sigterm_announces_not_serving_then_drains_and_exits(
    backend_port: int, models_config: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "IMGCLF_GATEWAY_HOST": "127.0.0.1",
        "IMGCLF_GATEWAY_PORT": str(port),
        "IMGCLF_GATEWAY_BACKEND_TARGET": f"127.0.0.1:{backend_port}",
        "IMGCLF_GATEWAY_MODELS_CONFIG_PATH": str(models_config),
        "IMGCLF_GATEWAY_METRICS_PORT": "-1",
        "IMGCLF_GATEWAY_REPORT_PORT": "-1",
        "IMGCLF_GATEWAY_STORE_URL": "",
        "IMGCLF_GATEWAY_EXPERIMENTS_PATH": str(tmp_path / "none.toml"),
        "IMGCLF_GATEWAY_DRAIN_NOTICE_S": str(NOTICE_S),
        "IMGCLF_GATEWAY_GRACE_PERIOD_S": str(GRACE_S),
    }
    gateway = subprocess.Popen(
        [sys.executable, "-m", "server.gateway"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert gateway.stdout is not None
        assert "gateway ready" in gateway.stdout.readline()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            stub = classifier_pb2_grpc.ClassifierStub(channel)
            request = pb.ClassifyRequest(
                encoded=PHOTO.read_bytes(), model=pb.ModelSelector(name="cnn")
            )
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == (
                health_pb2.HealthCheckResponse.SERVING
            )
            gateway.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            deadline = signalled + NOTICE_S
            while (
                health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                != health_pb2.HealthCheckResponse.NOT_SERVING
            ):
                assert time.monotonic() < deadline, "health never said NOT_SERVING"
                time.sleep(0.02)
            # Still answering during the notice.
            assert len(stub.Classify(request, timeout=10).scores) == 10
        code = gateway.wait(timeout=NOTICE_S + GRACE_S + 15)
        assert code == 0
        assert time.monotonic() - signalled < NOTICE_S + GRACE_S + 15
    finally:
        if gateway.poll() is None:
            gateway.kill()
