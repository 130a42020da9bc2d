"""The typed client against the real gateway (the client's own tests use a scripted server)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from imgclf_client import AsyncClient, Client, InvalidArgument, NotFound

from server.gateway.server import Gateway

ODD = Path(__file__).resolve().parents[3] / "shared/testdata/images/odd"


async def test_async_client_end_to_end(gateway: Gateway) -> None:
    async with AsyncClient(f"127.0.0.1:{gateway.port}") as client:
        result = await client.classify(ODD / "jpeg_baseline_rgb.jpg", model="cnn", label="canary")
        assert (result.model, result.version, len(result.scores)) == ("cnn", 2, 5)
        pixels = np.zeros((40, 30, 3), np.uint8)
        raw = await client.classify(pixels, model="cnn", version=1, top_k=0)
        assert len(raw.scores) == 10
        assert sum(s.probability for s in raw.scores) == pytest.approx(1.0, abs=1e-5)
        info = await client.get_model("cnn", label="stable")
        assert (info.version, info.input_size) == (1, (32, 32, 3))
        (model,) = await client.list_models()
        assert model.labels == {"stable": 1, "canary": 2}
        with pytest.raises(NotFound) as caught:
            await client.classify(ODD / "jpeg_baseline_rgb.jpg", model="cnn", label="beta")
        assert "beta" in caught.value.details


async def test_classify_many_over_the_stream(gateway: Gateway) -> None:
    images = [ODD / "png_rgba_8bit.png", b"garbage", ODD / "gif_static.gif"]

    def run_sync() -> list[object]:
        with Client(f"127.0.0.1:{gateway.port}") as client:
            return list(client.classify_many(images, model="cnn", version=2, top_k=3))

    sync_results = await asyncio.to_thread(run_sync)
    async with AsyncClient(f"127.0.0.1:{gateway.port}") as client:
        async_results = await client.classify_many(images, model="cnn", version=2, top_k=3)
    for results in (sync_results, async_results):
        first, bad, last = results
        assert isinstance(bad, InvalidArgument)
        assert first.version == 2 and len(first.scores) == 3  # type: ignore[union-attr]
        assert last.version == 2  # type: ignore[union-attr]
