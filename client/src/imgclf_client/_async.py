"""`AsyncClient`: the asyncio client, the twin of `Client` with coroutine methods."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

import grpc
import grpc.aio
from imgclf.v1 import (
    admin_pb2_grpc,
    classifier_pb2,
    classifier_pb2_grpc,
    experiments_pb2,
    experiments_pb2_grpc,
)

from . import _convert
from . import _experiment_convert as _xconvert
from ._base import BaseClient, translate_errors
from ._config import USE_CLIENT_DEFAULT, TimeoutTypes
from ._exceptions import ServerError
from ._experiment_types import (
    CompareAnswer,
    Experiment,
    ExperimentReport,
    FeedbackResult,
    ModelRef,
)
from ._images import ImageInput
from ._types import Classification, ModelInfo, ModelStatus


class AsyncClient(BaseClient):
    """An asyncio client for the Classifier service, over one `grpc.aio` channel.

    Create it inside a running event loop and use it from that loop. Use it as an async
    context manager, or await `close()`, to release the channel.
    """

    _channel: grpc.aio.Channel
    _stub: classifier_pb2_grpc.ClassifierAsyncStub

    def _connect(self) -> None:
        if self._credentials is None:
            self._channel = grpc.aio.insecure_channel(self._target, options=self._options)
        else:
            self._channel = grpc.aio.secure_channel(
                self._target, self._credentials, options=self._options
            )
        self._stub = classifier_pb2_grpc.ClassifierStub(self._channel)
        self._experiments = experiments_pb2_grpc.ExperimentsStub(self._channel)
        self._admin = admin_pb2_grpc.AdminStub(self._channel)

    async def classify(
        self,
        image: ImageInput,
        *,
        model: str | None = None,
        version: int | None = None,
        label: str | None = None,
        experiment: str | None = None,
        top_k: int = 5,
        routing_key: str | None = None,
        request_id: str | None = None,
        timeout: TimeoutTypes = USE_CLIENT_DEFAULT,
    ) -> Classification:
        """Classifies one image; see `Client.classify`.

        An image given as a path is read in the event loop's thread before the call.
        """
        request = _convert.classify_request(
            image,
            model=model,
            version=version,
            label=label,
            top_k=top_k,
            routing_key=routing_key,
            request_id=request_id,
            experiment=experiment,
        )
        with translate_errors():
            response = await self._stub.Classify(request, timeout=self._deadline(timeout))
        return _convert.classification(response)

    async def classify_many(
        self,
        images: Iterable[ImageInput],
        *,
        model: str | None = None,
        version: int | None = None,
        label: str | None = None,
        experiment: str | None = None,
        top_k: int = 5,
        routing_key: str | None = None,
        timeout: TimeoutTypes = USE_CLIENT_DEFAULT,
    ) -> list[Classification | ServerError]:
        """Classifies many images over one stream: the throughput path.

        The gateway works on the images concurrently and batches them; the answers come back in
        the order of `images`, one per image: a `Classification`, or the `ServerError` of that
        image alone (e.g. `InvalidArgument` for a file that is not an image). Every request is
        built (and checked) before the first is sent.

        Raises:
            InvalidInput: a bad argument or image; nothing was sent.
            ServerError: the stream itself failed (backend unreachable, deadline, ...).
        """
        requests = [
            _convert.classify_request(
                image,
                model=model,
                version=version,
                label=label,
                top_k=top_k,
                routing_key=routing_key,
                request_id=None,
                experiment=experiment,
            )
            for image in images
        ]
        with translate_errors():
            call = self._stub.ClassifyStream(iter(requests), timeout=self._deadline(timeout))
            answers = [a async for a in call]
        return [_convert.stream_outcome(answer) for answer in answers]

    async def list_models(self, *, timeout: TimeoutTypes = USE_CLIENT_DEFAULT) -> list[ModelStatus]:
        """Lists the served models; see `Client.list_models`."""
        with translate_errors():
            response = await self._stub.ListModels(
                classifier_pb2.ListModelsRequest(), timeout=self._deadline(timeout)
            )
        return _convert.model_statuses(response)

    async def get_model(
        self,
        model: str,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: TimeoutTypes = USE_CLIENT_DEFAULT,
    ) -> ModelInfo:
        """Describes one model version; see `Client.get_model`."""
        request = _convert.get_model_request(model, version=version, label=label)
        with translate_errors():
            response = await self._stub.GetModel(request, timeout=self._deadline(timeout))
        return _convert.model_info(response)

    async def compare(
        self,
        image: ImageInput,
        models: Sequence[str | ModelRef],
        *,
        top_k: int = 5,
        request_id: str | None = None,
        timeout: TimeoutTypes = USE_CLIENT_DEFAULT,
    ) -> list[CompareAnswer]:
        """One image through 2 to 8 models or versions ("cnn", "cnn:2", "cnn@canary" or
        `ModelRef`s), in that order; each answer has its version and latency, or its error."""
        request = _xconvert.compare_request(image, models, top_k=top_k, request_id=request_id)
        with translate_errors():
            response = await self._stub.Compare(request, timeout=self._deadline(timeout))
        return _xconvert.compare_answers(response)

    async def feedback(
        self,
        request_id: str,
        true_class: int | str,
        *,
        timeout: TimeoutTypes = USE_CLIENT_DEFAULT,
    ) -> FeedbackResult:
        """Sends the true class (index or name) of an earlier call made through an experiment.

        Sending the same answer again is safe (`duplicate` is then True).

        Raises:
            NotFound: no experiment call has that request id.
            ServerError: ALREADY_EXISTS when a different class was sent before (it stands).
        """
        request = _xconvert.feedback_request(request_id, true_class)
        with translate_errors():
            response = await self._stub.Feedback(request, timeout=self._deadline(timeout))
        return _xconvert.feedback_result(response)

    async def list_experiments(
        self, *, include_ended: bool = False, timeout: TimeoutTypes = USE_CLIENT_DEFAULT
    ) -> list[Experiment]:
        """The experiments the gateway routes through (and the ended ones, if asked)."""
        request = experiments_pb2.ListExperimentsRequest(include_ended=include_ended)
        with translate_errors():
            response = await self._experiments.ListExperiments(
                request, timeout=self._deadline(timeout)
            )
        return [_xconvert.experiment(e) for e in response.experiments]

    async def experiment_report(
        self,
        name: str,
        *,
        since: datetime | None = None,
        timeout: TimeoutTypes = USE_CLIENT_DEFAULT,
    ) -> ExperimentReport:
        """Per-arm figures and the verdict of one experiment; see `Client.experiment_report`."""
        request = _xconvert.report_request(name, since)
        with translate_errors():
            response = await self._experiments.GetExperimentReport(
                request, timeout=self._deadline(timeout)
            )
        return _xconvert.report(response)

    async def create_experiment(
        self, experiment: Experiment, *, timeout: TimeoutTypes = USE_CLIENT_DEFAULT
    ) -> Experiment:
        """Starts an experiment (Admin API: needs `admin_token`)."""
        request = _xconvert.create_request(experiment)
        with translate_errors():
            response = await self._admin.CreateExperiment(
                request, timeout=self._deadline(timeout), metadata=self._admin_metadata()
            )
        return _xconvert.experiment(response)

    async def update_experiment(
        self,
        experiment: Experiment,
        *,
        expected_revision: int | None = None,
        restart: bool = False,
        timeout: TimeoutTypes = USE_CLIENT_DEFAULT,
    ) -> Experiment:
        """Replaces a running experiment's definition (Admin API: needs `admin_token`).

        With `expected_revision`, the change is refused (ServerError ABORTED) if the
        experiment changed since that revision.
        """
        request = _xconvert.update_request(experiment, expected_revision, restart)
        with translate_errors():
            response = await self._admin.UpdateExperiment(
                request, timeout=self._deadline(timeout), metadata=self._admin_metadata()
            )
        return _xconvert.experiment(response)

    async def end_experiment(
        self, name: str, *, timeout: TimeoutTypes = USE_CLIENT_DEFAULT
    ) -> Experiment:
        """Ends an experiment; its report stays (Admin API: needs `admin_token`)."""
        request = _xconvert.end_request(name)
        with translate_errors():
            response = await self._admin.EndExperiment(
                request, timeout=self._deadline(timeout), metadata=self._admin_metadata()
            )
        return _xconvert.experiment(response)

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        await self._channel.close(None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
