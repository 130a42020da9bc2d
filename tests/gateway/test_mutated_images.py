"""Corrupted copies of the real odd-image corpus (seeded byte flips, truncations, zeroed and
repeated runs): every one decodes or gets InvalidImage / LimitExceeded, whatever the codec
raised inside, and through the real gateway the codecs' own failures are INVALID_ARGUMENT."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

from server.gateway.errors import InvalidImage, LimitExceeded
from server.gateway.image_limits import ImageLimits
from server.gateway.preprocess import _DECODE_ERRORS, decode_image

ODD = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "images" / "odd"
MUTATIONS_PER_FILE = 100
MAX_SOURCE_BYTES = 200_000
pytestmark = pytest.mark.skipif(not ODD.is_dir(), reason=f"odd-image corpus not found at {ODD}")


def mutated(data: bytes, rng: random.Random) -> bytes:
    """One corrupted copy of `data`."""
    out = bytearray(data)
    how = rng.choice(("flip", "truncate", "zero", "repeat"))
    if how == "flip":
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] = rng.randrange(256)
    elif how == "truncate":
        del out[rng.randrange(1, len(out)) :]
    elif how == "zero":
        start = rng.randrange(len(out))
        end = min(len(out), start + rng.randint(1, 64))
        out[start:end] = bytes(end - start)
    else:
        start = rng.randrange(len(out))
        out[start:start] = out[start : start + rng.randint(1, 64)]
    return bytes(out)


def corpus_mutations() -> Iterator[tuple[str, bytes]]:
    rng = random.Random(20261202)
    for source in sorted(ODD.iterdir()):
        data = source.read_bytes()
        if 0 < len(data) <= MAX_SOURCE_BYTES:
            for _ in range(MUTATIONS_PER_FILE):
                yield source.name, mutated(data, rng)


def codec_failures() -> list[tuple[str, bytes]]:
    """The mutations a codec rejected with an exception of its own (not Pillow's usual ones)."""
    found = []
    for name, data in corpus_mutations():
        try:
            decode_image(data, ImageLimits(), (32, 32))
        except InvalidImage as error:
            if not isinstance(error.__cause__, _DECODE_ERRORS):
                found.append((name, data))
        except LimitExceeded:
            pass
    return found


def test_every_corrupted_copy_decodes_or_gets_a_clear_rejection() -> None:
    outcomes = {"decoded": 0, "invalid": 0, "limit": 0}
    for name, data in corpus_mutations():
        try:
            decode_image(data, ImageLimits(), (32, 32))
            outcomes["decoded"] += 1
        except InvalidImage as error:
            assert error.message, name
            outcomes["invalid"] += 1
        except LimitExceeded:
            outcomes["limit"] += 1
    assert outcomes["invalid"] > 0 and outcomes["decoded"] > 0, outcomes


async def test_a_codecs_own_failure_is_invalid_argument_through_the_gateway(
    stub: classifier_pb2_grpc.ClassifierStub,
) -> None:
    failures = codec_failures()
    # libavif raises RuntimeError on some of these; if no codec does any more, this test has
    # nothing to check and must say so rather than pass.
    assert failures, "no mutation made a codec raise its own exception"
    for name, data in failures[:5]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Classify(
                pb.ClassifyRequest(encoded=data, model=pb.ModelSelector(name="cnn")), timeout=30
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, caught.value)
        assert "could not decode the image" in caught.value.details()
    answer = await stub.Classify(
        pb.ClassifyRequest(
            encoded=(ODD / "jpeg_baseline_rgb.jpg").read_bytes(),
            model=pb.ModelSelector(name="cnn"),
        ),
        timeout=30,
    )
    assert len(answer.scores) == 10
