"""The fuzz target: calls the running gateway through real gRPC and checks every answer.

`FuzzTarget` sends typed requests or raw bytes to any method of the gateway's public services,
unary or as ClassifyStream items, and checks the one property of the fuzz run: each call ends
with an allowed status, never INTERNAL or UNKNOWN, with a bounded message; the same holds for
the per-item statuses inside Compare answers and stream answers. Every few cases, and at the end
of each test, a normal Classify must still succeed (`probe`). Everything seen is counted in
`tests.fuzz.stats.TALLY`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message
from imgclf.v1 import admin_pb2, classifier_pb2, experiments_pb2

from tests.fuzz.stats import FORBIDDEN, TALLY
from tests.fuzz.strategies import MODEL, ODD

CALL_TIMEOUT_S = 60.0
PROBE_EVERY = 20
MAX_DETAILS_CHARS = 4096
"""An answer's message is written for a person; values echoed in it are truncated."""
CLASSES = 10
PHOTO = ODD / "jpeg_baseline_rgb.jpg"

Code = grpc.StatusCode
ALLOWED: frozenset[Code] = frozenset(
    {
        Code.OK,
        Code.INVALID_ARGUMENT,
        Code.NOT_FOUND,
        Code.RESOURCE_EXHAUSTED,
        Code.FAILED_PRECONDITION,
        Code.OUT_OF_RANGE,
        Code.DEADLINE_EXCEEDED,
        # The backend is up for the whole run; UNAVAILABLE is allowed by the property (a model
        # loading, the store) but a caller opening the breaker for everyone fails the probe.
        Code.UNAVAILABLE,
    }
)
CODE_BY_VALUE: dict[int, Code] = {code.value[0]: code for code in Code}


@dataclass(frozen=True)
class Method:
    """One RPC of the gateway's public services."""

    path: str
    request: type[Message]
    response: type[Message]
    allowed: frozenset[Code] = ALLOWED
    streaming: bool = False

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


C = classifier_pb2
E = experiments_pb2
A = admin_pb2
CLASSIFIER = "/imgclf.v1.Classifier/"
CLASSIFY = Method(CLASSIFIER + "Classify", C.ClassifyRequest, C.ClassifyResponse)
CLASSIFY_STREAM = Method(
    CLASSIFIER + "ClassifyStream", C.ClassifyRequest, C.ClassifyStreamResponse, streaming=True
)
LIST_MODELS = Method(CLASSIFIER + "ListModels", C.ListModelsRequest, C.ListModelsResponse)
GET_MODEL = Method(CLASSIFIER + "GetModel", C.GetModelRequest, C.GetModelResponse)
FEEDBACK = Method(
    CLASSIFIER + "Feedback",
    C.FeedbackRequest,
    C.FeedbackResponse,
    allowed=ALLOWED | {Code.ALREADY_EXISTS},
)
COMPARE = Method(CLASSIFIER + "Compare", C.CompareRequest, C.CompareResponse)
EXPERIMENTS = "/imgclf.v1.Experiments/"
LIST_EXPERIMENTS = Method(
    EXPERIMENTS + "ListExperiments", E.ListExperimentsRequest, E.ListExperimentsResponse
)
GET_REPORT = Method(
    EXPERIMENTS + "GetExperimentReport", E.GetExperimentReportRequest, E.ExperimentReport
)
ADMIN = "/imgclf.v1.Admin/"
ADMIN_ALLOWED = ALLOWED | {
    Code.UNAUTHENTICATED,
    Code.PERMISSION_DENIED,
    Code.ALREADY_EXISTS,
    Code.ABORTED,
}
ADMIN_METHODS: tuple[Method, ...] = (
    Method(ADMIN + "CreateExperiment", A.CreateExperimentRequest, E.Experiment, ADMIN_ALLOWED),
    Method(ADMIN + "UpdateExperiment", A.UpdateExperimentRequest, E.Experiment, ADMIN_ALLOWED),
    Method(ADMIN + "EndExperiment", A.EndExperimentRequest, E.Experiment, ADMIN_ALLOWED),
)
CLASSIFIER_METHODS: tuple[Method, ...] = (
    CLASSIFY,
    CLASSIFY_STREAM,
    LIST_MODELS,
    GET_MODEL,
    FEEDBACK,
    COMPARE,
)
ALL_METHODS: tuple[Method, ...] = (
    *CLASSIFIER_METHODS,
    LIST_EXPERIMENTS,
    GET_REPORT,
    *ADMIN_METHODS,
)


@dataclass(frozen=True)
class Answer:
    """How one call (or one stream item) ended."""

    code: Code
    details: str
    response: Message | None = None


