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

from tests.support.dev_stack import read_until, start_stack, stop_stack

REPO = Path(__file__).resolve().parents[2]
CIFAR10 = REPO.parent / "shared/datasets/cifar-10-batches-py"
READY_TIMEOUT_S = 180.0
CANARY_TIMEOUT_S = 600.0


def run_printed(line: str, *extra: str) -> str:
    """Runs a command line as the stack printed it (placeholders filled by the caller)."""
    command = [*shlex.split(line.strip()), *extra]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


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
        assert stop_stack(stack) == 0


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
        assert stop_stack(stack) == 0
