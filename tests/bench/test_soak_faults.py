"""`python -m bench.soak` and `python -m bench.faults` run end to end for a few seconds on a tiny
model (real model host and gateway processes) and write their reports with sane fields. No
timing is asserted: the figures themselves belong to docs/, written by `make soak` / `make
faults`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.model_factory import publish_tiny

REPO = Path(__file__).resolve().parents[2]
CIFAR10 = REPO.parent / "shared/datasets/cifar-10-batches-py"
pytestmark = pytest.mark.skipif(not CIFAR10.is_dir(), reason=f"CIFAR-10 not found at {CIFAR10}")


def run_bench(module: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    root = tmp_path / "models"
    publish_tiny(root, "cnn")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            module,
            f"--model-root={root}",
            f"--cifar-dir={CIFAR10}",
            "--images=16",
            f"--out-dir={tmp_path / 'out'}",
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )


def test_soak_ramps_drives_classify_and_reports_memory(tmp_path: Path) -> None:
    done = run_bench(
        "bench.soak",
        tmp_path,
        "--warmup=1",
        "--duration=3",
        "--ramp=1,2",
        "--ramp-seconds=1",
        "--sample-interval=0.5",
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "out/soak.json").read_text())
    assert [cell["concurrency"] for cell in report["ramp"]] == [1, 2]
    assert report["concurrency"] in (1, 2)
    assert report["soak"]["completed"] > 0 and report["soak"]["errors"] == 0
    assert report["soak"]["p50_ms"] <= report["soak"]["p99_ms"]
    assert report["codes"].get("OK", 0) > 0
    assert set(report["codes"]) == {"OK"}
    memory = report["memory"]
    assert memory["warmup_end_mib"] > 0 and memory["end_mib"] > 0
    assert memory["growth_mib"] == pytest.approx(
        memory["end_mib"] - memory["warmup_end_mib"], abs=0.02
    )
    assert memory["samples_after_warmup"] >= 2 and memory["gateway_processes"] >= 1
    assert {s["phase"] for s in report["samples"]} >= {"idle", "soak"}
    assert isinstance(report["verdict"]["passed"], bool)
    text = (tmp_path / "out/soak.md").read_text()
    assert "Growth after warm-up" in text and ("**PASS**" in text or "**FAIL**" in text)


def test_faults_kill_and_freeze_the_backend_and_report_each_figure(tmp_path: Path) -> None:
    done = run_bench(
        "bench.faults", tmp_path, "--repeats=1", "--freeze-seconds=6", "--freeze-call-interval=0.5"
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "out/faults.json").read_text())
    kill = {f["name"]: f for f in report["kill"]}
    freeze = {f["name"]: f for f in report["freeze"]}
    for name in (
        "kill → health NOT_SERVING",
        "kill → Classify answers UNAVAILABLE",
        "restart → health SERVING",
        "restart → first successful Classify",
    ):
        assert kill[name]["reached"] == 1, name
        assert kill[name]["median_s"] >= 0
    for name in ("freeze → health NOT_SERVING", "thaw → health SERVING"):
        assert freeze[name]["reached"] == 1, name
    (trial,) = report["freeze_trials"]
    assert trial["calls"] and {c["code"] for c in trial["calls"]} <= {"OK", "UNAVAILABLE"}
    assert report["answers"]["after the restart, until OK"].get("OK") == 1
    assert report["settings"]["readiness_interval_s"] > 0
    text = (tmp_path / "out/faults.md").read_text()
    assert "kill → health NOT_SERVING" in text and "thaw → health SERVING" in text
