"""A Node client built from protos/ alone classifies through the real gateway (issue 4).

Runs tests/interop/node/classify.mjs as a subprocess against the session's real gateway and model
host, and checks its answers against the Python stub's answers to the same requests. The
subprocesses run with asyncio so the gateway, which shares the test's event loop, keeps serving.
Skipped when `node` is not on PATH or the npm dependencies are not installed (`make setup`).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import grpc
import pytest
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

from server.gateway.server import Gateway

NODE_DIR = Path(__file__).resolve().parent / "node"
CLASSIFY_SCRIPT = NODE_DIR / "classify.mjs"
IMAGES = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "images" / "odd"
IMAGE = IMAGES / "jpeg_baseline_rgb.jpg"
CLIENT_TIMEOUT_S = 60.0
NODE = shutil.which("node")


def skip_reason() -> str | None:
    if NODE is None:
        return "`node` is not on PATH; the Node interop client needs Node.js 18.3 or later"
    if not (NODE_DIR / "node_modules").is_dir():
        return f"{NODE_DIR / 'node_modules'} is missing; run `make setup` (npm ci)"
    return None


pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


async def run_node_client(*args: str) -> tuple[int, dict[str, Any]]:
    """Runs classify.mjs with `args`; returns its exit code and the one JSON line it printed."""
    assert NODE is not None
    process = await asyncio.create_subprocess_exec(
        NODE,
        str(CLASSIFY_SCRIPT),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), CLIENT_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    lines = stdout.decode().splitlines()
    assert len(lines) == 1, f"stdout={stdout!r} stderr={stderr!r}"
    assert process.returncode is not None
    return process.returncode, json.loads(lines[0])


def target(gateway: Gateway) -> str:
    return f"127.0.0.1:{gateway.port}"


async def classify_in_python(
    stub: classifier_pb2_grpc.ClassifierStub, top_k: int = 0, **selector: object
) -> pb.ClassifyResponse:
    request = pb.ClassifyRequest(
        encoded=IMAGE.read_bytes(),
        model=pb.ModelSelector(name="cnn", **selector),  # type: ignore[arg-type]
        top_k=top_k,
    )
    return await stub.Classify(request)


@pytest.mark.parametrize(
    ("selector_args", "selector", "expected_version"),
    [
        (["--label", "stable"], {"label": "stable"}, 1),
        (["--label", "canary"], {"label": "canary"}, 2),
        (["--version", "1"], {"version": 1}, 1),
        ([], {}, 2),
    ],
)
async def test_node_client_classifies_like_the_python_stub(
    gateway: Gateway,
    stub: classifier_pb2_grpc.ClassifierStub,
    selector_args: list[str],
    selector: dict[str, object],
    expected_version: int,
) -> None:
    exit_code, result = await run_node_client(
        "--target", target(gateway), "--model", "cnn", *selector_args, str(IMAGE)
    )
    assert exit_code == 0, result
    assert result["model"] == "cnn"
    assert result["version"] == str(expected_version)  # int64 as an exact decimal string
    scores = result["scores"]
    assert len(scores) == 10
    assert sum(score["probability"] for score in scores) == pytest.approx(1.0, abs=1e-5)

    expected = await classify_in_python(stub, **selector)
    assert expected.model_version == expected_version
    assert scores[0]["index"] == expected.scores[0].index
    assert [(s["index"], s["name"]) for s in scores] == [(s.index, s.name) for s in expected.scores]
    assert [s["probability"] for s in scores] == pytest.approx(
        [s.probability for s in expected.scores], abs=1e-6
    )


async def test_node_client_top_k(
    gateway: Gateway, stub: classifier_pb2_grpc.ClassifierStub
) -> None:
    exit_code, result = await run_node_client(
        "--target", target(gateway), "--model", "cnn", "--top-k", "3", str(IMAGE)
    )
    assert exit_code == 0, result
    expected = await classify_in_python(stub, top_k=3)
    assert [s["index"] for s in result["scores"]] == [s.index for s in expected.scores]


@pytest.mark.parametrize(
    ("model", "selector_args", "selector", "fragment"),
    [
        ("nope", [], {}, "unknown model 'nope'"),
        ("cnn", ["--label", "beta"], {"label": "beta"}, "no label 'beta'"),
    ],
)
async def test_node_client_reports_not_found_with_the_gateways_details(
    gateway: Gateway,
    stub: classifier_pb2_grpc.ClassifierStub,
    model: str,
    selector_args: list[str],
    selector: dict[str, object],
    fragment: str,
) -> None:
    exit_code, result = await run_node_client(
        "--target", target(gateway), "--model", model, *selector_args, str(IMAGE)
    )
    assert exit_code == 1, result
    error = result["error"]
    assert (error["code"], error["codeName"]) == (grpc.StatusCode.NOT_FOUND.value[0], "NOT_FOUND")
    assert fragment in error["details"]

    request = pb.ClassifyRequest(
        encoded=IMAGE.read_bytes(),
        model=pb.ModelSelector(name=model, **selector),  # type: ignore[arg-type]
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Classify(request)
    assert error["details"] == caught.value.details()


async def test_node_client_reports_an_unreachable_gateway() -> None:
    exit_code, result = await run_node_client(
        "--target", "127.0.0.1:1", "--deadline-ms", "2000", "--model", "cnn", str(IMAGE)
    )
    assert exit_code == 1, result
    assert result["error"]["code"] in (
        grpc.StatusCode.UNAVAILABLE.value[0],
        grpc.StatusCode.DEADLINE_EXCEEDED.value[0],
    )


async def test_node_client_lists_models(gateway: Gateway) -> None:
    exit_code, result = await run_node_client("list-models", "--target", target(gateway))
    assert exit_code == 0, result
    models = {model["name"]: model for model in result["models"]}
    assert set(models) == {"cnn"}
    cnn = models["cnn"]
    assert cnn["labels"] == {"stable": "1", "canary": "2"}
    assert {v["version"]: (v["state"], v["labels"]) for v in cnn["versions"]} == {
        "1": ("VERSION_STATE_AVAILABLE", ["stable"]),
        "2": ("VERSION_STATE_AVAILABLE", ["canary"]),
    }


def test_node_client_uses_the_repositorys_protos_only() -> None:
    """No generated code or copied .proto beside the client: it must read protos/ at run time."""
    own_files = [
        path
        for path in NODE_DIR.rglob("*")
        if "node_modules" not in path.relative_to(NODE_DIR).parts and path.is_file()
    ]
    assert not [path for path in own_files if path.suffix == ".proto" or "_pb" in path.name]
    assert "../../../protos/" in CLASSIFY_SCRIPT.read_text()
