"""`make serve`'s orchestrator as a user runs it: real processes, the committed config, the
printed classify command run on a real photo, and a clean Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.model_factory import publish_tiny

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def read_until_ready(process: subprocess.Popen[str]) -> str:
    """The stack's output up to the end of its usage text."""
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("the stack exited early:\n" + "".join(seen))
        seen.append(line)
        if "Ctrl-C stops both servers" in line:
            return "".join(seen)
    raise AssertionError("the stack did not come up in time:\n" + "".join(seen))


def test_serve_prints_a_working_classify_command(tmp_path: Path) -> None:
    model_root = tmp_path / "models"
    publish_tiny(model_root, "cnn", seed=0)
    gateway_port, backend_port = free_port(), free_port()
    env = {
        **os.environ,
        "MODEL_ROOT": str(model_root),
        "RUN_DIR": str(tmp_path / "run"),
        "GATEWAY_PORT": str(gateway_port),
        "BACKEND_PORT": str(backend_port),
        "IMGCLF_GATEWAY_HOST": "127.0.0.1",
        "IMGCLF_GATEWAY_METRICS_PORT": "0",
    }
    stack = subprocess.Popen(
        [sys.executable, "-m", "server.dev_stack"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        usage = read_until_ready(stack)
        command_line = next(
            line.strip() for line in usage.splitlines() if re.search(r"/classify \S+ --model", line)
        )
        command = [*shlex.split(command_line), "--target", f"127.0.0.1:{gateway_port}", "--json"]
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout.splitlines()[0])
        assert answer["model"] == "cnn"
        assert answer["version"] == 1
        probabilities = [s["probability"] for s in answer["scores"]]
        assert len(probabilities) == 10
        assert abs(sum(probabilities) - 1.0) < 1e-5
        rendered = (tmp_path / "run" / "models.config").read_text()
        assert f'base_path: "{model_root / "cnn"}"' in rendered
    finally:
        stack.send_signal(signal.SIGINT)
        try:
            assert stack.wait(timeout=30) == 0
        finally:
            if stack.poll() is None:
                stack.kill()
