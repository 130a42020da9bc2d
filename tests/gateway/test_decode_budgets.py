"""Costly images through the real gateway: every decode has a time and a memory budget, the
limits hold for embedded images before any pixel is allocated, no lock is shared between
requests, and decode concurrency follows the memory budget.

The costly images are made on the spot by `bench.costly_images` (small files, large costs).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import psutil
import pytest
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import classifier_pb2_grpc

from bench.costly_images import empty_chunk_png, ico_with_large_png, scan_bomb, zero_png
from server.gateway.decode_pool import DecodeBudget
from server.gateway.server import Gateway, create_server
from tests.gateway.conftest import gateway_settings

PHOTO = Path(__file__).resolve().parents[3] / "shared/testdata/images/odd/jpeg_baseline_rgb.jpg"
# About 15 s of decoding at 2048x2048 if nothing stops it.
CPU_BOMB = scan_bomb(2048, 2048, scans=20_000)


async def start(backend_port: int, models_config: Path, **overrides: object) -> Gateway:
    values: dict[str, object] = {
        "decode_memory_budget_mb": 4 * 512,
        "decode_worker_memory_mb": 512,
        "decode_time_budget_s": 1.0,
        "decode_slow_after_s": 0.2,
        "decode_slow_lanes": 1,
    }
    values.update(overrides)
    return await create_server(gateway_settings(backend_port, models_config, **values))


@pytest.fixture
async def gateway(backend_port: int, models_config: Path) -> AsyncIterator[Gateway]:
    running = await start(backend_port, models_config)
    yield running
    await running.stop(0)


def classify(data: bytes) -> pb.ClassifyRequest:
    return pb.ClassifyRequest(model=pb.ModelSelector(name="cnn"), encoded=data)


async def call(
    gateway: Gateway, data: bytes, timeout: float = 30.0
) -> tuple[grpc.StatusCode, str, float]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = classifier_pb2_grpc.ClassifierStub(channel)
        started = time.monotonic()
        try:
            await stub.Classify(classify(data), timeout=timeout)
        except grpc.aio.AioRpcError as error:
            return error.code(), error.details() or "", time.monotonic() - started
        return grpc.StatusCode.OK, "", time.monotonic() - started


def stopped(gateway: Gateway, reason: str) -> float:
    value = gateway.metrics.registry.get_sample_value(
        "imgclf_gateway_decode_stopped_total", {"reason": reason}
    )
    return value or 0.0


def decode_processes(gateway: Gateway) -> list[psutil.Process]:
    """The decode workers: children of the gateway's fork server."""
    servers = [
        child
        for child in psutil.Process().children()
        if "server.gateway.decode_worker" in " ".join(child.cmdline())
    ]
    pids = {worker.pid for worker in gateway.decoder._workers}
    return [p for server in servers for p in server.children() if p.pid in pids]


async def test_a_cpu_bomb_is_stopped_at_its_time_budget_and_its_process_replaced(
    gateway: Gateway,
) -> None:
    before = {p.pid for p in decode_processes(gateway)}
    code, details, _seconds = await call(gateway, CPU_BOMB)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "longer than its budget of 1 s" in details
    assert stopped(gateway, "time_budget") == 1
    await asyncio.sleep(0.2)
    after = decode_processes(gateway)
    assert len(after) == 4  # the killed one was replaced
    assert len(before - {p.pid for p in after}) == 1
    assert (await call(gateway, PHOTO.read_bytes()))[0] == grpc.StatusCode.OK


async def test_decoding_stops_when_the_callers_deadline_passes(gateway: Gateway) -> None:
    code, _details, _ = await call(gateway, CPU_BOMB, timeout=0.5)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.sleep(0.3)  # the server notices the deadline on its own clock
    assert stopped(gateway, "deadline") + stopped(gateway, "cancelled") == 1
    assert all(p.cpu_percent(0.2) < 50 for p in decode_processes(gateway))


