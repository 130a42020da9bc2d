"""Resident memory of a process and all its descendants (the gateway and its decode workers),
read with psutil, for the benchmarks that watch memory (`bench.soak`, `bench.attack`)."""

from __future__ import annotations

from dataclasses import dataclass

import psutil  # type: ignore[import-untyped]

MIB = 1024 * 1024


@dataclass(frozen=True)
class TreeMemory:
    rss_mib: float
    main_rss_mib: float
    processes: int


def tree_memory(pid: int) -> TreeMemory:
    """RSS of `pid` and all its descendants, summed (MiB), the RSS of `pid` alone, and how many
    processes were counted (one that exits while being read is left out)."""
    nan = float("nan")
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return TreeMemory(nan, nan, 0)
    total, main, counted = 0, nan, 0
    for process in processes:
        try:
            rss = process.memory_info().rss
        except psutil.Error:
            continue
        total, counted = total + rss, counted + 1
        if process.pid == pid:
            main = rss / MIB
    return TreeMemory(total / MIB, main, counted)
