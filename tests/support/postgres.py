"""A throwaway PostgreSQL cluster for tests: Debian's binaries, a temporary directory, a free port.

PostgreSQL refuses to run as root, so as root the server programs run as the `postgres` user
(which the Debian package creates). The cluster listens on 127.0.0.1 only, with trust
authentication, and is tuned for speed over durability (fsync off): it holds nothing worth
keeping. `stop()` and `start()` simulate an outage on the same port and data directory.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.ports import free_port

DEBIAN_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"
DATABASE = "imgclf_test"
START_TIMEOUT_S = 60

SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "50",
    "shared_buffers": "32MB",
    "log_min_messages": "warning",
}


class PostgresNotInstalled(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bin_dir() -> Path | None:
    """The newest `/usr/lib/postgresql/<major>/bin`, else the directory of `initdb` on PATH."""
    found = [path.parent for path in DEBIAN_ROOT.glob("*/bin/initdb") if path.is_file()]
    if found:
        return max(found, key=lambda bin_dir: _major(bin_dir.parent.name))
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _major(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


class PostgresCluster:
    """One running cluster with one database. Use `start_postgres()` to make one."""

    def __init__(self, bin_dir: Path, root: Path, port: int, database: str) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.port = port
        self.database = database
        self.running = False
        self._closed = False

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Starts the server (again) on the same port and data directory; returns once it
        accepts connections."""
        self._server(
            "pg_ctl", "start", "-D", self.data_dir, "-l", self.log_file,
            "-w", "-t", str(START_TIMEOUT_S),
        )  # fmt: skip
        self.running = True

    def stop(self) -> None:
        """Stops the server (fast shutdown: open connections are closed)."""
        if self.running:
            self._server("pg_ctl", "stop", "-D", self.data_dir, "-m", "fast", "-w")
            self.running = False

    def create_database(self, name: str) -> str:
        """Creates another database in the cluster; returns its URL."""
        self._client("createdb", name)
        return self.url_for(name)

    def close(self) -> None:
        """Stops the server and deletes the cluster."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._closed = True
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _initdb(self) -> None:
        self._server(
            "initdb", "-D", self.data_dir, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
            "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        settings = {
            **SERVER_SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/support/postgres.py\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _server(self, program: str, *args: str | Path) -> None:
        """Runs a server program (initdb, pg_ctl), as `postgres` when we are root."""
        command = [str(self.bin_dir / program), *map(str, args)]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        _run(command, self.log_file)

    def _client(self, program: str, *args: str) -> None:
        host = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        _run([str(self.bin_dir / program), *host, *args], self.log_file)


def _run(command: list[str], log_file: Path) -> None:
    done = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        raise RuntimeError(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n{log}"
        )


def start_postgres(database: str = DATABASE) -> PostgresCluster:
    """Initialises and starts a cluster in a new temporary directory, with `database` in it.

    Raises `PostgresNotInstalled` when there are no PostgreSQL binaries.
    """
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise PostgresNotInstalled(
            f"PostgreSQL is not installed (no {DEBIAN_ROOT}/*/bin/initdb, no initdb on PATH; "
            "`make setup` installs Debian's postgresql package when run as root)"
        )
    root = Path(tempfile.mkdtemp(prefix="imgclf-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam(SERVER_USER)
        except KeyError:
            shutil.rmtree(root)
            raise RuntimeError(f"running as root, but there is no {SERVER_USER!r} user") from None
        os.chown(root, user.pw_uid, user.pw_gid)
    cluster = PostgresCluster(bin_dir, root, free_port(), database)
    # A test run that ends without the fixture's teardown must not leave a server behind.
    atexit.register(cluster.close)
    try:
        cluster._initdb()
        cluster.start()
        cluster.create_database(database)
    except BaseException:
        cluster.close()
        raise
    return cluster


@contextmanager
def postgres_or_skip(database: str = DATABASE) -> Iterator[PostgresCluster]:
    """A running cluster for a fixture; skips the test without PostgreSQL, except on CI
    (env `CI` set), where a missing PostgreSQL fails it: `make setup` installs one there."""
    try:
        cluster = start_postgres(database)
    except PostgresNotInstalled as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI is set, so this is an error)", pytrace=False)
        pytest.skip(str(exc))
    with cluster:
        yield cluster
