"""Fuzz family "selectors": model name, version, label and experiment (empty, unknown, near
misses, unicode, control characters, up to a million characters; negative and huge versions),
top_k, routing keys and request ids, through Classify, ClassifyStream, GetModel, Compare,
Feedback and the Experiments service.

Each call gets an allowed status, never INTERNAL or UNKNOWN, with a bounded message however long
the name it echoes; a selector that names what is served (cnn, version 1 or 2, label stable or
canary, or experiment ab) is answered OK.
"""

from __future__ import annotations

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st
from imgclf.v1 import admin_pb2, experiments_pb2
from imgclf.v1 import classifier_pb2 as pb

from tests.fuzz.profiles import fuzz
from tests.fuzz.stats import TALLY
from tests.fuzz.strategies import (
    EXPERIMENT,
    MODEL,
    classify_requests,
    compare_requests,
    experiment_definitions,
    feedback_requests,
    names,
    selectors,
    small_raw_image,
)
from tests.fuzz.target import (
    ADMIN_METHODS,
    CLASSIFY,
    CLASSIFY_STREAM,
    COMPARE,
    FEEDBACK,
    GET_MODEL,
    GET_REPORT,
    LIST_EXPERIMENTS,
    LIST_MODELS,
    FuzzTarget,
)

FAMILY = "selectors"
OK = grpc.StatusCode.OK
SERVED_VERSIONS = (1, 2)
SERVED_LABELS = ("stable", "canary")
MAX_REQUEST_IDS = 64
ADMIN_BY_NAME = {m.name.removesuffix("Experiment").lower(): m for m in ADMIN_METHODS}
TIMESTAMP_MIN_S, TIMESTAMP_MAX_S = -62_135_596_800, 253_402_300_799  # 0001-01-01, 9999-12-31
SECONDS = st.one_of(
    st.integers(0, 2**31),
    st.sampled_from((TIMESTAMP_MIN_S, TIMESTAMP_MAX_S, TIMESTAMP_MIN_S - 1, TIMESTAMP_MAX_S + 1)),
    st.integers(-(2**63), 2**63 - 1),
)
NANOS = st.one_of(st.just(0), st.integers(0, 999_999_999), st.integers(-(2**31), 2**31 - 1))


def names_what_is_served(selector: pb.ModelSelector, *, experiments: bool = True) -> bool:
    if selector.experiment:
        return (
            experiments
            and selector.experiment == EXPERIMENT
            and not selector.name
            and (selector.WhichOneof("version_choice") is None)
        )
    choice = selector.WhichOneof("version_choice")
    return selector.name == MODEL and (
        choice is None
        or (choice == "version" and selector.version in SERVED_VERSIONS)
        or (choice == "label" and selector.label in SERVED_LABELS)
    )


@fuzz(ci=20, long=1200)
@given(request=classify_requests(), via=st.sampled_from(("Classify", "ClassifyStream")))
async def test_a_classify_selector_gets_an_allowed_status(
    target: FuzzTarget, request: pb.ClassifyRequest, via: str
) -> None:
    TALLY.case(FAMILY)
    plain = not request.routing_key and not request.request_id
    expect = OK if plain and names_what_is_served(request.model) else None
    method = CLASSIFY if via == "Classify" else CLASSIFY_STREAM
    await target.call(FAMILY, method, request, expect=expect)
    await target.case_done()


@fuzz(ci=8, long=400)
@given(requests=st.lists(classify_requests(), min_size=1, max_size=4))
async def test_a_stream_of_fuzzed_selectors_answers_every_item(
    target: FuzzTarget, requests: list[pb.ClassifyRequest]
) -> None:
    TALLY.case(FAMILY)
    await target.stream(FAMILY, requests)
    await target.case_done()


