"""Fuzz family "raw pixels": RawImage with any height, width, channels and pixel byte length,
matching the declared size or not, up to sizes far over every limit.

Each gets an allowed status, never INTERNAL or UNKNOWN; and a RawImage that is valid (1, 3 or 4
channels, non-zero sides, exactly height x width x channels bytes, within the pixel limit) is
classified.
"""

from __future__ import annotations

import grpc
from hypothesis import given
from hypothesis import strategies as st
from imgclf.v1 import classifier_pb2 as pb

from tests.fuzz.profiles import fuzz
from tests.fuzz.stats import TALLY
from tests.fuzz.strategies import raw_images
from tests.fuzz.target import FuzzFailure, FuzzTarget

FAMILY = "raw pixels"
MAX_PIXELS = 64_000_000


def is_valid(raw: pb.RawImage) -> bool:
    return (
        raw.channels in (1, 3, 4)
        and raw.height > 0
        and raw.width > 0
        and raw.height * raw.width <= MAX_PIXELS
        and len(raw.pixels) == raw.height * raw.width * raw.channels
    )


@fuzz(ci=24, long=2500)
@given(
    raw=raw_images(),
    via=st.sampled_from(("Classify", "Compare", "ClassifyStream")),
    top_k=st.sampled_from((0, 1, 5)),
)
async def test_raw_pixels_get_an_allowed_status_and_valid_ones_are_classified(
    target: FuzzTarget, raw: pb.RawImage, via: str, top_k: int
) -> None:
    TALLY.case(FAMILY)
    answer = await target.image(FAMILY, via, {"raw": raw}, top_k=top_k)
    if is_valid(raw) and answer.code != grpc.StatusCode.OK:
        raise FuzzFailure(
            f"a valid RawImage answered {answer.code.name}",
            f"{raw.height}x{raw.width}x{raw.channels} via {via}: {answer.details[:300]!r}",
        )
    await target.case_done()
