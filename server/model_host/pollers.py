"""Background polling: the model base paths and, optionally, the config file.

Each poller is one daemon thread running a task every interval until stopped (TF Serving's
PeriodicFunction). A task that raises is logged and run again at the next tick, so one bad poll
never stops polling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from server.model_host import errors
from server.model_host.config import read_config_file
from server.model_host.core import ModelHostCore

log = logging.getLogger(__name__)


class Poller:
    """Runs `task` every `interval` seconds in a thread until `stop()`."""

    def __init__(self, name: str, task: Callable[[], None], interval: float) -> None:
        self._task = task
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Asks the thread to end and waits for it (a load under way finishes first)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._task()
            except Exception:
                log.exception("%s failed; polling continues", self._thread.name)


def config_file_task(core: ModelHostCore, path: Path) -> Callable[[], None]:
    """Re-reads the config file and applies it when it differs from the applied one, like TF
    Serving's Server::PollFilesystemAndReloadConfig (which logs and keeps the old config on any
    error; a refused config is tried again at every poll)."""

    def poll() -> None:
        try:
            config = read_config_file(path)
        except errors.ServingError as exc:
            log.error("Failed to read ModelServerConfig file: %s", exc.message)
            return
        if config == core.applied_config:
            return
        try:
            core.reload_config(config)
        except errors.ServingError as exc:
            log.error("PollFilesystemAndReloadConfig failed to ReloadConfig: %s", exc.message)

    return poll
