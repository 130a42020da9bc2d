"""The versions of every model: their states, the loaded servables and request handles.

This is the host's AspiredVersionsManager plus ServableStateMonitor. `set_aspired` tells it which
versions a model's policy wants (from a file-system poll or a config change); `reconcile` then
loads and unloads one version at a time as `policy.next_action` decides. States follow TF
Serving's: START when a version is first aspired, LOADING, AVAILABLE, UNLOADING, END (after an
unload, or a failed load with its error). END states are kept, so GetModelStatus still reports
versions that are gone, like TF Serving.

Requests take a handle (`acquire`) that pins the version: an unload first takes the version out
of serving (new requests no longer see it), waits for the handles in flight, then drops it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import grpc

from server.model_host import errors
from server.model_host.policy import ActionKind, Phase, VersionSnapshot, next_action
from server.model_host.servable import LoadError, Servable

log = logging.getLogger(__name__)

_LOAD_FAILED_MESSAGE = "the version failed to load; the details are in the model host's log"


class State(Enum):
    """ModelVersionStatus.State, with the proto's numbers."""

    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


_PHASES = {
    State.START: Phase.NEW,
    State.LOADING: Phase.LOADING,
    State.AVAILABLE: Phase.READY,
    State.UNLOADING: Phase.UNLOADING,
    State.END: Phase.DONE,
}


@dataclass(frozen=True)
class VersionStatus:
    """A version's state and the status GetModelStatus reports with it (code 0 is OK)."""

    version: int
    state: State
    error_code: int = 0
    error_message: str = ""


@dataclass(frozen=True)
class Handle:
    """A version pinned for the duration of one request."""

    model: str
    version: int
    servable: Servable


class _Entry:
    """One managed version (a LoaderHarness)."""

    def __init__(self, version: int, path: Path) -> None:
        self.version = version
        self.path = path
        self.state = State.START
        self.error: LoadError | None = None
        self.servable: Servable | None = None
        self.in_flight = 0
        # An END version that stopped being aspired: loading it again is allowed.
        self.retired = False

    def status(self) -> VersionStatus:
        if self.error is None:
            return VersionStatus(self.version, self.state)
        return VersionStatus(
            self.version, self.state, int(self.error.code.value[0]), self.error.message
        )


