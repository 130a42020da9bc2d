"""Starts and stops the benchmark's processes: servers, the in-process run, load generators.

Every child runs the Python that runs the benchmark (the venv's, under make) from the repository
root, with its stderr in a log file of the scratch directory, in its own session (a Ctrl-C
reaches only the orchestrator, which then stops the children in order); it dies with the
orchestrator (`PR_SET_PDEATHSIG`) should that be killed outright. Servers bind 127.0.0.1 only.
`ServerGroup` stops everything it started, on success, error or Ctrl-C alike.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import grpc

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ChildFailed(RuntimeError):
    """A child exited or did not get ready; the message holds the end of its log."""


def spawn(
    name: str,
    module_args: Sequence[str],
    log_dir: Path,
    *,
    pythonpath: str | None = None,
    stdin: int | None = None,
) -> subprocess.Popen[str]:
    """Starts `python -m <module_args>`, stdout piped, stderr to `<log_dir>/<name>.log`
    (spaces in `name` become dashes)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), pythonpath) if p)
    log = open(log_dir / _log_name(name), "a")  # noqa: SIM115 - the child owns it from here
    try:
        return subprocess.Popen(
            [PYTHON, "-m", *module_args],
            cwd=REPO_ROOT,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        log.close()


def _log_name(name: str) -> str:
    return f"{name.replace(' ', '-')}.log"


def log_tail(log_dir: Path, name: str, lines: int = 15) -> str:
    try:
        return "\n".join((log_dir / _log_name(name)).read_text().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def read_line(process: subprocess.Popen[str], timeout_s: float, what: str) -> str:
    """The child's next stdout line, waiting at most `timeout_s`; ChildFailed on exit/timeout."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            raise ChildFailed(f"{what}: nothing after {timeout_s:.0f} s")
    line = process.stdout.readline()
    if not line:
        raise ChildFailed(f"{what}: exited with {process.wait()}")
    return line.strip()


def free_port() -> int:
    """A port free on 127.0.0.1 now (for servers that cannot report the port they bound)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(process: subprocess.Popen[str], port: int, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ChildFailed(f"{what}: exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise ChildFailed(f"{what}: port {port} not open after {timeout_s:.0f} s")


def stop(process: subprocess.Popen[str], grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


@dataclass
class Server:
    name: str
    process: subprocess.Popen[str]
    port: int
    ready_info: str = ""

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


class ServerGroup:
    """The servers of a run; leaving the `with` block stops every one still running."""

    def __init__(self, log_dir: Path, ready_timeout_s: float = 180.0) -> None:
        self._log_dir = log_dir
        self._timeout = ready_timeout_s
        self._running: list[Server] = []

    def start_reporting(
        self, name: str, module_args: Sequence[str], *, pythonpath: str | None = None
    ) -> Server:
        """Starts a server that prints `ready <port> [info]` once listening (info: JSON)."""
        process = spawn(name, module_args, self._log_dir, pythonpath=pythonpath)
        server = Server(name, process, 0)
        self._running.append(server)
        try:
            line = read_line(process, self._timeout, name)
        except ChildFailed as exc:
            raise ChildFailed(f"{exc}\n{log_tail(self._log_dir, name)}") from None
        word, port, *info = line.split(" ", 2)
        if word != "ready" or not port.isdigit():
            raise ChildFailed(f"{name}: unexpected output {line!r}")
        server.port, server.ready_info = int(port), "".join(info)
        return server

    def start_on_port(self, name: str, module_args: Sequence[str], port: int) -> Server:
        """Starts a server told its port, and waits until the port accepts connections."""
        process = spawn(name, module_args, self._log_dir)
        server = Server(name, process, port)
        self._running.append(server)
        try:
            wait_for_port(process, port, self._timeout, name)
        except ChildFailed as exc:
            raise ChildFailed(f"{exc}\n{log_tail(self._log_dir, name)}") from None
        return server

    def wait_until_answers(self, server: Server, method: str, body: bytes) -> None:
        """Sends `body` to gRPC `method` until it succeeds: a port can open before the models
        are loaded, and the gateway learns a model's metadata on its first call."""
        deadline = time.monotonic() + self._timeout
        error: grpc.RpcError | None = None
        with grpc.insecure_channel(server.target) as channel:
            call = channel.unary_unary(method)
            while time.monotonic() < deadline and server.process.poll() is None:
                try:
                    call(body, timeout=10)
                    return
                except grpc.RpcError as exc:
                    error = exc
                    time.sleep(0.2)
        tail = log_tail(self._log_dir, server.name)
        raise ChildFailed(f"{server.name} never answered {method} ({error})\n{tail}")

    def stop(self, server: Server) -> None:
        stop(server.process)
        if server in self._running:
            self._running.remove(server)

    def __enter__(self) -> ServerGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for server in reversed(list(self._running)):
            self.stop(server)
