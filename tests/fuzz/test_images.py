"""Fuzz family "images": encoded images through Classify, Compare and ClassifyStream.

Mutations of the real odd-image corpus, images Pillow wrote in every format and mode it can
(possibly corrupted afterwards), PNGs built chunk by chunk with valid CRCs, and arbitrary bytes
bare or behind a magic number. Each gets an allowed status, never INTERNAL or UNKNOWN; in a
stream the good images around it are still answered; the gateway keeps serving.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.profiles import fuzz
from tests.fuzz.stats import TALLY
from tests.fuzz.strategies import (
    CORPUS,
    arbitrary_images,
    corpus_mutations,
    pillow_images,
    structured_pngs,
)
from tests.fuzz.target import FuzzTarget

FAMILY = "images"
VIA = st.sampled_from(("Classify", "Classify", "Compare", "ClassifyStream"))
TOP_K = st.sampled_from((0, 1, 3, 10, 11))


async def send(target: FuzzTarget, data: bytes, via: str, top_k: int) -> None:
    TALLY.case(FAMILY)
    await target.image(FAMILY, via, {"encoded": data}, top_k=top_k)
    await target.case_done()


@pytest.mark.skipif(not CORPUS, reason="the odd-image corpus (shared/testdata) is not there")
@fuzz(ci=16, long=1500)
@given(image=corpus_mutations(), via=VIA, top_k=TOP_K)
async def test_a_mutated_real_image_gets_an_allowed_status(
    target: FuzzTarget, image: tuple[str, bytes], via: str, top_k: int
) -> None:
    await send(target, image[1], via, top_k)


@fuzz(ci=16, long=1200)
@given(image=pillow_images(), via=VIA, top_k=TOP_K)
async def test_an_image_pillow_wrote_gets_an_allowed_status(
    target: FuzzTarget, image: tuple[str, bytes], via: str, top_k: int
) -> None:
    await send(target, image[1], via, top_k)


@fuzz(ci=8, long=600)
@given(image=structured_pngs(), via=VIA, top_k=TOP_K)
async def test_a_png_built_chunk_by_chunk_gets_an_allowed_status(
    target: FuzzTarget, image: tuple[str, bytes], via: str, top_k: int
) -> None:
    await send(target, image[1], via, top_k)


@fuzz(ci=8, long=600)
@given(image=arbitrary_images(), via=VIA, top_k=TOP_K)
async def test_arbitrary_bytes_as_an_image_get_an_allowed_status(
    target: FuzzTarget, image: tuple[str, bytes], via: str, top_k: int
) -> None:
    await send(target, image[1], via, top_k)