class ModelRegistry:
    """Versions of all models; thread-safe. Loads and unloads run in the caller's thread."""

    def __init__(
        self,
        loader: Callable[[Path], Servable],
        *,
        max_num_load_retries: int,
        load_retry_interval_seconds: float,
        stopping: threading.Event,
    ) -> None:
        self._loader = loader
        self._max_retries = max(max_num_load_retries, 0)
        self._retry_interval = max(load_retry_interval_seconds, 0.0)
        self._stopping = stopping
        self._cond = threading.Condition()
        self._entries: dict[str, dict[int, _Entry]] = {}
        self._aspired: dict[str, frozenset[int]] = {}
        self._pinned: dict[str, frozenset[int]] = {}

    # --- requests ---------------------------------------------------------------------------

    @contextmanager
    def acquire(self, model: str, version: int | None) -> Iterator[Handle]:
        """The requested AVAILABLE version (the highest for None), pinned until exit."""
        with self._cond:
            entry = self._serving_entry(model, version)
            if entry is None or entry.servable is None:
                raise errors.servable_not_found(model, version)
            entry.in_flight += 1
            handle = Handle(model, entry.version, entry.servable)
        try:
            yield handle
        finally:
            with self._cond:
                entry.in_flight -= 1
                if entry.in_flight == 0:
                    self._cond.notify_all()

    def _serving_entry(self, model: str, version: int | None) -> _Entry | None:
        entries = self._entries.get(model, {})
        if version is not None:
            entry = entries.get(version)
            return entry if entry is not None and entry.state is State.AVAILABLE else None
        available = [e for e in entries.values() if e.state is State.AVAILABLE]
        return max(available, key=lambda e: e.version) if available else None

    # --- states -----------------------------------------------------------------------------

    def states(self, model: str) -> list[VersionStatus]:
        """Every version the model has had, highest first (like ServableStateMonitor)."""
        with self._cond:
            entries = self._entries.get(model, {})
            return [entries[v].status() for v in sorted(entries, reverse=True)]

    def settled_latest(self, model: str) -> VersionStatus | None:
        """The highest version that is AVAILABLE or END, as TF Serving's wait for `Latest`
        sees it; None while nothing has settled."""
        for status in self.states(model):
            if status.state in (State.AVAILABLE, State.END):
                return status
        return None

    # --- management -------------------------------------------------------------------------

    def set_aspired(
        self, model: str, versions: Mapping[int, Path], pinned: Collection[int] = ()
    ) -> None:
        """Records the versions `model` should serve; new ones start in state START."""
        with self._cond:
            entries = self._entries.setdefault(model, {})
            self._aspired[model] = frozenset(versions)
            self._pinned[model] = frozenset(pinned)
            for version, path in versions.items():
                entry = entries.get(version)
                # A failed version stays failed while it is aspired (TF Serving does not retry
                # it); a retired or cleanly unloaded one is managed afresh.
                if entry is None or (
                    entry.state is State.END and (entry.error is None or entry.retired)
                ):
                    entries[version] = _Entry(version, path)
                    self._log_state(model, entries[version])
            for version, entry in entries.items():
                if version not in versions and entry.state is State.END:
                    entry.retired = True

    def reconcile(self, model: str) -> None:
        """Loads and unloads versions of `model` until its policy has nothing left to do."""
        while not self._stopping.is_set():
            with self._cond:
                action = next_action(self._snapshot(model), self._pinned.get(model, ()))
                if action is None:
                    return
                entry = self._entries[model][action.version]
                entry.state = State.LOADING if action.kind is ActionKind.LOAD else State.UNLOADING
                self._log_state(model, entry)
            if action.kind is ActionKind.LOAD:
                self._load(model, entry)
            else:
                self._unload(model, entry)

    def _snapshot(self, model: str) -> list[VersionSnapshot]:
        aspired = self._aspired.get(model, frozenset())
        return [
            VersionSnapshot(e.version, _PHASES[e.state], e.version in aspired)
            for e in self._entries.get(model, {}).values()
            if not e.retired
        ]

    def _load(self, model: str, entry: _Entry) -> None:
        attempts = 1 + self._max_retries
        error: LoadError | None = None
        for attempt in range(1, attempts + 1):
            try:
                servable = self._loader(entry.path)
            except LoadError as exc:
                error = exc
            except Exception:
                log.exception("loading %s version %d failed", model, entry.version)
                error = LoadError(grpc.StatusCode.UNKNOWN, _LOAD_FAILED_MESSAGE)
            else:
                with self._cond:
                    entry.servable = servable
                    entry.state = State.AVAILABLE
                    self._log_state(model, entry)
                return
            if attempt < attempts:
                log.warning(
                    "loading %s version %d failed (attempt %d of %d), retrying in %.1f s: %s",
                    model,
                    entry.version,
                    attempt,
                    attempts,
                    self._retry_interval,
                    error.message,
                )
                if self._stopping.wait(self._retry_interval):
                    break
        with self._cond:
            entry.error = error
            entry.state = State.END
            self._log_state(model, entry)

    def _unload(self, model: str, entry: _Entry) -> None:
        with self._cond:
            while entry.in_flight > 0:
                self._cond.wait()
            entry.servable = None
            entry.state = State.END
            self._log_state(model, entry)

    @staticmethod
    def _log_state(model: str, entry: _Entry) -> None:
        extra = {"model": model, "version": entry.version, "state": entry.state.name}
        if entry.error is not None and entry.state is State.END:
            log.error(
                "%s version %d: %s (%s: %s)",
                model,
                entry.version,
                entry.state.name,
                entry.error.code.name,
                entry.error.message,
                extra=extra,
            )
        else:
            log.info("%s version %d: %s", model, entry.version, entry.state.name, extra=extra)
