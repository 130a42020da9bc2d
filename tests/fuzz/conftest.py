"""The stack under fuzz, and the run's report.

One real model host on an ephemeral port serves tiny real SavedModels (`cnn` versions 1 and 2,
labels stable -> 1 and canary -> 2); one real gateway in front of it routes an experiment `ab`
(stable against canary) and keeps its experiment store in a temporary SQLite file, so Feedback
and the experiment calls reach real code. Both live for the whole session: the gateway must keep
serving through every example.

At the end of the run the cases per family and the status histogram are printed; with
IMGCLF_FUZZ_REPORT set (`make fuzz`) they are also written to that file (docs/fuzz.md), so a
short run inside `make test` never overwrites the committed report.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from server.gateway.server import Gateway, create_server
from tests.fuzz.profiles import PROFILE
from tests.fuzz.stats import TALLY, write_report
from tests.fuzz.strategies import EXPERIMENT, MODEL
from tests.fuzz.target import FuzzTarget
from tests.gateway.conftest import gateway_settings, start_model_host
from tests.model_factory import model_entry, publish_tiny, write_config_entries

REPORT_ENV = "IMGCLF_FUZZ_REPORT"
COMMAND_ENV = "IMGCLF_FUZZ_COMMAND"
ADMIN_TOKEN = "fuzz-admin-token"
ADMIN_TOKEN_ENV = "IMGCLF_FUZZ_ADMIN_TOKEN"
AB_TOML = f"""
[experiments.{EXPERIMENT}]
arms = [
  {{ name = "stable", model = "{MODEL}", label = "stable", weight = 50 }},
  {{ name = "canary", model = "{MODEL}", label = "canary", weight = 50 }},
]
"""
STARTED_ENV = "IMGCLF_FUZZ_STARTED"
_started = float(os.environ.get(STARTED_ENV) or time.time())
"""When the run started: `make fuzz` passes the command's start, so the wall time includes
Python's and TensorFlow's start-up; otherwise when this file was first imported."""


@pytest.fixture(scope="session")
def fuzz_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-models")
    publish_tiny(root, MODEL, seed=0)
    publish_tiny(root, MODEL, seed=1)
    return write_config_entries(
        root / "models.config", model_entry(root, MODEL, labels={"stable": 1, "canary": 2})
    )


@pytest.fixture(scope="session")
def fuzz_backend(fuzz_models: Path) -> Iterator[int]:
    host, port = start_model_host(fuzz_models)
    yield port
    host.stop(None)


@pytest.fixture(scope="session")
async def fuzz_gateway(
    fuzz_backend: int, fuzz_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Gateway]:
    work = tmp_path_factory.mktemp("fuzz-gateway")
    experiments = work / "experiments.toml"
    experiments.write_text(AB_TOML)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ADMIN_TOKEN_ENV, ADMIN_TOKEN)
        running = await create_server(
            gateway_settings(
                fuzz_backend,
                fuzz_models,
                store_url=f"sqlite+aiosqlite:///{work / 'store.db'}",
                experiments_path=experiments,
                admin_token_env=ADMIN_TOKEN_ENV,
                # Unknown request ids are NOT_FOUND at once, not after waiting for a replica.
                feedback_lookup_wait_s=0.05,
            )
        )
        yield running
        await running.stop(0)


@pytest.fixture(scope="session")
async def fuzz_target(fuzz_gateway: Gateway) -> AsyncIterator[FuzzTarget]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fuzz_gateway.port}") as channel:
        target = FuzzTarget(channel, ADMIN_TOKEN)
        await target.probe()
        yield target


@pytest.fixture
async def target(fuzz_target: FuzzTarget) -> AsyncIterator[FuzzTarget]:
    """The session's target; after the test's last example a normal Classify must succeed."""
    yield fuzz_target
    await fuzz_target.probe()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed and "tests/fuzz/" in report.nodeid.replace("\\", "/"):
        TALLY.failures.append(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.empty():
        return
    wall_s = time.time() - _started
    terminalreporter.section(f"fuzz (hypothesis profile {PROFILE}, {wall_s:.0f} s)")
    for line in TALLY.summary_lines():
        terminalreporter.write_line(line)
    report = os.environ.get(REPORT_ENV)
    if report:
        command = os.environ.get(COMMAND_ENV, "make fuzz")
        write_report(TALLY, Path(report), command=command, profile=PROFILE, wall_s=wall_s)
        terminalreporter.write_line(f"  report written to {report}")
