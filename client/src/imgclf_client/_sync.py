"""`Client`: the blocking client."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

import grpc
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


class Client(BaseClient):
    """A blocking client for the Classifier service, over one gRPC channel.

    Thread-safe. Use it as a context manager, or call `close()`, to release the channel.
    """

    _channel: grpc.Channel
    _stub: classifier_pb2_grpc.ClassifierStub

    def _connect(self) -> None:
        if self._credentials is None:
            self._channel = grpc.insecure_channel(self._target, options=self._options)
        else:
            self._channel = grpc.secure_channel(
                self._target, self._credentials, options=self._options
            )
        self._stub = classifier_pb2_grpc.ClassifierStub(self._channel)
        self._experiments = experiments_pb2_grpc.ExperimentsStub(self._channel)
        self._admin = admin_pb2_grpc.AdminStub(self._channel)

    def classify(
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
        """Classifies one image with a model version.

        Args:
            image: encoded image bytes (JPEG, PNG, ...), the path of an image file, or a
                numpy uint8 array shaped (H, W), (H, W, 1), (H, W, 3) or (H, W, 4).
            model: the model name, e.g. "cnn"; give `model` or `experiment`.
            version: a version number; at most one of `version` and `label`. With neither,
                the highest available version serves.
            label: a version label such as "stable" or "canary".
            experiment: an experiment name instead of a model: the experiment picks the arm;
                the result's `experiment` and `arm` say which served.
            top_k: how many classes to return, best first; 0 returns every class.
            routing_key: a key for sticky routing in experiments, e.g. a user id: the same
                key gets the same arm while the weights stay the same.
            request_id: an id for the gateway's logs; the gateway makes one when None.
            timeout: this call's deadline in seconds; None means no deadline.

        Raises:
            InvalidInput: a bad argument; nothing was sent.
            ServerError: the call failed; the subclass names the status code.
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
            response = self._stub.Classify(request, timeout=self._deadline(timeout))
        return _convert.classification(response)

    def classify_many(
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
            answers = list(call)
        return [_convert.stream_outcome(answer) for answer in answers]

    def list_models(self, *, timeout: TimeoutTypes = USE_CLIENT_DEFAULT) -> list[ModelStatus]:
        """Lists the served models with their versions, version states and labels."""
        with translate_errors():
            response = self._stub.ListModels(
                classifier_pb2.ListModelsRequest(), timeout=self._deadline(timeout)
            )
        return _convert.model_statuses(response)

    def get_model(
        self,
        model: str,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: TimeoutTypes = USE_CLIENT_DEFAULT,
    ) -> ModelInfo:
        """Describes one model version (the highest available one by default)."""
        request = _convert.get_model_request(model, version=version, label=label)
        with translate_errors():
            response = self._stub.GetModel(request, timeout=self._deadline(timeout))
        return _convert.model_info(response)

    def compare(
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
            response = self._stub.Compare(request, timeout=self._deadline(timeout))
        return _xconvert.compare_answers(response)

    def feedback(
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
            response = self._stub.Feedback(request, timeout=self._deadline(timeout))
        return _xconvert.feedback_result(response)

    def list_experiments(
        self, *, include_ended: bool = False, timeout: TimeoutTypes = USE_CLIENT_DEFAULT
    ) -> list[Experiment]:
        """The experiments the gateway routes through (and the ended ones, if asked)."""
        request = experiments_pb2.ListExperimentsRequest(include_ended=include_ended)
        with translate_errors():
            response = self._experiments.ListExperiments(request, timeout=self._deadline(timeout))
        return [_xconvert.experiment(e) for e in response.experiments]

    def experiment_report(
        self,
        name: str,
        *,
        since: datetime | None = None,
        timeout: TimeoutTypes = USE_CLIENT_DEFAULT,
    ) -> ExperimentReport:
        """Per-arm figures and the verdict of one experiment, from the experiment store.

        With `since` (timezone-aware), the arms' figures cover only the calls made since then;
        the verdict always covers every feedback since the experiment started.
        """
        request = _xconvert.report_request(name, since)
        with translate_errors():
            response = self._experiments.GetExperimentReport(
                request, timeout=self._deadline(timeout)
            )
        return _xconvert.report(response)

    def create_experiment(
        self, experiment: Experiment, *, timeout: TimeoutTypes = USE_CLIENT_DEFAULT
    ) -> Experiment:
        """Starts an experiment (Admin API: needs `admin_token`)."""
        request = _xconvert.create_request(experiment)
        with translate_errors():
            response = self._admin.CreateExperiment(
                request, timeout=self._deadline(timeout), metadata=self._admin_metadata()
            )
        return _xconvert.experiment(response)

    def update_experiment(
        self,
        experiment: Experiment,
        *,
        expected_revision: int | None = None,
        restart: bool = False,
        timeout: TimeoutTypes = USE_CLIENT_DEFAULT,
    ) -> Experiment:
        """Replaces a running experiment's definition (Admin API: needs `admin_token`).

        With `expected_revision`, the change is refused (ServerError ABORTED) if the
        experiment changed since that revision. With `restart`, the experiment's report and
        verdict start afresh: only calls from now on count.
        """
        request = _xconvert.update_request(experiment, expected_revision, restart)
        with translate_errors():
            response = self._admin.UpdateExperiment(
                request, timeout=self._deadline(timeout), metadata=self._admin_metadata()
            )
        return _xconvert.experiment(response)

    def end_experiment(
        self, name: str, *, timeout: TimeoutTypes = USE_CLIENT_DEFAULT
    ) -> Experiment:
        """Ends an experiment; its report stays (Admin API: needs `admin_token`)."""
        request = _xconvert.end_request(name)
        with translate_errors():
            response = self._admin.EndExperiment(
                request, timeout=self._deadline(timeout), metadata=self._admin_metadata()
            )
        return _xconvert.experiment(response)

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
