"""`python -m server.store upgrade|current|prune`, run as a subprocess as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.experiments.records import PredictionRecord
from server.store import ExperimentStore
from tests.support.ports import free_port

MakePrediction = Callable[..., PredictionRecord]
REPO = Path(__file__).resolve().parents[2]


def cli(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "IMGCLF_GATEWAY_STORE_URL"}
    environment["PYTHONPATH"] = str(REPO)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "server.store", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_upgrade_then_current_on_a_new_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store' / 'experiments.db'}"
    before = cli("current", "--url", url)
    assert (before.returncode, before.stdout) == (
        0,
        "none (not migrated; the newest revision is 0002)\n",
    )
    upgraded = cli("upgrade", "--url", url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout == f"{url} is at revision 0002\n"
    after = cli("current", "--url", url)
    assert (after.returncode, after.stdout) == (0, "0002 (head)\n")


def test_the_url_comes_from_the_environment_else_the_run_directory(tmp_path: Path) -> None:
    from_env = tmp_path / "env.db"
    done = cli(
        "upgrade", cwd=tmp_path, env={"IMGCLF_GATEWAY_STORE_URL": f"sqlite+aiosqlite:///{from_env}"}
    )
    assert done.returncode == 0, done.stderr
    assert from_env.is_file() and not (tmp_path / "run").exists()
    done = cli("upgrade", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "experiments.db").is_file()


def test_current_on_postgres(postgres_url: str) -> None:
    done = cli("current", "--url", postgres_url)
    assert (done.returncode, done.stdout) == (0, "0002 (head)\n")


async def test_prune_deletes_the_records_older_than_the_days_given(
    store: ExperimentStore, store_url: str, make_prediction: MakePrediction
) -> None:
    now = datetime.now(UTC)
    await store.insert_predictions(
        [
            make_prediction("old", created_at=now - timedelta(days=8)),
            make_prediction("new", created_at=now - timedelta(days=6)),
        ]
    )
    done = cli("prune", "--days", "7", "--url", store_url)
    assert (done.returncode, done.stdout) == (0, "deleted 1 prediction records older than 7 days\n")
    assert [row.request_id for row in await store.report_rows("exp")] == ["new"]


@pytest.mark.parametrize("command", [["upgrade"], ["current"], ["prune", "--days", "1"]])
def test_an_unreachable_database_is_one_line_and_exit_status_2(command: list[str]) -> None:
    url = f"postgresql+asyncpg://gateway:s3cret@127.0.0.1:{free_port()}/experiments"
    done = cli(*command, "--url", url, "--timeout", "2")
    assert done.returncode == 2
    assert done.stdout == ""
    shown = url.replace("s3cret", "***")
    assert done.stderr.startswith(f"error: cannot reach the store at {shown}: ")
    assert done.stderr.endswith("\n") and done.stderr.count("\n") == 1
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr
