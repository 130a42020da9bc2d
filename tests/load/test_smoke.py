"""The load test's smoke run, inside `make test`: ~15 s of every locust scenario through the real
stack (`server.dev_stack`: model host and gateway, tiny model), failing if any call fails."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dev_stack import READY_MARKER, read_until, start_stack, stop_stack

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
    process, port = start_stack(tmp_path, EXAMPLE_CANARY="0")
    try:
        read_until(process, READY_MARKER, 180)
        yield port
    finally:
        stop_stack(process)


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
