"""`make serve`'s orchestrator (`python -m server.dev_stack`) as tests run it: on a tiny published
CNN and free ports, its output read up to a marker, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.model_factory import publish_tiny
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
READY_MARKER = "Ctrl-C stops both servers"


def read_until(process: subprocess.Popen[str], marker: str, timeout_s: float) -> str:
    """The stack's output up to the line holding `marker`."""
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("the stack exited early:\n" + "".join(seen))
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no '{marker}' in time:\n" + "".join(seen))


def start_stack(tmp_path: Path, **extra_env: str) -> tuple[subprocess.Popen[str], int]:
    """`python -m server.dev_stack` on a tiny published CNN; the process and its gateway port."""
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
        "IMGCLF_GATEWAY_REPORT_PORT": "0",
        **extra_env,
    }
    stack = subprocess.Popen(
        [sys.executable, "-m", "server.dev_stack"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return stack, gateway_port


def stop_stack(stack: subprocess.Popen[str]) -> int | None:
    """Ctrl-C, then its exit code; None when it had to be killed after 30 s."""
    stack.send_signal(signal.SIGINT)
    try:
        return stack.wait(timeout=30)
    except subprocess.TimeoutExpired:
        stack.kill()
        stack.wait()
        return None
