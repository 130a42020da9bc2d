"""`make serve`'s orchestrator as a user runs it: real processes, the committed config, the
printed classify, experiment, feedback and report commands run as printed on a real photo, the
example canary trained in the background and moved to version 2, and a clean Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.model_factory import publish_tiny
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
CIFAR10 = REPO.parent / "shared/datasets/cifar-10-batches-py"
READY_TIMEOUT_S = 180.0
CANARY_TIMEOUT_S = 600.0


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


def run_printed(line: str, *extra: str) -> str:
    """Runs a command line as the stack printed it (placeholders filled by the caller)."""
    command = [*shlex.split(line.strip()), *extra]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


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


def stop_stack(stack: subprocess.Popen[str]) -> None:
    stack.send_signal(signal.SIGINT)
    try:
        assert stack.wait(timeout=30) == 0
    finally:
        if stack.poll() is None:
            stack.kill()


def test_serve_prints_a_working_classify_command(tmp_path: Path) -> None:
    model_root = tmp_path / "models"
    stack, gateway_port = start_stack(
        tmp_path, CIFAR10_DIR=str(CIFAR10) if CIFAR10.is_dir() else ""
    )
    target = ["--target", f"127.0.0.1:{gateway_port}"]
    try:
        usage = read_until(stack, "Ctrl-C stops both servers", READY_TIMEOUT_S)
        lines = usage.splitlines()

        def printed(pattern: str) -> str:
            """The printed command matching `pattern`, with its continuation lines."""
            index = next(i for i, line in enumerate(lines) if re.search(pattern, line))
            command = lines[index]
            while command.rstrip().endswith("\\"):
                index += 1
                command = command.rstrip()[:-1] + " " + lines[index].strip()
            return command

        out = run_printed(printed(r"/classify \S+ --model"), *target, "--json")
        answer = json.loads(out.splitlines()[0])
        assert answer["model"] == "cnn"
        assert answer["version"] == 1
        probabilities = [s["probability"] for s in answer["scores"]]
        assert len(probabilities) == 10
        assert abs(sum(probabilities) - 1.0) < 1e-5
        rendered = (tmp_path / "run" / "models.config").read_text()
        assert f'base_path: "{model_root / "cnn"}"' in rendered

        through = json.loads(run_printed(printed(r"--experiment"), *target, "--json"))
        assert through["experiment"] == "cnn-stable-vs-canary" and through["arm"]
        feedback = printed(r"imgclf-experiment feedback").replace(
            "<request id>", through["request_id"]
        )
        assert "recorded" in run_printed(feedback, *target)
        report = run_printed(printed(r"imgclf-experiment report"), *target)
        assert "Verdict: INSUFFICIENT_DATA" in report
        weights = run_printed(printed(r"imgclf-experiment set-weights"), *target)
        assert "stable 90, canary 10" in weights
        if CIFAR10.is_dir():
            read_until(stack, "canary -> version 2", CANARY_TIMEOUT_S)
            out = run_printed(printed(r"/classify \S+ --model"), *target, "--json")
            canary = printed(r"/classify \S+ --model").replace("--label stable", "--label canary")
            assert json.loads(run_printed(canary, *target, "--json"))["version"] == 2
            assert json.loads(out)["version"] == 1
    finally:
        stop_stack(stack)


def test_serve_starts_a_crashed_backend_again(tmp_path: Path) -> None:
    stack, gateway_port = start_stack(tmp_path, EXAMPLE_CANARY="0")
    photo = REPO.parent / "shared/testdata/images/odd/jpeg_baseline_rgb.jpg"
    classify = [
        str(Path(sys.executable).parent / "classify"),
        str(photo),
        "--model",
        "cnn",
        "--target",
        f"127.0.0.1:{gateway_port}",
    ]
    try:
        started = read_until(stack, "Ctrl-C stops both servers", READY_TIMEOUT_S)
        pid = int(re.search(r"model backend started \(pid (\d+)\)", started).group(1))  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        down = subprocess.run(classify, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert down.returncode != 0 and "UNAVAILABLE" in down.stderr, down.stderr
        read_until(stack, "model backend started again", 60)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            again = subprocess.run(classify, cwd=REPO, capture_output=True, text=True, timeout=60)
            if again.returncode == 0:
                break
            assert "UNAVAILABLE" in again.stderr, again.stderr
            assert time.monotonic() < deadline, "the stack never served again"
            time.sleep(0.5)
        assert stack.poll() is None
    finally:
        stop_stack(stack)
