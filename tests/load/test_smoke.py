"""The load test's smoke run, inside `make test`: ~15 s of every locust scenario through the real
stack (`server.dev_stack`: model host and gateway, tiny model), failing if any call fails."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.model_factory import publish_tiny
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = {
    "Classify label stable",
    "Classify explicit version",
    "Classify label canary",
    "Classify experiment",
    "Classify formats and sizes",
    "ClassifyStream x16",
    "Invalid input (rejected as expected)",
}
if (REPO.parent / "shared/datasets/cifar-10-batches-py/test_batch").is_file():
    SCENARIOS.add("Feedback")  # the test labels of the images sent through the experiment


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[int]:
    model_root = tmp_path / "models"
    publish_tiny(model_root, "cnn", seed=0)
    port = free_port()
    env = {
        **os.environ,
        "MODEL_ROOT": str(model_root),
        "RUN_DIR": str(tmp_path / "run"),
        "GATEWAY_PORT": str(port),
        "BACKEND_PORT": str(free_port()),
        "IMGCLF_GATEWAY_HOST": "127.0.0.1",
        "IMGCLF_GATEWAY_METRICS_PORT": "0",
        "EXAMPLE_CANARY": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "server.dev_stack"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 180
    for line in process.stdout:
        if "Ctrl-C stops both servers" in line:
            break
        assert time.monotonic() < deadline, "the stack did not come up"
    try:
        yield port
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_a_short_run_of_every_scenario_has_no_failed_call(stack: int, tmp_path: Path) -> None:
    out = tmp_path / "loadtest"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.load.run",
            "--host",
            f"127.0.0.1:{stack}",
            "--no-stack",
            "--users",
            "6",
            "--spawn-rate",
            "6",
            "--run-time",
            "15s",
            "--profile",
            "smoke",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (folder,) = out.iterdir()
    assert (folder / "report.html").is_file()
    with (folder / "locust_stats.csv").open() as handle:
        stats = {row["Name"]: row for row in csv.DictReader(handle)}
    assert set(stats) >= SCENARIOS, set(stats)
    for name in SCENARIOS:
        assert int(stats[name]["Request Count"]) > 0, name
        assert int(stats[name]["Failure Count"]) == 0, name
    with (folder / "locust_served.csv").open() as handle:
        served = list(csv.DictReader(handle))
    by_scenario = {row["scenario"] for row in served}
    assert SCENARIOS - {"Invalid input (rejected as expected)", "Feedback"} <= by_scenario
    arms = {row["arm"] for row in served if row["scenario"] == "Classify experiment"}
    assert arms and arms <= {"stable", "canary"}
    assert "0 failed" in result.stdout
