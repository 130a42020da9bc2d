"""Requests and results of the experiment calls: Feedback, Compare, reports and the Admin API.

Definitions are checked here as the gateway checks them (names, weights, rates), so a bad one
fails before any call; the gateway alone knows which models and labels exist.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from imgclf.v1 import admin_pb2, classifier_pb2, experiments_pb2

from ._convert import classification, model_selector
from ._exceptions import InvalidInput, from_status
from ._experiment_types import (
    AnalysisSettings,
    ArmComparison,
    ArmReport,
    ClassCount,
    CompareAnswer,
    Experiment,
    ExperimentArm,
    ExperimentReport,
    FeedbackResult,
    Latency,
    ModelRef,
    ShadowArm,
    ShadowReport,
    Verdict,
)
from ._images import ImageInput, set_image

MAX_NAME_LENGTH = 128
MAX_ARMS = 16
MAX_COMPARE_MODELS = 8
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_name(kind: str, name: str) -> None:
    """Raises InvalidInput unless `name` is a valid experiment or arm name."""
    if not name or len(name) > MAX_NAME_LENGTH or not _NAME.match(name):
        raise InvalidInput(
            f"{kind} name {name!r} must be 1 to {MAX_NAME_LENGTH} letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )


def _ref(value: str | ModelRef) -> ModelRef:
    return ModelRef.parse(value) if isinstance(value, str) else value


def selector(ref: ModelRef) -> classifier_pb2.ModelSelector:
    return model_selector(ref.model, version=ref.version, label=ref.label)


def _check_positive_version(ref: ModelRef, where: str) -> None:
    if ref.version is not None and ref.version <= 0:
        raise InvalidInput(f"{where}: version must be a positive number, not {ref.version}")


def experiment_message(experiment: Experiment) -> experiments_pb2.Experiment:
    """The proto of a definition, checked as the gateway checks it."""
    check_name("experiment", experiment.name)
    if len(experiment.arms) < 2:
        raise InvalidInput(f"experiment '{experiment.name}' needs at least two arms")
    if len(experiment.arms) + len(experiment.shadows) > MAX_ARMS:
        raise InvalidInput(f"experiment '{experiment.name}' has more than {MAX_ARMS} arms")
    names = [a.name for a in experiment.arms] + [s.name for s in experiment.shadows]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidInput(f"duplicate arm name(s): {', '.join(duplicates)}")
    message = experiments_pb2.Experiment(name=experiment.name, description=experiment.description)
    for arm in experiment.arms:
        check_name("arm", arm.name)
        _check_positive_version(arm.model, f"arm '{arm.name}'")
        if not math.isfinite(arm.weight) or arm.weight < 0:
            raise InvalidInput(f"arm '{arm.name}': weight must be >= 0, not {arm.weight}")
        message.arms.add(name=arm.name, model=selector(arm.model), weight=arm.weight)
    if sum(a.weight for a in experiment.arms) <= 0:
        raise InvalidInput("the arms' weights sum to 0; give some arm a weight above 0")
    for shadow in experiment.shadows:
        check_name("shadow arm", shadow.name)
        _check_positive_version(shadow.model, f"shadow arm '{shadow.name}'")
        if not (math.isfinite(shadow.sample_rate) and 0 <= shadow.sample_rate <= 1):
            raise InvalidInput(f"shadow arm '{shadow.name}': sample_rate must be from 0 to 1")
        message.shadows.add(
            name=shadow.name, model=selector(shadow.model), sample_rate=shadow.sample_rate
        )
    analysis = experiment.analysis
    if not 0 <= analysis.alpha < 1 or analysis.min_samples < 0 or analysis.mixture_sd < 0:
        raise InvalidInput("analysis: alpha must be in [0, 1), min_samples and mixture_sd >= 0")
    message.analysis.alpha = analysis.alpha
    message.analysis.min_samples = analysis.min_samples
    message.analysis.mixture_sd = analysis.mixture_sd
    return message


def create_request(experiment: Experiment) -> admin_pb2.CreateExperimentRequest:
    return admin_pb2.CreateExperimentRequest(experiment=experiment_message(experiment))


def update_request(
    experiment: Experiment, expected_revision: int | None, restart: bool = False
) -> admin_pb2.UpdateExperimentRequest:
    if expected_revision is not None and expected_revision <= 0:
        raise InvalidInput("expected_revision must be a positive revision number")
    return admin_pb2.UpdateExperimentRequest(
        experiment=experiment_message(experiment),
        expected_revision=expected_revision or 0,
        restart=restart,
    )


def end_request(name: str) -> admin_pb2.EndExperimentRequest:
    check_name("experiment", name)
    return admin_pb2.EndExperimentRequest(name=name)


def report_request(
    name: str, since: datetime | None = None
) -> experiments_pb2.GetExperimentReportRequest:
    check_name("experiment", name)
    request = experiments_pb2.GetExperimentReportRequest(name=name)
    if since is not None:
        if since.tzinfo is None:
            raise InvalidInput("since must be a timezone-aware datetime (e.g. in UTC)")
        request.since.FromDatetime(since)
    return request


def feedback_request(request_id: str, true_class: int | str) -> classifier_pb2.FeedbackRequest:
    if not request_id or len(request_id) > MAX_NAME_LENGTH:
        raise InvalidInput("request_id must be the non-empty id of an earlier classification")
    request = classifier_pb2.FeedbackRequest(request_id=request_id)
    if isinstance(true_class, bool) or not isinstance(true_class, int | str):
        raise InvalidInput("true_class must be a class index (int) or a class name (str)")
    if isinstance(true_class, int):
        if true_class < 0:
            raise InvalidInput(f"true_class must be >= 0, not {true_class}")
        request.class_index = true_class
    else:
        if not true_class:
            raise InvalidInput("true_class must not be empty")
        request.class_name = true_class
    return request


def compare_request(
    image: ImageInput, models: Sequence[str | ModelRef], *, top_k: int, request_id: str | None
) -> classifier_pb2.CompareRequest:
    refs = [_ref(m) for m in models]
    if not 2 <= len(refs) <= MAX_COMPARE_MODELS:
        raise InvalidInput(f"compare takes 2 to {MAX_COMPARE_MODELS} models, not {len(refs)}")
    if top_k < 0:
        raise InvalidInput(f"top_k must be 0 (every class) or positive, not {top_k}")
    request = classifier_pb2.CompareRequest(
        models=[selector(r) for r in refs], top_k=top_k, request_id=request_id or ""
    )
    set_image(request, image)
    return request


def _model_ref(message: classifier_pb2.ModelSelector) -> ModelRef:
    choice = message.WhichOneof("version_choice")
    if choice == "version":
        return ModelRef(message.name, version=message.version)
    if choice == "label":
        return ModelRef(message.name, label=message.label)
    return ModelRef(message.name)


def compare_answers(response: classifier_pb2.CompareResponse) -> list[CompareAnswer]:
    answers = []
    for answer in response.answers:
        if answer.WhichOneof("outcome") == "result":
            result = classification(answer.result)
            answers.append(CompareAnswer(_model_ref(answer.model), result, answer.latency_ms))
        else:
            error = from_status(answer.error.code, answer.error.message)
            answers.append(CompareAnswer(_model_ref(answer.model), error, answer.latency_ms))
    return answers


def feedback_result(response: classifier_pb2.FeedbackResponse) -> FeedbackResult:
    return FeedbackResult(
        duplicate=response.outcome == classifier_pb2.FeedbackResponse.DUPLICATE,
        class_index=response.class_index,
        class_name=response.class_name,
        experiment=response.experiment,
    )


def _time(stamp: Timestamp) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if stamp.seconds or stamp.nanos else None


def experiment(message: experiments_pb2.Experiment) -> Experiment:
    return Experiment(
        name=message.name,
        arms=[ExperimentArm(a.name, _model_ref(a.model), a.weight) for a in message.arms],
        shadows=[ShadowArm(s.name, _model_ref(s.model), s.sample_rate) for s in message.shadows],
        analysis=AnalysisSettings(
            message.analysis.alpha, message.analysis.min_samples, message.analysis.mixture_sd
        ),
        description=message.description,
        revision=message.revision,
        ended=message.ended,
        started_at=_time(message.started_at),
    )


def _latency(message: experiments_pb2.LatencySummary) -> Latency:
    return Latency(message.p50_ms, message.p95_ms, message.p99_ms)


def _interval(message: experiments_pb2.Interval) -> tuple[float, float]:
    return (message.low, message.high)


def _optional_ref(message: classifier_pb2.ModelSelector) -> ModelRef | None:
    return _model_ref(message) if message.name else None


def report(message: experiments_pb2.ExperimentReport) -> ExperimentReport:
    verdict = message.verdict
    return ExperimentReport(
        experiment=experiment(message.experiment),
        generated_at=message.generated_at.ToDatetime(tzinfo=UTC),
        arms=[
            ArmReport(
                name=a.name,
                model=_optional_ref(a.model),
                weight=a.weight,
                requests=a.requests,
                errors=dict(a.errors),
                latency=_latency(a.latency),
                versions={v.version: v.count for v in a.versions},
                predicted_classes=[
                    ClassCount(c.index, c.name, c.count) for c in a.predicted_classes
                ],
                mean_confidence=a.mean_confidence,
                feedback=a.feedback,
                correct=a.correct,
                accuracy=a.accuracy,
                accuracy_interval=_interval(a.accuracy_interval),
            )
            for a in message.arms
        ],
        shadows=[
            ShadowReport(
                name=s.name,
                model=_optional_ref(s.model),
                sample_rate=s.sample_rate,
                requests=s.requests,
                errors=dict(s.errors),
                latency=_latency(s.latency),
                pairs=s.pairs,
                agreements=s.agreements,
                agreement=s.agreement,
                agreement_interval=_interval(s.agreement_interval),
                paired_feedback=s.paired_feedback,
                shadow_correct=s.shadow_correct,
                primary_correct=s.primary_correct,
                mcnemar_b=s.mcnemar_b,
                mcnemar_c=s.mcnemar_c,
                mcnemar_p=s.mcnemar_p,
                accuracy_difference=s.accuracy_difference,
            )
            for s in message.shadows
        ],
        verdict=Verdict(
            outcome=experiments_pb2.Verdict.Outcome.Name(verdict.outcome),
            winner=verdict.winner,
            p_value=verdict.p_value,
            summary=verdict.summary,
            test=verdict.test,
            alpha=verdict.alpha,
            mixture_sd=verdict.mixture_sd,
            min_samples=verdict.min_samples,
            samples=dict(verdict.samples),
            needed=verdict.needed,
            comparisons=[
                ArmComparison(c.control, c.challenger, c.difference, c.p_value, c.significant)
                for c in verdict.comparisons
            ],
        ),
    )
