"""Every file of the shared odd-image corpus through the real gateway: a prediction or a clear
rejection, as MANIFEST.tsv says, and the gateway keeps serving afterwards."""

from __future__ import annotations

import csv
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "images"
REJECTIONS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}


def manifest_rows() -> list[tuple[str, str]]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    with manifest.open(newline="") as handle:
        return [
            (row["relative_path"], row["expected"])
            for row in csv.DictReader(handle, delimiter="\t")
        ]


ROWS = manifest_rows()
pytestmark = pytest.mark.skipif(not ROWS, reason=f"odd-image corpus not found at {CORPUS}")


@pytest.mark.parametrize(("relative_path", "expected"), ROWS, ids=[r[0] for r in ROWS])
async def test_corpus_file(
    stub: classifier_pb2_grpc.ClassifierStub, relative_path: str, expected: str
) -> None:
    call = stub.Classify(
        pb.ClassifyRequest(
            encoded=(CORPUS / relative_path).read_bytes(), model=pb.ModelSelector(name="cnn")
        ),
        timeout=30,
    )
    if expected.startswith("decodes"):
        response = await call
        assert len(response.scores) == 10
        assert sum(s.probability for s in response.scores) == pytest.approx(1.0, abs=1e-5)
        return
    assert expected.startswith("must be rejected"), expected
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() in REJECTIONS, caught.value.details()
    assert caught.value.details(), "a rejection must say why"
    if "decompression bomb" in expected:
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_still_serving_after_the_corpus(
    stub: classifier_pb2_grpc.ClassifierStub, channel: grpc.aio.Channel
) -> None:
    for relative_path, _ in ROWS:
        try:
            await stub.Classify(
                pb.ClassifyRequest(
                    encoded=(CORPUS / relative_path).read_bytes(),
                    model=pb.ModelSelector(name="cnn"),
                ),
                timeout=30,
            )
        except grpc.aio.AioRpcError as error:
            assert error.code() in REJECTIONS, (relative_path, error.details())
    health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    ok = await stub.Classify(
        pb.ClassifyRequest(
            encoded=(CORPUS / "odd" / "png_rgba_8bit.png").read_bytes(),
            model=pb.ModelSelector(name="cnn"),
        )
    )
    assert len(ok.scores) == 10
