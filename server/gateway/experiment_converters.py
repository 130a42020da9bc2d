"""Translates experiments, reports, feedback and comparisons between the protos and the core."""

from __future__ import annotations

import math
from collections.abc import Sequence

from google.protobuf.timestamp_pb2 import Timestamp
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import experiments_pb2 as xpb

from common.statistics import SequentialTestSettings, Verdict
from server.experiments.definitions import Arm, DefinitionError, Experiment, ShadowArm, validate
from server.experiments.feedback import FeedbackOutcome
from server.experiments.registry import ActiveExperiment
from server.experiments.report import ArmReport, ExperimentReport, ShadowReport
from server.gateway.classification import CompareOutcome
from server.gateway.converters import classify_response, model_ref
from server.gateway.domain import ModelRef
from server.gateway.errors import InvalidRequest
from server.gateway.interceptor import status_for

_OUTCOMES = {
    "insufficient_data": xpb.Verdict.INSUFFICIENT_DATA,
    "no_difference": xpb.Verdict.NO_DIFFERENCE,
    "winner": xpb.Verdict.WINNER,
}


def selector(ref: ModelRef) -> pb.ModelSelector:
    message = pb.ModelSelector(name=ref.name)
    if ref.version is not None:
        message.version = ref.version
    elif ref.label is not None:
        message.label = ref.label
    return message


def _shown(name: str, limit: int = 64) -> str:
    """A caller's name as echoed in a message: cut, so a long one cannot swell the status."""
    return name if len(name) <= limit else name[:limit] + "..."


def _arm_ref(message: pb.ModelSelector, where: str) -> ModelRef:
    if message.experiment:
        raise InvalidRequest(f"{where}: an arm names a model, not an experiment")
    return model_ref(message)


def experiment_from_proto(message: xpb.Experiment) -> Experiment:
    """The definition in a Create/Update request, validated on its own."""
    defaults = SequentialTestSettings()
    analysis = message.analysis
    try:
        settings = SequentialTestSettings(
            alpha=analysis.alpha or defaults.alpha,
            min_samples=analysis.min_samples or defaults.min_samples,
            mixture_sd=analysis.mixture_sd or defaults.mixture_sd,
        )
        experiment = Experiment(
            name=message.name,
            arms=tuple(
                Arm(a.name, _arm_ref(a.model, f"arm '{_shown(a.name)}'"), a.weight)
                for a in message.arms
            ),
            shadows=tuple(
                ShadowArm(
                    s.name, _arm_ref(s.model, f"shadow arm '{_shown(s.name)}'"), s.sample_rate
                )
                for s in message.shadows
            ),
            analysis=settings,
            description=message.description,
        )
        validate(experiment)
    except (DefinitionError, ValueError) as error:
        raise InvalidRequest(str(error)) from error
    return experiment


def experiment_to_proto(active: ActiveExperiment) -> xpb.Experiment:
    definition = active.definition
    started = Timestamp()
    started.FromDatetime(active.started_at)
    return xpb.Experiment(
        name=definition.name,
        description=definition.description,
        arms=[
            xpb.ExperimentArm(name=a.name, model=selector(a.model), weight=a.weight)
            for a in definition.arms
        ],
        shadows=[
            xpb.ShadowArm(name=s.name, model=selector(s.model), sample_rate=s.sample_rate)
            for s in definition.shadows
        ],
        analysis=xpb.AnalysisSettings(
            alpha=definition.analysis.alpha,
            min_samples=definition.analysis.min_samples,
            mixture_sd=definition.analysis.mixture_sd,
        ),
        revision=active.revision,
        ended=active.ended,
        started_at=started,
    )


