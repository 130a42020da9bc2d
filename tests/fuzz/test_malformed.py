"""Fuzz family "malformed messages": request bytes that are not the message the method takes.

Arbitrary bytes and wire-format noise (well-formed tags of any field number and wire type with
any payload) as the serialized request of every method of the Classifier, Experiments and
Admin services; valid requests with bytes flipped, truncated, inserted or deleted; valid requests
whose strings are not UTF-8 (INVALID_ARGUMENT, always); and streams mixing all of these with
good requests (the good ones are still classified, every item is answered).
"""

from __future__ import annotations

import grpc
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.profiles import fuzz
from tests.fuzz.stats import TALLY
from tests.fuzz.strategies import (
    Spliced,
    invalid_utf8_messages,
    mutated,
    valid_messages,
    wire_messages,
)
from tests.fuzz.target import ALL_METHODS, CLASSIFIER_METHODS, FuzzTarget, Method

FAMILY = "malformed messages"
BY_NAME = {method.name: method for method in CLASSIFIER_METHODS}
NOISE = st.one_of(st.binary(max_size=2048), wire_messages())


@fuzz(ci=20, long=2000)
@given(method=st.sampled_from(ALL_METHODS), body=NOISE, admin_token=st.booleans())
async def test_noise_sent_to_any_method_gets_an_allowed_status(
    target: FuzzTarget, method: Method, body: bytes, admin_token: bool
) -> None:
    TALLY.case(FAMILY)
    await target.call(FAMILY, method, body, admin_token=admin_token)
    await target.case_done()


@fuzz(ci=14, long=1200)
@given(data=st.data(), message=valid_messages(), as_stream_item=st.booleans())
async def test_a_corrupted_valid_request_gets_an_allowed_status(
    target: FuzzTarget, data: st.DataObject, message: tuple[str, bytes], as_stream_item: bool
) -> None:
    TALLY.case(FAMILY)
    name, body = message
    corrupted = data.draw(mutated(body, max_ops=3), label="corrupted")
    method = BY_NAME[name]
    if as_stream_item and name == "Classify":
        method = BY_NAME["ClassifyStream"]
    await target.call(FAMILY, method, corrupted)
    await target.case_done()


@fuzz(ci=8, long=300)
@given(message=invalid_utf8_messages(), as_stream_item=st.booleans())
async def test_a_string_that_is_not_utf8_is_invalid_argument(
    target: FuzzTarget, message: Spliced, as_stream_item: bool
) -> None:
    TALLY.case(FAMILY)
    method = BY_NAME[message.method]
    if as_stream_item and message.method == "Classify":
        method = BY_NAME["ClassifyStream"]
    await target.call(FAMILY, method, message.body, expect=grpc.StatusCode.INVALID_ARGUMENT)
    await target.case_done()


@fuzz(ci=8, long=300)
@given(items=st.lists(st.one_of(NOISE, st.just(b"good")), min_size=1, max_size=6))
async def test_a_stream_of_noise_and_good_requests_answers_every_item(
    target: FuzzTarget, items: list[bytes]
) -> None:
    TALLY.case(FAMILY)
    good = target.good_request().SerializeToString()
    bodies = [good if item == b"good" else item for item in items]
    expect = {n: grpc.StatusCode.OK for n, item in enumerate(items) if item == b"good"}
    await target.stream(FAMILY, bodies, expect=expect)
    await target.case_done()
