"""The gateway's core, free of any transport: classify an image, compare models, list them.

A call resolves the model reference to a version, decodes and resizes the image to that
version's input size (encoded images in decode processes with a time and a memory budget, raw
pixels in a thread pool), asks the backend for probabilities with that exact version, and
returns the best classes with the version that served them. Calls about one image (Compare,
shadow copies) share its decoded pixels through `PreparedImages`, so each input size is decoded
once.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from server.gateway import preprocess
from server.gateway.backend import TFServingBackend
from server.gateway.batching import DirectPredictor, MicroBatcher
from server.gateway.decode_pool import DecodePool
from server.gateway.domain import (
    Classification,
    ClassifyInput,
    ClassScore,
    ModelInfo,
    ModelRef,
    ModelStatus,
    RawPixels,
)
from server.gateway.errors import GatewayError, InvalidRequest, NotFound
from server.gateway.model_catalog import ModelCatalog
from server.gateway.models_config import ModelsConfigReader

MAX_LABEL_LENGTH = 128
MAX_MODEL_NAME_LENGTH = 128
MAX_COMPARE_MODELS = 8


class PreparedImages:
    """One image's decoded pixels per input size, shared by the calls that classify it.

    A decode is cancelled (which frees its decoder) once every call waiting for it is.
    """

    def __init__(self) -> None:
        self._by_size: dict[tuple[int, int, int], asyncio.Future[np.ndarray]] = {}
        self._waiting: dict[tuple[int, int, int], int] = {}

    async def get(
        self, size: tuple[int, int, int], prepare: Callable[[], Awaitable[np.ndarray]]
    ) -> np.ndarray:
        future = self._by_size.get(size)
        if future is None:
            future = self._by_size[size] = asyncio.ensure_future(prepare())
        self._waiting[size] = self._waiting.get(size, 0) + 1
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if self._waiting[size] == 1 and not future.done():
                future.cancel()
            raise
        finally:
            self._waiting[size] -= 1


@dataclass(frozen=True)
class CompareOutcome:
    ref: ModelRef
    result: Classification | GatewayError
    latency_s: float


def validate_ref(ref: ModelRef) -> None:
    if not ref.name:
        raise InvalidRequest("model name is required (e.g. 'cnn'); see ListModels")
    if len(ref.name) > MAX_MODEL_NAME_LENGTH:
        raise InvalidRequest(f"model name is longer than {MAX_MODEL_NAME_LENGTH} characters")
    if ref.version is not None and ref.version <= 0:
        raise InvalidRequest(f"version must be a positive integer, got {ref.version}")
    if ref.label is not None and not (0 < len(ref.label) <= MAX_LABEL_LENGTH):
        raise InvalidRequest("label must be a non-empty name such as 'stable' or 'canary'")


def top_scores(
    probabilities: np.ndarray, class_names: tuple[str, ...], top_k: int
) -> tuple[ClassScore, ...]:
    """The `top_k` best classes (all when 0), best first; ties keep class order."""
    count = len(probabilities)
    k = count if top_k <= 0 else min(top_k, count)
    order = np.argsort(-probabilities, kind="stable")[:k]
    return tuple(
        ClassScore(
            int(i),
            class_names[i] if i < len(class_names) else str(int(i)),
            float(probabilities[i]),
        )
        for i in order
    )


class ClassificationService:
    def __init__(
        self,
        *,
        backend: TFServingBackend,
        catalog: ModelCatalog,
        models_config: ModelsConfigReader,
        limits: preprocess.ImageLimits,
        executor: Executor,
        decoder: DecodePool,
        predictor: MicroBatcher | DirectPredictor,
        on_stage: Callable[[str, float], None] = lambda stage, seconds: None,
    ) -> None:
        self._backend = backend
        self._predictor = predictor
        self._on_stage = on_stage
        self._catalog = catalog
        self._models_config = models_config
        self._limits = limits
        self._executor = executor
        self._decoder = decoder

    async def classify(
        self,
        request: ClassifyInput,
        *,
        timeout: float | None,
        prepared: PreparedImages | None = None,
    ) -> Classification:
        validate_ref(request.model)
        ref = request.model
        images = prepared or PreparedImages()
        pixels: np.ndarray | None = None
        for attempt in range(2):
            try:
                info = await self._catalog.resolve(ref, timeout=timeout)
                if pixels is None or pixels.shape != info.input_size:
                    pixels = await images.get(
                        info.input_size,
                        functools.partial(self._prepare, request.image, info, timeout),
                    )
                probabilities = await self._predictor.predict_one(
                    info.name, info.version, pixels, timeout=timeout
                )
                break
            except NotFound:
                # A label or "latest" resolved a moment ago may point at a version that has
                # just been unloaded: resolve again once rather than fail the call.
                if ref.version is not None or attempt == 1:
                    raise
                self._catalog.forget(ref)
        return Classification(
            scores=top_scores(probabilities, info.class_names, request.top_k),
            model=info.name,
            version=info.version,
            request_id=request.request_id,
        )

    async def compare(
        self,
        image: bytes | RawPixels,
        refs: Sequence[ModelRef],
        *,
        top_k: int,
        request_id: str,
        timeout: float | None,
    ) -> list[CompareOutcome]:
        """`image` through every reference at once; one failing does not fail the others."""
        if not 2 <= len(refs) <= MAX_COMPARE_MODELS:
            raise InvalidRequest(f"Compare takes 2 to {MAX_COMPARE_MODELS} models, got {len(refs)}")
        for ref in refs:
            validate_ref(ref)
        prepared = PreparedImages()

        async def one(ref: ModelRef) -> CompareOutcome:
            started = time.monotonic()
            request = ClassifyInput(image=image, model=ref, top_k=top_k, request_id=request_id)
            try:
                result: Classification | GatewayError = await self.classify(
                    request, timeout=timeout, prepared=prepared
                )
            except GatewayError as error:
                result = error
            return CompareOutcome(ref, result, time.monotonic() - started)

        return list(await asyncio.gather(*(one(ref) for ref in refs)))

    async def get_model(self, ref: ModelRef, *, timeout: float | None) -> ModelInfo:
        validate_ref(ref)
        try:
            return await self._catalog.resolve(ref, timeout=timeout)
        except NotFound:
            if ref.version is not None:
                raise
            self._catalog.forget(ref)
            return await self._catalog.resolve(ref, timeout=timeout)

    async def list_models(self, *, timeout: float | None) -> list[ModelStatus]:
        configured = self._models_config.models()

        async def status(name: str, labels: dict[str, int]) -> ModelStatus:
            try:
                found = await self._backend.model_status(name, timeout=timeout)
            except NotFound:
                return ModelStatus(name, (), labels)
            return ModelStatus(name, found.versions, labels)

        return list(await asyncio.gather(*(status(m.name, m.labels) for m in configured)))

    async def _prepare(
        self, image: bytes | RawPixels, info: ModelInfo, timeout: float | None
    ) -> np.ndarray:
        height, width, _ = info.input_size
        started = time.monotonic()
        if isinstance(image, RawPixels):
            job = functools.partial(
                preprocess.raw_to_array,
                image.pixels,
                image.height,
                image.width,
                image.channels,
                self._limits,
                (height, width),
            )
            pixels = await asyncio.get_running_loop().run_in_executor(self._executor, job)
        else:
            pixels = await self._decoder.decode(image, (height, width), timeout=timeout)
        self._on_stage("preprocess", time.monotonic() - started)
        return pixels
