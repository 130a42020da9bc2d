"""The version manager on its own, with a fake loader: handles, unloads, failures, retries."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import cast

import grpc
import pytest

from server.model_host import errors
from server.model_host.registry import LOG_HINT, RETRY_THREAD_PREFIX, ModelRegistry, State
from server.model_host.servable import LoadError, Servable
from tests.model_host.helpers import wait_until


class FakeLoader:
    """Loads any path except those listed as broken; counts the calls."""

    def __init__(self, broken: set[str] | None = None) -> None:
        self.broken = broken or set()
        self.calls: list[str] = []

    def __call__(self, path: Path) -> Servable:
        self.calls.append(path.name)
        if path.name in self.broken:
            raise LoadError(grpc.StatusCode.DATA_LOSS, f"broken {path.name}")
        return cast(Servable, object())


def _registry(loader: FakeLoader, retries: int = 0) -> ModelRegistry:
    return ModelRegistry(
        loader,
        max_num_load_retries=retries,
        load_retry_interval_seconds=0.0,
        stopping=threading.Event(),
    )


def _aspire(registry: ModelRegistry, *versions: int) -> None:
    registry.set_aspired("m", {v: Path(str(v)) for v in versions})
    registry.reconcile("m")


def _states(registry: ModelRegistry) -> dict[int, State]:
    return {s.version: s.state for s in registry.states("m")}


def test_an_unload_waits_for_requests_in_flight() -> None:
    registry = _registry(FakeLoader())
    _aspire(registry, 1)
    with registry.acquire("m", None) as held:
        assert held.version == 1
        registry.set_aspired("m", {2: Path("2")})
        worker = threading.Thread(target=registry.reconcile, args=("m",))
        worker.start()
        wait_until(lambda: _states(registry)[1] is State.UNLOADING, "version 1 to be unloading")
        # New requests no longer see version 1; the latest is version 2.
        with registry.acquire("m", None) as latest:
            assert latest.version == 2
        with pytest.raises(errors.ServingError) as caught:
            registry.acquire("m", 1).__enter__()
        assert caught.value.message == "Servable not found for request: Specific(m, 1)"
        assert worker.is_alive()
    worker.join(10)
    assert _states(registry) == {2: State.AVAILABLE, 1: State.END}


def test_a_failed_version_is_not_retried_while_it_stays_aspired() -> None:
    loader = FakeLoader(broken={"2"})
    registry = _registry(loader)
    _aspire(registry, 1)
    _aspire(registry, 2)
    _aspire(registry, 2)
    assert loader.calls == ["1", "2"]
    assert _states(registry) == {2: State.END, 1: State.AVAILABLE}
    (failed,) = [s for s in registry.states("m") if s.version == 2]
    assert (failed.error_code, failed.error_message) == (
        grpc.StatusCode.DATA_LOSS.value[0],
        "broken 2" + LOG_HINT,
    )
    # Once it stops being aspired, it may be tried again later (e.g. after a fix).
    _aspire(registry, 1)
    loader.broken.clear()
    _aspire(registry, 2)
    assert loader.calls == ["1", "2", "2"]
    assert _states(registry) == {2: State.AVAILABLE, 1: State.END}


def test_load_retries() -> None:
    loader = FakeLoader(broken={"1"})
    registry = _registry(loader, retries=3)
    _aspire(registry, 1)
    wait_until(lambda: _states(registry) == {1: State.END}, "version 1 to end after its retries")
    assert loader.calls == ["1"] * 4


def test_a_retry_waits_without_holding_anything_and_ends_when_unaspired() -> None:
    loader = FakeLoader(broken={"2"})
    registry = ModelRegistry(
        loader, max_num_load_retries=5, load_retry_interval_seconds=60, stopping=threading.Event()
    )
    _aspire(registry, 1)
    _aspire(registry, 2)  # returns after the first attempt: the next one is a minute away
    assert _states(registry) == {2: State.LOADING, 1: State.AVAILABLE}
    _aspire(registry, 3)  # version 2 is no longer aspired: no more retries
    assert _states(registry) == {3: State.AVAILABLE, 2: State.END, 1: State.END}
    (failed,) = [s for s in registry.states("m") if s.version == 2]
    assert failed.error_message == "broken 2" + LOG_HINT
    assert loader.calls == ["1", "2", "3"]


def test_close_cancels_the_retries_waiting() -> None:
    registry = ModelRegistry(
        FakeLoader(broken={"1"}),
        max_num_load_retries=5,
        load_retry_interval_seconds=60,
        stopping=threading.Event(),
    )
    _aspire(registry, 1)
    assert _retry_threads()
    registry.close()
    wait_until(lambda: not _retry_threads(), "the retry timer to end")


def _retry_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(RETRY_THREAD_PREFIX)]


def test_an_unloaded_version_can_come_back() -> None:
    loader = FakeLoader()
    registry = _registry(loader)
    _aspire(registry, 1)
    _aspire(registry, 2)
    assert _states(registry) == {2: State.AVAILABLE, 1: State.END}
    _aspire(registry, 1)  # version 2 was deleted from disk, say
    assert _states(registry) == {2: State.END, 1: State.AVAILABLE}
    assert loader.calls == ["1", "2", "1"]


def test_nothing_aspired_unloads_everything() -> None:
    registry = _registry(FakeLoader())
    registry.set_aspired("m", {1: Path("1"), 2: Path("2")})
    registry.reconcile("m")
    _aspire(registry)
    assert _states(registry) == {2: State.END, 1: State.END}