@fuzz(ci=14, long=800)
@given(selector=selectors(), compare=compare_requests(), which=st.sampled_from(("get", "compare")))
async def test_get_model_and_compare_selectors_get_an_allowed_status(
    target: FuzzTarget, selector: pb.ModelSelector, compare: pb.CompareRequest, which: str
) -> None:
    TALLY.case(FAMILY)
    if which == "get":
        expect = OK if names_what_is_served(selector, experiments=False) else None
        await target.call(FAMILY, GET_MODEL, pb.GetModelRequest(model=selector), expect=expect)
    else:
        await target.call(FAMILY, COMPARE, compare)
    await target.case_done()


@fuzz(ci=10, long=600)
@given(
    feedback=feedback_requests(),
    classify_first=st.booleans(),
    real_id=st.one_of(st.none(), st.integers(0, MAX_REQUEST_IDS - 1)),
)
async def test_feedback_gets_an_allowed_status(
    target: FuzzTarget, feedback: pb.FeedbackRequest, classify_first: bool, real_id: int | None
) -> None:
    """Feedback about any id, or about a real call made through the experiment (recorded in
    the store), with any true class: a second, different answer is ALREADY_EXISTS."""
    TALLY.case(FAMILY)
    if classify_first:
        request = pb.ClassifyRequest(
            raw=small_raw_image(), model=pb.ModelSelector(experiment=EXPERIMENT)
        )
        answer = await target.call(FAMILY, CLASSIFY, request, expect=OK)
        assert isinstance(answer.response, pb.ClassifyResponse)
        target.request_ids = [answer.response.request_id, *target.request_ids][:MAX_REQUEST_IDS]
    if real_id is not None and target.request_ids:
        feedback.request_id = target.request_ids[real_id % len(target.request_ids)]
    await target.call(FAMILY, FEEDBACK, feedback)
    await target.case_done()


@fuzz(ci=8, long=400)
@given(
    name=names(EXPERIMENT),
    since=st.one_of(st.none(), st.tuples(SECONDS, NANOS)),
    which=st.sampled_from(("report", "list", "models")),
)
async def test_experiment_and_listing_calls_get_an_allowed_status(
    target: FuzzTarget, name: str, since: tuple[int, int] | None, which: str
) -> None:
    """GetExperimentReport with any name and any `since` (in range, at the ends of
    Timestamp's range and past them), ListExperiments and ListModels."""
    TALLY.case(FAMILY)
    if which == "report":
        request = experiments_pb2.GetExperimentReportRequest(name=name)
        if since is not None:
            request.since.CopyFrom(Timestamp(seconds=since[0], nanos=since[1]))
        await target.call(FAMILY, GET_REPORT, request)
    elif which == "list":
        await target.call(
            FAMILY, LIST_EXPERIMENTS, experiments_pb2.ListExperimentsRequest(), expect=OK
        )
    else:
        await target.call(FAMILY, LIST_MODELS, pb.ListModelsRequest(), expect=OK)
    await target.case_done()


@fuzz(ci=8, long=500)
@given(
    experiment=experiment_definitions(),
    which=st.sampled_from(("create", "create", "update", "end")),
    expected_revision=st.one_of(st.just(0), st.integers(-(2**63), 2**63 - 1)),
    restart=st.booleans(),
)
async def test_an_experiment_definition_gets_an_allowed_status(
    target: FuzzTarget,
    experiment: experiments_pb2.Experiment,
    which: str,
    expected_revision: int,
    restart: bool,
) -> None:
    """Admin calls (with a valid token) carrying any definition: names, arms, weights and
    sample rates (NaN, infinite, negative), analysis settings, the fields the gateway sets."""
    TALLY.case(FAMILY)
    method = ADMIN_BY_NAME[which]
    if which == "create":
        request: Message = admin_pb2.CreateExperimentRequest(experiment=experiment)
    elif which == "update":
        request = admin_pb2.UpdateExperimentRequest(
            experiment=experiment, expected_revision=expected_revision, restart=restart
        )
    else:
        request = admin_pb2.EndExperimentRequest(name=experiment.name)
    await target.call(FAMILY, method, request, admin_token=True)
    await target.case_done()
