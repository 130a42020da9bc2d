"""`python -m bench.attack` runs end to end for a few seconds on a tiny model (real model host,
gateway and load generator processes) and writes its report: ordinary callers were answered,
every costly call was refused, and the memory figures are there. No timing is asserted: the
figures belong to docs/attack.md, written by `make bench`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench.test_soak_faults import pytestmark, run_bench

__all__ = ["pytestmark"]


def test_the_attack_row_runs_and_reports(tmp_path: Path) -> None:
    done = run_bench(
        "bench.attack", tmp_path, "--warmup=0.5", "--baseline=2", "--duration=6", "--concurrency=2"
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "out/attack.json").read_text())
    assert report["unloaded"]["completed"] > 0 and report["unloaded"]["errors"] == 0
    assert report["attacked"]["completed"] > 0
    # The float TIFF is a valid image within the limits: it may decode within its budget.
    assert report["attacker_calls"] > report["attacker_answers_ok"]
    assert all("RESOURCE_EXHAUSTED" in s for s in report["attacker_error_samples"])
    memory = report["memory_mib"]
    assert 0 < memory["gateway_before"] <= memory["with_decoders_peak"]
    assert memory["bound"] > memory["gateway_before"]
    assert (tmp_path / "out/attack.md").read_text().startswith("# Attack row")
