"""`python -m server.model_host` as a process: TF Serving's flags, serving, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from tests.model_host.helpers import (
    Stubs,
    add_version,
    images,
    model_config,
    predict_request,
    wait_until,
    write_config,
)

REPO = Path(__file__).parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_cli_serves_and_drains_on_sigterm(tmp_path: Path, templates: dict[int, Path]) -> None:
    add_version(tmp_path / "cnn", templates[0])
    config = write_config(
        tmp_path / "models.config", model_config("cnn", "cnn", labels={"stable": 1})
    )
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.model_host",
            f"--port={port}",
            f"--model_config_file={config}",
            "--model_config_file_poll_wait_seconds=1",
            "--file_system_poll_wait_seconds=1",
            "--allow_version_labels_for_unavailable_models=true",
            "--log_format=json",
        ],
        cwd=tmp_path,  # the relative base_path "cnn" resolves here
        env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        running = Stubs(grpc.insecure_channel(f"127.0.0.1:{port}"))

        def up() -> bool:
            if process.poll() is not None:
                pytest.fail(f"the host exited: {process.communicate()[1]}")
            try:
                return running.states() == {1: "AVAILABLE"}
            except grpc.RpcError:
                return False

        wait_until(up, "the CLI host to serve", timeout=60, interval=0.2)
        response = running.predict.Predict(
            predict_request(batch=images(1), label="stable"), timeout=10
        )
        assert response.model_spec.version.value == 1
        running.channel.close()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
        assert '"state": "AVAILABLE"' in stderr and '"model": "cnn"' in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
