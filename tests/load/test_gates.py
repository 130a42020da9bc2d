"""The load test's gates (tests/load/run.py `check`) against locust's own CSV files."""

from __future__ import annotations

from pathlib import Path

from tests.load.run import _aggregate, check

STATS = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
    "grpc,Classify label stable,900,{failed},40,45,3,400,0,30.0,0,"
    "40,45,50,55,70,90,120,150,300,400,400\n"
    ",Aggregated,900,{failed},40,45,3,400,0,30.0,0,40,45,50,55,70,90,120,150,300,400,400\n"
)
LIMITS = {"max_failure_ratio": 0.0, "max_p95_ms": 100, "max_p99_ms": 200, "min_rps": 10}


def figures(tmp_path: Path, *, failed: int = 0, exceptions: str | None = None) -> dict[str, float]:
    (tmp_path / "locust_stats.csv").write_text(STATS.format(failed=failed))
    if exceptions is not None:
        (tmp_path / "locust_exceptions.csv").write_text(exceptions)
    return _aggregate(tmp_path / "locust_stats.csv", tmp_path / "locust_exceptions.csv")


def test_a_clean_run_within_the_limits_passes(tmp_path: Path) -> None:
    found = figures(tmp_path, exceptions="Count,Message,Traceback,Nodes\n")
    assert (found["requests"], found["p95_ms"], found["rps"]) == (900, 90, 30.0)
    assert check(found, LIMITS) == []


def test_each_missed_limit_is_named(tmp_path: Path) -> None:
    found = figures(tmp_path, failed=9)
    strict = {"max_failure_ratio": 0.001, "max_p95_ms": 50, "max_p99_ms": 100, "min_rps": 40}
    assert check(found, strict) == [
        "failure ratio 0.0100 > 0.001",
        "p95_ms 90 > 50",
        "p99_ms 150 > 100",
        "throughput 30.0 req/s < 40",
    ]


def test_a_task_that_raised_fails_the_run_though_no_call_failed(tmp_path: Path) -> None:
    found = figures(
        tmp_path,
        exceptions='Count,Message,Traceback,Nodes\n11,image is empty,"  File x",local\n'
        '2,boom,"  File y",local\n',
    )
    assert check(found, LIMITS) == ["13 task errors (see locust_exceptions.csv)"]
