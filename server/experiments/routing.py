"""Classify through an experiment: pick the arm, serve the caller, record it, copy to the shadows.

A call that names an experiment gets the arm its routing key lands on (or a random one by weight
without a key), is classified with that arm's model reference, and answers with the experiment
and arm. Its outcome, success or error, becomes a prediction-log record (never awaited). Shadow
copies are queued only after the caller's answer is ready, so they add nothing to its latency.
Calls that name a model go straight to the classification service.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from server.experiments.assignment import choose_arm
from server.experiments.definitions import MAX_NAME_LENGTH
from server.experiments.prediction_log import PredictionLog
from server.experiments.records import PredictionRecord, Role
from server.experiments.registry import ExperimentRegistry
from server.experiments.shadows import ShadowJob, ShadowRunner
from server.gateway.classification import ClassificationService, PreparedImages
from server.gateway.domain import Classification, ClassifyInput, ModelRef
from server.gateway.errors import GatewayError, InvalidRequest
from server.gateway.interceptor import status_for

MAX_ROUTING_KEY_BYTES = 256


class ExperimentObserver(Protocol):
    def experiment_call(self, experiment: str, arm: str, code: str, seconds: float) -> None: ...


class ExperimentRouter:
    def __init__(
        self,
        classifier: ClassificationService,
        registry: ExperimentRegistry,
        prediction_log: PredictionLog,
        shadows: ShadowRunner,
        *,
        gateway_id: str,
        observer: ExperimentObserver | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._classifier = classifier
        self._registry = registry
        self._log = prediction_log
        self._shadows = shadows
        self._gateway_id = gateway_id
        self._observer = observer
        self._rng = rng or random.Random()

    async def classify(self, request: ClassifyInput, *, timeout: float | None) -> Classification:
        if len(request.routing_key.encode()) > MAX_ROUTING_KEY_BYTES:
            raise InvalidRequest(f"routing_key is longer than {MAX_ROUTING_KEY_BYTES} bytes")
        if not request.experiment:
            return await self._classifier.classify(request, timeout=timeout)
        if len(request.experiment) > MAX_NAME_LENGTH:
            raise InvalidRequest(f"experiment name is longer than {MAX_NAME_LENGTH} characters")
        if request.model != ModelRef(""):
            raise InvalidRequest(
                "name either an experiment or a model (with its version or label), not both"
            )
        experiment = self._registry.routing(request.experiment)
        arm = choose_arm(experiment.name, experiment.arms, request.routing_key, self._rng)
        routed = replace(request, model=arm.model, experiment="")
        prepared = PreparedImages()
        started = time.monotonic()
        status = "OK"
        result: Classification | None = None
        try:
            result = await self._classifier.classify(routed, timeout=timeout, prepared=prepared)
        except GatewayError as error:
            status = status_for(error).name
            raise
        except asyncio.CancelledError:
            status = "CANCELLED"
            raise
        except Exception:
            status = "INTERNAL"
            raise
        finally:
            seconds = time.monotonic() - started
            self._record(experiment.name, arm.name, arm.model, routed, result, status, seconds)
        for shadow in experiment.shadows:
            if shadow.sample_rate > 0 and self._rng.random() < shadow.sample_rate:
                copy = replace(routed, model=shadow.model, top_k=1)
                self._shadows.submit(ShadowJob(experiment.name, shadow, copy, prepared))
        return replace(result, experiment=experiment.name, arm=arm.name)

    def _record(
        self,
        experiment: str,
        arm: str,
        ref: ModelRef,
        request: ClassifyInput,
        result: Classification | None,
        status: str,
        seconds: float,
    ) -> None:
        if self._observer is not None:
            self._observer.experiment_call(experiment, arm, status, seconds)
        best = result.scores[0] if result is not None and result.scores else None
        self._log.record(
            PredictionRecord(
                request_id=request.request_id,
                experiment=experiment,
                arm=arm,
                role=Role.PRIMARY,
                model=ref.name,
                version=None if result is None else result.version,
                status=status,
                predicted_class=None if best is None else best.index,
                confidence=None if best is None else best.probability,
                latency_ms=seconds * 1000,
                created_at=datetime.now(UTC),
                gateway=self._gateway_id,
            )
        )