def item_answer(item: classifier_pb2.ClassifyStreamResponse) -> Answer:
    if item.WhichOneof("outcome") == "result":
        return Answer(Code.OK, "", item.result)
    return Answer(CODE_BY_VALUE.get(item.error.code, Code.UNKNOWN), item.error.message)


class FuzzFailure(AssertionError):
    """The gateway answered outside the property."""

    def __init__(self, kind: str, detail: str = "") -> None:
        """`kind` names the problem without the input (it is counted); `detail` shows it."""
        TALLY.problem(kind)
        super().__init__(f"{kind}; {detail}" if detail else kind)


class FuzzTarget:
    """Calls one running gateway; one instance per pytest session."""

    def __init__(self, channel: grpc.aio.Channel, admin_token: str) -> None:
        self.channel = channel
        self.admin_metadata = (("authorization", f"Bearer {admin_token}"),)
        self._since_probe = 0
        self.request_ids: list[str] = []
        """Ids of real calls made through the experiment, for Feedback to name."""

    # -- the checks ------------------------------------------------------------------------

    def _check(
        self,
        family: str,
        method: Method,
        code: Code,
        details: str,
        where: str,
        expect: Code | None = None,
    ) -> None:
        TALLY.status(family, code.name)
        problem = ""
        if code.name in FORBIDDEN:
            problem = "a forbidden status"
        elif code not in method.allowed:
            problem = "a status outside the allowed set"
        elif len(details) > MAX_DETAILS_CHARS:
            problem = f"a message of {len(details)} characters (echoed values not truncated)"
        elif code == Code.RESOURCE_EXHAUSTED and "metadata size exceeds" in details.lower():
            problem = "an answer too large for gRPC's metadata limit (echoed values)"
        elif expect is not None and code != expect:
            problem = f"expected {expect.name}"
        if problem:
            raise FuzzFailure(
                f"{method.name}{' item' if where else ''} answered {code.name}: {problem}",
                f"{method.name}{where}; details: {details[:500]!r}",
            )

    def _check_items(self, family: str, method: Method, response: Message) -> None:
        """The statuses inside an OK Compare or stream answer obey the same property."""
        if isinstance(response, classifier_pb2.CompareResponse):
            for n, answer in enumerate(response.answers):
                if answer.WhichOneof("outcome") == "error":
                    code = CODE_BY_VALUE.get(answer.error.code, Code.UNKNOWN)
                    self._check(family, method, code, answer.error.message, f" answer {n}")
        elif isinstance(response, classifier_pb2.ClassifyStreamResponse):
            if response.WhichOneof("outcome") == "error":
                code = CODE_BY_VALUE.get(response.error.code, Code.UNKNOWN)
                self._check(
                    family, method, code, response.error.message, f" item {response.sequence}"
                )
            elif response.WhichOneof("outcome") is None:
                raise FuzzFailure("a stream item has neither result nor error", str(response))

    # -- the calls -------------------------------------------------------------------------

    async def call(
        self,
        family: str,
        method: Method,
        request: Message | bytes,
        *,
        admin_token: bool = False,
        expect: Code | None = None,
    ) -> Answer:
        """One call with a typed request or raw request bytes. A ClassifyStream call sends the
        request as the stream's only item (and answers that item's status)."""
        body = request if isinstance(request, bytes) else request.SerializeToString()
        if method.streaming:
            item = (await self.stream(family, [body], expect={0: expect} if expect else None))[0]
            return item_answer(item)
        metadata = self.admin_metadata if admin_token else None
        callable_ = self.channel.unary_unary(
            method.path, request_serializer=None, response_deserializer=None
        )  # bytes in, bytes out
        try:
            raw = await callable_(body, timeout=CALL_TIMEOUT_S, metadata=metadata)
        except grpc.aio.AioRpcError as error:
            details = error.details() or ""
            self._check(family, method, error.code(), details, "", expect)
            return Answer(error.code(), details)
        self._check(family, method, Code.OK, "", "", expect)
        response = method.response.FromString(raw)
        self._check_items(family, method, response)
        return Answer(Code.OK, "", response)

    async def stream(
        self,
        family: str,
        items: Sequence[Message | bytes],
        *,
        expect: dict[int, Code] | None = None,
    ) -> list[classifier_pb2.ClassifyStreamResponse]:
        """One ClassifyStream call with these items (typed or raw bytes); its answers, in order.

        The call itself must end OK with exactly one answer per item, in order, whatever the
        items were (a bad item fails alone); `expect` names the status some items must get."""
        bodies = [i if isinstance(i, bytes) else i.SerializeToString() for i in items]
        call = self.channel.stream_stream(
            CLASSIFY_STREAM.path, request_serializer=None, response_deserializer=None
        )
        answers: list[classifier_pb2.ClassifyStreamResponse] = []
        try:
            async for raw in call(iter(bodies), timeout=CALL_TIMEOUT_S):
                answer = classifier_pb2.ClassifyStreamResponse.FromString(raw)
                self._check_items(family, CLASSIFY_STREAM, answer)
                answers.append(answer)
        except grpc.aio.AioRpcError as error:
            self._check(family, CLASSIFY_STREAM, error.code(), error.details() or "", "", Code.OK)
        self._check(family, CLASSIFY_STREAM, Code.OK, "", "")
        sequences = [a.sequence for a in answers]
        if sequences != list(range(len(bodies))):
            raise FuzzFailure(
                "a stream was not answered once per item, in order",
                f"{len(bodies)} items answered {sequences}",
            )
        for index, code in (expect or {}).items():
            got = (
                Code.OK
                if answers[index].WhichOneof("outcome") == "result"
                else CODE_BY_VALUE.get(answers[index].error.code, Code.UNKNOWN)
            )
            if got != code:
                raise FuzzFailure(
                    f"a stream item answered {got.name}, expected {code.name}",
                    f"item {index}: {answers[index].error.message[:500]!r}",
                )
        return answers

    async def image(
        self, family: str, via: str, image: dict[str, Any], *, top_k: int = 0
    ) -> Answer:
        """One image through Classify, Compare (two versions: the first answer's status) or a
        stream between two good images (which must still be answered OK)."""
        if via == "Compare":
            compare = classifier_pb2.CompareRequest(
                models=[
                    classifier_pb2.ModelSelector(name=MODEL, version=1),
                    classifier_pb2.ModelSelector(name=MODEL, label="canary"),
                ],
                top_k=top_k,
                **image,
            )
            answer = await self.call(family, COMPARE, compare)
            if not isinstance(answer.response, classifier_pb2.CompareResponse):
                return answer
            first = answer.response.answers[0]
            if first.WhichOneof("outcome") == "result":
                self._check_scores(first.result, top_k)
                return Answer(Code.OK, "", first.result)
            return Answer(CODE_BY_VALUE.get(first.error.code, Code.UNKNOWN), first.error.message)
        request = classifier_pb2.ClassifyRequest(
            model=classifier_pb2.ModelSelector(name=MODEL), top_k=top_k, **image
        )
        if via == "ClassifyStream":
            good = self.good_request()
            items = await self.stream(
                family, [good, request, good], expect={0: Code.OK, 2: Code.OK}
            )
            answer = item_answer(items[1])
        else:
            answer = await self.call(family, CLASSIFY, request)
        if isinstance(answer.response, classifier_pb2.ClassifyResponse):
            self._check_scores(answer.response, top_k)
        return answer

    @staticmethod
    def _check_scores(response: classifier_pb2.ClassifyResponse, top_k: int) -> None:
        wanted = CLASSES if top_k == 0 else min(top_k, CLASSES)
        if len(response.scores) != wanted or response.model_name != MODEL:
            raise FuzzFailure("an OK answer has the wrong scores", f"top_k={top_k}: {response}")

    @staticmethod
    def good_request() -> classifier_pb2.ClassifyRequest:
        return classifier_pb2.ClassifyRequest(
            encoded=PHOTO.read_bytes(), model=classifier_pb2.ModelSelector(name=MODEL)
        )

    # -- keeps serving ---------------------------------------------------------------------

    async def probe(self) -> None:
        """A normal Classify must succeed: the gateway keeps serving."""
        request = self.good_request()
        TALLY.probes += 1
        try:
            raw = await self.channel.unary_unary(
                CLASSIFY.path, request_serializer=None, response_deserializer=None
            )(request.SerializeToString(), timeout=30)
        except grpc.aio.AioRpcError as error:
            TALLY.probe_failures += 1
            raise FuzzFailure(
                f"the gateway stopped serving: a normal Classify answered {error.code().name}",
                str(error.details()),
            ) from error
        answer = classifier_pb2.ClassifyResponse.FromString(raw)
        if len(answer.scores) != CLASSES or answer.model_name != MODEL:
            TALLY.probe_failures += 1
            raise FuzzFailure("a normal Classify answered OK with the wrong content", str(answer))
        self._since_probe = 0

    async def case_done(self) -> None:
        """Called at the end of each example: probes every PROBE_EVERY cases."""
        self._since_probe += 1
        if self._since_probe >= PROBE_EVERY:
            await self.probe()
