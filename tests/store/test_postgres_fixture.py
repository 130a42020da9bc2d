"""The PostgreSQL fixture's policy: skip without PostgreSQL, except on CI, where that fails."""

from __future__ import annotations

import getpass
import os

import pytest

from tests.support import postgres
from tests.support.postgres import PostgresCluster, postgres_or_skip


def without_postgres(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    monkeypatch.setattr(postgres, "find_bin_dir", lambda: None)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)


def test_without_postgres_the_tests_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    without_postgres(monkeypatch, ci=None)
    with (
        pytest.raises(pytest.skip.Exception, match="PostgreSQL is not installed"),
        postgres_or_skip(),
    ):
        pass


def test_without_postgres_on_ci_the_tests_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    without_postgres(monkeypatch, ci="true")
    with (
        pytest.raises(pytest.fail.Exception, match="PostgreSQL is not installed"),
        postgres_or_skip(),
    ):
        pass


def test_the_cluster_listens_on_its_own_port_as_the_postgres_user(
    postgres: PostgresCluster,
) -> None:
    assert postgres.running
    assert f"127.0.0.1:{postgres.port}/" in postgres.url
    expected_owner = "postgres" if os.geteuid() == 0 else getpass.getuser()
    assert postgres.data_dir.owner() == expected_owner
