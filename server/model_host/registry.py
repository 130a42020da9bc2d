"""The versions of every model: their states, the loaded servables and request handles.

This is the host's AspiredVersionsManager plus ServableStateMonitor. `set_aspired` tells it which
versions a model's policy wants (from a file-system poll or a config change); `reconcile` then
loads and unloads one version at a time as `policy.next_action` decides. States follow TF
Serving's: START when a version is first aspired, LOADING, AVAILABLE, UNLOADING, END (after an
unload, or a failed load with its error). END states are kept, so GetModelStatus still reports
versions that are gone, like TF Serving.

A failed load is retried `max_num_load_retries` times, `load_retry_interval_seconds` apart, as
TF Serving's LoaderHarness does; the version stays LOADING meanwhile. The wait between attempts
holds nothing: the retry runs later on a timer thread, so other versions of the model, other
models and config reloads go on. A version that stops being aspired while it waits for a retry
ends there (TF Serving's cancel_load_retry), with its last error. Each model's loads and unloads
run one at a time (a per-model lock); different models never wait for each other here.

A failure's status carries `LoadError.reason`, which names no server path; the full error goes
to the log.

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

_UNEXPECTED_LOAD_FAILURE = "the version failed to load unexpectedly"
LOG_HINT = " (details in the model host's log)"
RETRY_THREAD_PREFIX = "model-host-load-retry"


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
        self.failed_attempts = 0
        self.last_error: LoadError | None = None
        # Set while the version waits (LOADING) for its next load attempt.
        self.retry: threading.Timer | None = None

    def status(self) -> VersionStatus:
        if self.error is None:
            return VersionStatus(self.version, self.state)
        return VersionStatus(
            self.version, self.state, int(self.error.code.value[0]), self.error.reason + LOG_HINT
        )


class ModelRegistry:
    """Versions of all models; thread-safe. Loads and unloads run in the caller's thread, load
    retries on timer threads; `close` cancels the retries still waiting."""

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
        self._model_locks: dict[str, threading.Lock] = {}

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
        """Records the versions `model` should serve; new ones start in state START, and one that
        is no longer wanted while it waits for a load retry ends with its last error."""
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
                    self._changed(model, entries[version])
            for version, entry in entries.items():
                if version in versions:
                    continue
                if entry.retry is not None and entry.last_error is not None:
                    entry.retry.cancel()
                    entry.retry = None
                    log.info("%s version %d is no longer aspired: no more retries", model, version)
                    self._end_with(model, entry, entry.last_error)
                if entry.state is State.END:
                    entry.retired = True

    def reconcile(self, model: str) -> None:
        """Loads and unloads versions of `model` until its policy has nothing left to do now (a
        load that failed with retries left is tried again later, on a timer thread)."""
        with self._model_lock(model):
            self._reconcile(model)

    def wait_settled(self, models: Collection[str]) -> None:
        """Blocks until no aspired version of `models` is still to load or loading (retries
        included), or the registry is closed."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._stopping.is_set() or not any(self._unsettled(m) for m in models)
            )

    def close(self) -> None:
        """Cancels the load retries still waiting (the host is stopping)."""
        with self._cond:
            for entries in self._entries.values():
                for entry in entries.values():
                    if entry.retry is not None:
                        entry.retry.cancel()
                        entry.retry = None
            self._cond.notify_all()

    def _unsettled(self, model: str) -> bool:
        aspired = self._aspired.get(model, frozenset())
        return any(
            entry.state in (State.START, State.LOADING)
            for version, entry in self._entries.get(model, {}).items()
            if version in aspired
        )

    def _model_lock(self, model: str) -> threading.Lock:
        with self._cond:
            return self._model_locks.setdefault(model, threading.Lock())

    def _reconcile(self, model: str) -> None:
        # The caller holds the model's lock.
        while not self._stopping.is_set():
            with self._cond:
                action = next_action(self._snapshot(model), self._pinned.get(model, ()))
                if action is None:
                    return
                entry = self._entries[model][action.version]
                entry.state = State.LOADING if action.kind is ActionKind.LOAD else State.UNLOADING
                self._changed(model, entry)
            if action.kind is ActionKind.LOAD:
                self._attempt_load(model, entry)
            else:
                self._unload(model, entry)

    def _snapshot(self, model: str) -> list[VersionSnapshot]:
        aspired = self._aspired.get(model, frozenset())
        return [
            VersionSnapshot(e.version, _PHASES[e.state], e.version in aspired)
            for e in self._entries.get(model, {}).values()
            if not e.retired
        ]

    def _attempt_load(self, model: str, entry: _Entry) -> None:
        """One load attempt of a LOADING version (the caller holds the model's lock); a failure
        with retries left schedules the next attempt and returns at once."""
        try:
            servable = self._loader(entry.path)
        except LoadError as exc:
            error = exc
        except Exception:
            log.exception("loading %s version %d failed", model, entry.version)
            error = LoadError(grpc.StatusCode.UNKNOWN, _UNEXPECTED_LOAD_FAILURE)
        else:
            with self._cond:
                entry.servable = servable
                entry.state = State.AVAILABLE
                self._changed(model, entry)
            return
        with self._cond:
            entry.failed_attempts += 1
            attempts = 1 + self._max_retries
            aspired = entry.version in self._aspired.get(model, frozenset())
            if entry.failed_attempts >= attempts or not aspired or self._stopping.is_set():
                self._end_with(model, entry, error)
                return
            log.warning(
                "loading %s version %d failed (attempt %d of %d), retrying in %.1f s: %s",
                model,
                entry.version,
                entry.failed_attempts,
                attempts,
                self._retry_interval,
                error.detail,
                extra={"model": model, "version": entry.version},
            )
            entry.last_error = error
            entry.retry = threading.Timer(self._retry_interval, self._retry, (model, entry))
            entry.retry.name = f"{RETRY_THREAD_PREFIX}-{model}-{entry.version}"
            entry.retry.daemon = True
            entry.retry.start()

    def _retry(self, model: str, entry: _Entry) -> None:
        # On the retry's timer thread.
        try:
            with self._model_lock(model):
                with self._cond:
                    if entry.retry is None or self._stopping.is_set():
                        return  # cancelled meanwhile
                    entry.retry = None
                self._attempt_load(model, entry)
                self._reconcile(model)
        except Exception:
            log.exception("retrying the load of %s version %d failed", model, entry.version)

    def _end_with(self, model: str, entry: _Entry, error: LoadError) -> None:
        # The caller holds the condition.
        entry.error = error
        entry.state = State.END
        self._changed(model, entry)

    def _unload(self, model: str, entry: _Entry) -> None:
        with self._cond:
            while entry.in_flight > 0:
                self._cond.wait()
            entry.servable = None
            entry.state = State.END
            self._changed(model, entry)

    def _changed(self, model: str, entry: _Entry) -> None:
        # The caller holds the condition: log the new state and wake `wait_settled`.
        self._cond.notify_all()
        extra = {"model": model, "version": entry.version, "state": entry.state.name}
        if entry.error is not None and entry.state is State.END:
            log.error(
                "%s version %d: %s (%s: %s)",
                model,
                entry.version,
                entry.state.name,
                entry.error.code.name,
                entry.error.detail,
                extra=extra,
            )
        else:
            log.info("%s version %d: %s", model, entry.version, entry.state.name, extra=extra)
