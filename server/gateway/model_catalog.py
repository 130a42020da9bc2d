"""Resolves a model reference to a version and caches what the gateway knows of each version.

A version number is taken as given; a label, or no version at all, is resolved through the
backend (the authority on labels and on what is loaded) and kept for a short TTL so that a moved
label is seen within that time. The resolved version is then used for the Predict call itself, so
the image is always resized for the version that serves it. Model info (input size, class names)
never changes within a version and is cached for the life of the process. Concurrent misses for
one key share a single backend call.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TypeVar

from server.gateway.backend import TFServingBackend
from server.gateway.domain import ModelInfo, ModelRef

T = TypeVar("T")
MAX_CACHED_VERSIONS = 256


class ModelCatalog:
    def __init__(
        self,
        backend: TFServingBackend,
        *,
        version_ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._ttl = version_ttl_s
        self._clock = clock
        self._resolved: dict[tuple[str, str | None], tuple[float, int]] = {}
        self._infos: OrderedDict[tuple[str, int], ModelInfo] = OrderedDict()
        self._in_flight: dict[object, asyncio.Task[object]] = {}

    async def resolve(self, ref: ModelRef, *, timeout: float | None) -> ModelInfo:
        """The info of the version `ref` points at now."""
        version = ref.version
        if version is None:
            version = await self._resolve_version(ref, timeout)
        return await self._info(ref.name, version, timeout)

    def forget(self, ref: ModelRef) -> None:
        """Drops the cached resolution of `ref`'s label (or latest), e.g. after a NOT_FOUND."""
        self._resolved.pop((ref.name, ref.label), None)

    async def _resolve_version(self, ref: ModelRef, timeout: float | None) -> int:
        key = (ref.name, ref.label)
        cached = self._resolved.get(key)
        now = self._clock()
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        version = await self._single_flight(
            ("version", key), lambda: self._backend.resolve_version(ref, timeout=timeout)
        )
        self._resolved[key] = (self._clock(), version)
        return version

    async def _info(self, name: str, version: int, timeout: float | None) -> ModelInfo:
        key = (name, version)
        info = self._infos.get(key)
        if info is not None:
            self._infos.move_to_end(key)
            return info
        info = await self._single_flight(
            ("info", key), lambda: self._backend.model_info(name, version, timeout=timeout)
        )
        self._infos[key] = info
        while len(self._infos) > MAX_CACHED_VERSIONS:
            self._infos.popitem(last=False)
        return info

    async def _single_flight(self, key: object, fetch: Callable[[], Awaitable[T]]) -> T:
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.ensure_future(fetch())
            self._in_flight[key] = task
            task.add_done_callback(lambda _: self._in_flight.pop(key, None))
        # shield: one caller giving up must not cancel the fetch the others wait on.
        result: T = await asyncio.shield(task)  # type: ignore[arg-type]
        return result