async def test_a_cancelled_call_frees_its_decoder(gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = classifier_pb2_grpc.ClassifierStub(channel)
        pending = stub.Classify(classify(CPU_BOMB), timeout=30)
        await asyncio.sleep(0.1)
        pending.cancel()
    await asyncio.sleep(0.5)
    assert stopped(gateway, "cancelled") == 1


async def test_a_slow_image_does_not_hold_up_others(gateway: Gateway) -> None:
    slow = asyncio.ensure_future(call(gateway, empty_chunk_png(1_500_000)))
    await asyncio.sleep(0.1)
    code, _, _ = await call(gateway, PHOTO.read_bytes())
    assert code == grpc.StatusCode.OK
    assert not slow.done()  # answered while the slow one was still decoding
    assert (await slow)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_costly_images_take_at_most_the_slow_lanes(
    backend_port: int, models_config: Path
) -> None:
    # Time enough for three bombs sharing the cores to each use 0.2 s of CPU on a busy machine.
    running = await start(backend_port, models_config, decode_time_budget_s=4.0)
    try:
        results = await asyncio.gather(*(call(running, CPU_BOMB) for _ in range(3)))
    finally:
        await running.stop(0)
    messages = sorted(details for code, details, _ in results)
    assert all(code == grpc.StatusCode.RESOURCE_EXHAUSTED for code, _, _ in results)
    assert sum("busy with other costly images" in m for m in messages) == 2
    assert sum("longer than its budget" in m for m in messages) == 1
    assert stopped(running, "slow_lanes_full") == 2


async def test_an_image_over_the_memory_budget_fails_alone(
    backend_port: int, models_config: Path
) -> None:
    big = zero_png(5000, 5000)  # 100 MB decoded (RGBA), then flattened onto an RGB copy
    small = await start(
        backend_port,
        models_config,
        decode_worker_memory_mb=250,
        decode_memory_budget_mb=1000,
        decode_time_budget_s=20,
        decode_slow_after_s=20,
    )
    roomy = await start(
        backend_port,
        models_config,
        decode_worker_memory_mb=1024,
        decode_memory_budget_mb=2048,
        decode_time_budget_s=20,
        decode_slow_after_s=20,
    )
    try:
        code, details, _ = await call(small, big)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "more memory than this server allows for one image" in details
        assert (await call(small, PHOTO.read_bytes()))[0] == grpc.StatusCode.OK
        assert (await call(roomy, big))[0] == grpc.StatusCode.OK  # the same image, more budget
    finally:
        await small.stop(0)
        await roomy.stop(0)


async def test_an_icos_embedded_png_is_checked_before_it_is_decoded(gateway: Gateway) -> None:
    # 13,000 x 13,000 RGBA would need 676 MB; the 512 MiB decoder would run out of memory if
    # Pillow were let to decode it, so the pixel-limit answer proves it never was.
    code, details, _ = await call(gateway, ico_with_large_png(13_000, header_only=True))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "13000x13000 = 169,000,000 pixels" in details


async def test_the_decoded_byte_limit_applies_before_decoding(
    backend_port: int, models_config: Path
) -> None:
    running = await start(
        backend_port, models_config, max_decoded_image_bytes=32 * 2**20, decode_time_budget_s=20
    )
    try:
        code, details, _ = await call(running, zero_png(4000, 4000))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "decodes to 64,000,000 bytes" in details
        code, _, _ = await call(running, zero_png(4000, 4000, rgba=False))  # 16 MB in mode L
        assert code == grpc.StatusCode.OK
    finally:
        await running.stop(0)


async def test_decode_concurrency_follows_the_memory_budget(
    backend_port: int, models_config: Path
) -> None:
    running = await start(
        backend_port, models_config, decode_memory_budget_mb=3 * 400, decode_worker_memory_mb=400
    )
    try:
        assert len(decode_processes(running)) == 3
        assert running.decoder.budget.fast_lanes == 2
    finally:
        await running.stop(0)
    with pytest.raises(ValueError, match="at least 2 are needed"):
        DecodeBudget(
            worker_memory_bytes=1024 * 2**20, memory_budget_bytes=1024 * 2**20, slow_lanes=1
        )


async def test_a_decoder_that_dies_is_answered_and_replaced(gateway: Gateway) -> None:
    pending = asyncio.ensure_future(call(gateway, CPU_BOMB))
    await asyncio.sleep(0.1)
    busy = max(decode_processes(gateway), key=lambda p: p.cpu_percent(0.05))
    busy.kill()
    code, details, _ = await pending
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "the decoder stopped on this image" in details
    await asyncio.sleep(0.2)
    assert len(decode_processes(gateway)) == 4
    assert (await call(gateway, PHOTO.read_bytes()))[0] == grpc.StatusCode.OK
