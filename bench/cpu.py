"""The CPU, from /proc (Linux): what each server process burns during a window, and which of
the vector extensions TensorFlow's kernels use the machine has."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` (every thread) so far; NaN once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    # Fields after the command name (which may hold spaces) start at field 3; utime, stime = 14, 15.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def snapshot(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def cores_used(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, float]:
    """Average cores each process kept busy between two snapshots `seconds` apart."""
    return {name: (after[name] - before[name]) / seconds for name in before if seconds > 0}


def vector_extensions() -> str:
    """E.g. "avx2, avx512f, amx_bf16" (those of interest to TensorFlow's CPU kernels)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return ", ".join(flag for flag in wanted if flag in flags) or "none of avx2/avx512/amx"
