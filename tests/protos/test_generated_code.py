"""The committed generated code must be what `make proto` makes from protos/ today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_generated_code_matches_protos() -> None:
    result = subprocess.run(
        [sys.executable, "protos/generate.py", "--check", "--out", "client/src"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_detects_drift(tmp_path: Path) -> None:
    generated = tmp_path / "imgclf" / "v1"
    subprocess.run(
        [sys.executable, "protos/generate.py", "--out", str(tmp_path)], cwd=REPO, check=True
    )
    (generated / "classifier_pb2.py").write_text("# edited by hand\n")
    result = subprocess.run(
        [sys.executable, "protos/generate.py", "--check", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "classifier_pb2.py" in result.stdout
