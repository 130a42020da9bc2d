"""The throughput path: `ClassifyStream` works on many requests of one call at once.

Each request becomes a task as soon as it arrives (so the micro-batcher can put many of them in
one backend call); at most `max_in_flight` are open per stream, which is the stream's
back-pressure. Answers leave in request order. A failed image answers with its own error and the
stream goes on; only a broken stream (cancelled, deadline) ends the call.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from imgclf.v1 import classifier_pb2 as pb

from server.gateway.errors import DeadlineExceeded, GatewayError
from server.gateway.interceptor import INTERNAL_MESSAGE, MAX_REQUEST_ID_LENGTH, status_for
from server.gateway.wire import MalformedMessage

log = logging.getLogger(__name__)
ClassifyOne = Callable[[pb.ClassifyRequest], Awaitable[pb.ClassifyResponse]]
DEFAULT_MAX_IN_FLIGHT = 64


async def _outcome(
    sequence: int, request: pb.ClassifyRequest, classify: ClassifyOne
) -> pb.ClassifyStreamResponse:
    answer = pb.ClassifyStreamResponse(sequence=sequence, request_id=request.request_id)
    try:
        answer.result.CopyFrom(await classify(request))
    except GatewayError as error:
        answer.error.code = status_for(error).value[0]
        answer.error.message = error.message
    except Exception:
        log.exception("stream item failed", extra={"request_id": request.request_id})
        answer.error.code = grpc.StatusCode.INTERNAL.value[0]
        answer.error.message = INTERNAL_MESSAGE
    return answer


async def _malformed(sequence: int, request: MalformedMessage) -> pb.ClassifyStreamResponse:
    answer = pb.ClassifyStreamResponse(sequence=sequence, request_id=uuid.uuid4().hex)
    answer.error.code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    answer.error.message = request.message
    return answer


async def classify_stream(
    requests: AsyncIterator[pb.ClassifyRequest | MalformedMessage],
    classify: ClassifyOne,
    *,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    idle_timeout_s: float = 0.0,
) -> AsyncIterator[pb.ClassifyStreamResponse]:
    """Answers, in order, for the requests of one stream.

    At most `max_in_flight` requests are read ahead of the answers the caller has taken
    (backpressure). With `idle_timeout_s` > 0, a stream that sends no request for that long
    while it has no answer pending ends with DEADLINE_EXCEEDED.
    """
    queue: asyncio.Queue[asyncio.Task[pb.ClassifyStreamResponse]] = asyncio.Queue(
        maxsize=max_in_flight
    )
    loop = asyncio.get_running_loop()
    pending = 0  # requests read whose answer the caller has not been handed yet
    last_activity = loop.time()

    async def next_request(
        iterator: AsyncIterator[pb.ClassifyRequest | MalformedMessage],
    ) -> pb.ClassifyRequest | MalformedMessage:
        if idle_timeout_s <= 0:
            return await anext(iterator)
        waiting = asyncio.ensure_future(anext(iterator))
        try:
            while not waiting.done():
                quiet_for = loop.time() - last_activity
                if pending == 0 and quiet_for >= idle_timeout_s:
                    raise DeadlineExceeded(
                        f"the stream sent no request for {idle_timeout_s:g} s with no answer "
                        "pending, so it was closed; open a new stream when there is work"
                    )
                await asyncio.wait({waiting}, timeout=max(0.01, idle_timeout_s - quiet_for))
            return await waiting
        finally:
            waiting.cancel()

    async def read() -> None:
        nonlocal pending, last_activity
        sequence = 0
        iterator = aiter(requests)
        while True:
            try:
                request = await next_request(iterator)
            except StopAsyncIteration:
                return
            pending += 1
            last_activity = loop.time()
            if isinstance(request, MalformedMessage):
                outcome = _malformed(sequence, request)
            else:
                request.request_id = request.request_id[:MAX_REQUEST_ID_LENGTH] or uuid.uuid4().hex
                outcome = _outcome(sequence, request, classify)
            await queue.put(asyncio.ensure_future(outcome))
            sequence += 1

    reader = asyncio.ensure_future(read())
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                answer = await getter.result()
                pending -= 1
                last_activity = loop.time()
                yield answer
                continue
            getter.cancel()
            while not queue.empty():  # the requests have ended: answer what is left
                yield await queue.get_nowait()
            reader.result()  # surfaces an error from reading the requests
            return
    finally:
        reader.cancel()
        while not queue.empty():
            queue.get_nowait().cancel()
