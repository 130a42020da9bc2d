"""The rollout path end to end: with traffic flowing, publish version N+1, wait for it to load,
move the canary label to it, and see canary and version N+1 reach it, with no failed request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc
from tensorflow_serving.apis import get_model_status_pb2, model_pb2, model_service_pb2_grpc

from server.gateway.models_config import parse_models_config
from server.gateway.server import create_server
from server.labels import set_label
from tests.gateway.conftest import gateway_settings, start_model_host
from tests.model_factory import publish_tiny, write_models_config

HOPPER = Path(__file__).resolve().parents[3] / "shared/testdata/images/odd/jpeg_baseline_rgb.jpg"
WAIT_S = 60.0


async def wait_available(backend_port: int, version: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{backend_port}") as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            status = await stub.GetModelStatus(
                get_model_status_pb2.GetModelStatusRequest(
                    model_spec=model_pb2.ModelSpec(name="cnn")
                )
            )
            if any(
                v.version == version
                and v.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
                for v in status.model_version_status
            ):
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"version {version} never became AVAILABLE")


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_publish_then_move_canary_without_a_failed_request(tmp_path: Path) -> None:
    root = tmp_path / "models"
    publish_tiny(root, seed=0)
    config = write_models_config(
        tmp_path / "models.config", root, labels={"stable": 1, "canary": 1}
    )
    host, backend_port = start_model_host(config)
    gateway = await create_server(gateway_settings(backend_port, config))
    image = HOPPER.read_bytes()
    served: dict[str, set[int]] = {"stable": set(), "canary": set()}
    failures: list[str] = []
    completed: list[int] = []
    stop = asyncio.Event()

    async def traffic(stub: classifier_pb2_grpc.ClassifierStub, label: str) -> None:
        while not stop.is_set():
            try:
                response = await stub.Classify(
                    pb.ClassifyRequest(
                        encoded=image, model=pb.ModelSelector(name="cnn", label=label)
                    ),
                    timeout=10,
                )
                served[label].add(response.model_version)
                completed.append(response.model_version)
            except grpc.aio.AioRpcError as error:
                failures.append(f"{label}: {error.code().name} {error.details()}")

    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = classifier_pb2_grpc.ClassifierStub(channel)
            workers = [
                asyncio.create_task(traffic(stub, label)) for label in served for _ in range(2)
            ]

            await wait_for(lambda: len(completed) >= 20, "traffic before publishing")
            assert await asyncio.to_thread(publish_tiny, root, "cnn", 1) == 2
            await wait_available(backend_port, 2)
            await asyncio.to_thread(
                set_label, config, f"127.0.0.1:{backend_port}", "cnn", "canary", 2
            )

            await wait_for(lambda: 2 in served["canary"], "canary reaching version 2")
            during = len(completed)
            await wait_for(lambda: len(completed) >= during + 20, "traffic after the move")
            pinned = await stub.Classify(
                pb.ClassifyRequest(encoded=image, model=pb.ModelSelector(name="cnn", version=2))
            )
            stop.set()
            await asyncio.gather(*workers)
    finally:
        await gateway.stop(0)
        host.stop(None)

    assert failures == []
    assert len(completed) >= 40
    assert 2 in served["canary"]
    assert served["stable"] == {1}
    assert pinned.model_version == 2
    (model,) = parse_models_config(config.read_text())
    assert model.labels == {"canary": 2, "stable": 1}


async def test_latest_follows_a_new_version_when_the_old_one_unloads(tmp_path: Path) -> None:
    # With the default policy (latest, one version) publishing version 2 unloads version 1.
    # A long resolution TTL keeps "latest -> 1" cached after the unload, so the gateway must
    # notice the NOT_FOUND and resolve again instead of failing calls.
    root = tmp_path / "models"
    publish_tiny(root, seed=0)
    config = write_models_config(
        tmp_path / "models.config", root, policy="latest { num_versions: 1 }"
    )
    host, backend_port = start_model_host(config)
    gateway = await create_server(
        gateway_settings(backend_port, config, version_cache_ttl_s=3600.0)
    )
    image = HOPPER.read_bytes()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = classifier_pb2_grpc.ClassifierStub(channel)
            latest = pb.ClassifyRequest(encoded=image, model=pb.ModelSelector(name="cnn"))
            assert (await stub.Classify(latest)).model_version == 1
            info = await stub.GetModel(pb.GetModelRequest(model=pb.ModelSelector(name="cnn")))
            assert info.version == 1

            await asyncio.to_thread(publish_tiny, root, "cnn", 1)
            await wait_available(backend_port, 2)
            await wait_unloaded(backend_port, 1)

            assert (await stub.Classify(latest)).model_version == 2
            info = await stub.GetModel(pb.GetModelRequest(model=pb.ModelSelector(name="cnn")))
            assert info.version == 2
    finally:
        await gateway.stop(0)
        host.stop(None)


async def wait_unloaded(backend_port: int, version: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{backend_port}") as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = get_model_status_pb2.GetModelStatusRequest(
            model_spec=model_pb2.ModelSpec(name="cnn")
        )

        async def ended() -> bool:
            status = await stub.GetModelStatus(request)
            return any(
                v.version == version and v.state == get_model_status_pb2.ModelVersionStatus.END
                for v in status.model_version_status
            )

        deadline = time.monotonic() + WAIT_S
        while not await ended():
            if time.monotonic() > deadline:
                raise AssertionError(f"version {version} was never unloaded")
            await asyncio.sleep(0.05)
