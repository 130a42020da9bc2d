"""Fixtures for the experiment tests: a real model host serving real tiny SavedModels, and real
gateways in front of it, each with its own store (a temporary SQLite file unless a test gives a
PostgreSQL URL) and its own experiments file.

Models: `cnn` version 1 (seed 0) and 2 (seed 1), labels stable -> 1 and canary -> 2; `shadow`
version 1 (seed 2), a separate model so a proxy can stall or break it alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from imgclf.v1 import (
    admin_pb2_grpc,
    classifier_pb2,
    classifier_pb2_grpc,
    experiments_pb2_grpc,
)

from server.gateway.server import Gateway, create_server
from tests.gateway.conftest import gateway_settings, start_model_host
from tests.model_factory import model_entry, publish_tiny, write_config_entries

ADMIN_TOKEN = "test-admin-token"
EXPERIMENT = "ab"
AB_TOML = f"""
[experiments.{EXPERIMENT}]
arms = [
  {{ name = "stable", model = "cnn", label = "stable", weight = 50 }},
  {{ name = "canary", model = "cnn", label = "canary", weight = 50 }},
]
[experiments.{EXPERIMENT}.analysis]
min_samples = 20
"""


@pytest.fixture(scope="session")
def exp_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exp-models")
    publish_tiny(root, "cnn", seed=0)
    publish_tiny(root, "cnn", seed=1)
    publish_tiny(root, "shadow", seed=2)
    return write_config_entries(
        root / "models.config",
        model_entry(root, "cnn", labels={"stable": 1, "canary": 2}),
        model_entry(root, "shadow"),
    )


@pytest.fixture(scope="session")
def exp_backend(exp_models: Path) -> Iterator[int]:
    host, port = start_model_host(exp_models)
    yield port
    host.stop(None)


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def make_gateway(
    exp_backend: int, exp_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[GatewayFactory]:
    """`await make_gateway(experiments=TOML, **settings)`: a started gateway, stopped after."""
    monkeypatch.setenv("IMGCLF_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
    started: list[Gateway] = []

    async def make(experiments: str = AB_TOML, **overrides: Any) -> Gateway:
        path = tmp_path / f"experiments-{len(started)}.toml"
        path.write_text(experiments)
        values: dict[str, Any] = {
            "store_url": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
            "experiments_path": path,
            "admin_token_env": "IMGCLF_TEST_ADMIN_TOKEN",
            "prediction_log_flush_interval_s": 0.05,
            "experiment_sync_interval_s": 0.2,
            "report_cache_s": 0.0,
        }
        values.update(overrides)
        backend = values.pop("backend_port", exp_backend)
        gateway = await create_server(gateway_settings(backend, exp_models, **values))
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        await gateway.stop(0)


class Stubs:
    """The gateway's three services over one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.classifier = classifier_pb2_grpc.ClassifierStub(channel)
        self.experiments = experiments_pb2_grpc.ExperimentsStub(channel)
        self.admin = admin_pb2_grpc.AdminStub(channel)


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[Gateway], Stubs]]:
    channels: list[grpc.aio.Channel] = []

    def open_stubs(gateway: Gateway) -> Stubs:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}")
        channels.append(channel)
        return Stubs(channel)

    yield open_stubs
    for channel in channels:
        await channel.close()


def raw_image(seed: int) -> classifier_pb2.RawImage:
    """A 32x32 RGB image of noise, sent as raw pixels (cheap to decode)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return classifier_pb2.RawImage(pixels=pixels.tobytes(), height=32, width=32, channels=3)


def through(
    experiment: str = EXPERIMENT, *, seed: int = 0, key: str = "", request_id: str = ""
) -> classifier_pb2.ClassifyRequest:
    return classifier_pb2.ClassifyRequest(
        raw=raw_image(seed),
        model=classifier_pb2.ModelSelector(experiment=experiment),
        routing_key=key,
        request_id=request_id,
        top_k=0,
    )


ADMIN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