def _name(names: Sequence[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else ""


def _arm_report(arm: ArmReport, definition: Experiment, names: Sequence[str]) -> xpb.ArmReport:
    spec = next((a for a in definition.arms if a.name == arm.name), None)
    return xpb.ArmReport(
        name=arm.name,
        model=selector(spec.model) if spec else None,
        weight=spec.weight if spec else 0.0,
        requests=arm.requests,
        errors=arm.errors,
        latency=xpb.LatencySummary(
            p50_ms=arm.latency_ms.p50, p95_ms=arm.latency_ms.p95, p99_ms=arm.latency_ms.p99
        ),
        versions=[xpb.VersionCount(version=v, count=n) for v, n in sorted(arm.versions.items())],
        predicted_classes=[
            xpb.ClassCount(index=i, name=_name(names, i), count=n)
            for i, n in sorted(arm.predicted_classes.items())
        ],
        mean_confidence=arm.mean_confidence,
        feedback=arm.feedback,
        correct=arm.correct,
        accuracy=arm.accuracy,
        accuracy_interval=xpb.Interval(
            low=arm.accuracy_interval.low, high=arm.accuracy_interval.high
        ),
    )


def _shadow_report(shadow: ShadowReport, definition: Experiment) -> xpb.ShadowReport:
    spec = next((s for s in definition.shadows if s.name == shadow.name), None)
    return xpb.ShadowReport(
        name=shadow.name,
        model=selector(spec.model) if spec else None,
        sample_rate=spec.sample_rate if spec else 0.0,
        requests=shadow.requests,
        errors=shadow.errors,
        latency=xpb.LatencySummary(
            p50_ms=shadow.latency_ms.p50,
            p95_ms=shadow.latency_ms.p95,
            p99_ms=shadow.latency_ms.p99,
        ),
        pairs=shadow.pairs,
        agreements=shadow.agreements,
        agreement=shadow.agreement,
        agreement_interval=xpb.Interval(
            low=shadow.agreement_interval.low, high=shadow.agreement_interval.high
        ),
        paired_feedback=shadow.paired_feedback,
        shadow_correct=shadow.shadow_correct,
        primary_correct=shadow.primary_correct,
        mcnemar_b=shadow.mcnemar.b,
        mcnemar_c=shadow.mcnemar.c,
        mcnemar_p=shadow.mcnemar.exact_p,
        accuracy_difference=shadow.accuracy_difference,
    )


def verdict_to_proto(verdict: Verdict) -> xpb.Verdict:
    return xpb.Verdict(
        outcome=_OUTCOMES.get(verdict.outcome, xpb.Verdict.OUTCOME_UNSPECIFIED),
        winner=verdict.winner or "",
        p_value=verdict.p_value,
        summary=verdict.summary,
        test=verdict.test,
        alpha=verdict.parameters.get("alpha", math.nan),
        mixture_sd=verdict.parameters.get("mixture_sd", math.nan),
        min_samples=int(verdict.parameters.get("min_samples", 0)),
        samples=verdict.samples,
        needed=verdict.needed,
        comparisons=[
            xpb.ArmComparison(
                control=c.control,
                challenger=c.challenger,
                difference=c.difference,
                p_value=c.p_value,
                significant=c.significant,
            )
            for c in verdict.comparisons
        ],
    )


def report_to_proto(
    active: ActiveExperiment, report: ExperimentReport, class_names: Sequence[str]
) -> xpb.ExperimentReport:
    generated = Timestamp()
    generated.FromDatetime(report.generated_at)
    return xpb.ExperimentReport(
        experiment=experiment_to_proto(active),
        generated_at=generated,
        arms=[_arm_report(a, active.definition, class_names) for a in report.arms],
        shadows=[_shadow_report(s, active.definition) for s in report.shadows],
        verdict=verdict_to_proto(report.verdict),
    )


def feedback_input(request: pb.FeedbackRequest) -> int | str:
    choice = request.WhichOneof("true_class")
    if choice == "class_index":
        return request.class_index
    if choice == "class_name":
        return request.class_name
    raise InvalidRequest("the true class is required: set class_index or class_name")


def feedback_response(outcome: FeedbackOutcome) -> pb.FeedbackResponse:
    return pb.FeedbackResponse(
        outcome=pb.FeedbackResponse.DUPLICATE
        if outcome.duplicate
        else pb.FeedbackResponse.RECORDED,
        class_index=outcome.class_index,
        class_name=outcome.class_name,
        experiment=outcome.experiment,
    )


def compare_refs(request: pb.CompareRequest) -> list[ModelRef]:
    refs = []
    for index, message in enumerate(request.models):
        if message.experiment:
            raise InvalidRequest(f"models[{index}]: Compare takes models, not experiments")
        refs.append(model_ref(message))
    return refs


def compare_response(
    request: pb.CompareRequest, outcomes: Sequence[CompareOutcome], request_id: str
) -> pb.CompareResponse:
    response = pb.CompareResponse(request_id=request_id)
    for message, outcome in zip(request.models, outcomes, strict=True):
        answer = response.answers.add(model=message, latency_ms=outcome.latency_s * 1000)
        if isinstance(outcome.result, Exception):
            answer.error.code = status_for(outcome.result).value[0]
            answer.error.message = outcome.result.message
        else:
            answer.result.CopyFrom(classify_response(outcome.result))
    return response
