"""Fixtures: a real model host on an ephemeral port serving real tiny SavedModels, and a real
gateway in front of it, with stubs to call both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from imgclf.v1 import classifier_pb2_grpc

from server.gateway.server import Gateway, create_server
from server.gateway.settings import GatewaySettings
from server.model_host import create_server as create_model_host
from server.model_host.server import ModelHost
from tests.model_factory import publish_tiny, write_models_config

POLL_SECONDS = 0.1


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    publish_tiny(root, seed=0)
    publish_tiny(root, seed=1)
    return root


@pytest.fixture(scope="session")
def models_config(model_root: Path) -> Path:
    return write_models_config(
        model_root / "models.config", model_root, labels={"stable": 1, "canary": 2}
    )


def start_model_host(config: Path, port: int = 0) -> tuple[ModelHost, int]:
    return create_model_host(
        config,
        port=port,
        file_system_poll_wait_seconds=POLL_SECONDS,
        allow_version_labels_for_unavailable_models=True,
    )


@pytest.fixture(scope="session")
def backend_port(models_config: Path) -> Iterator[int]:
    host, port = start_model_host(models_config)
    yield port
    host.stop(None)


def gateway_settings(
    backend_port: int, models_config: Path, **overrides: object
) -> GatewaySettings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "backend_target": f"127.0.0.1:{backend_port}",
        "models_config_path": models_config,
        "version_cache_ttl_s": 0.2,
        "grace_period_s": 1.0,
        "metrics_host": "127.0.0.1",
        "metrics_port": 0,
        "report_host": "127.0.0.1",
        "report_port": 0,
        "store_url": "",
        "experiments_path": models_config.parent / "no-experiments.toml",
    }
    values.update(overrides)
    return GatewaySettings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
async def gateway(backend_port: int, models_config: Path) -> AsyncIterator[Gateway]:
    running = await create_server(gateway_settings(backend_port, models_config))
    yield running
    await running.stop(0)


@pytest.fixture(scope="session")
async def channel(gateway: Gateway) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as opened:
        yield opened


@pytest.fixture(scope="session")
def stub(channel: grpc.aio.Channel) -> classifier_pb2_grpc.ClassifierStub:
    return classifier_pb2_grpc.ClassifierStub(channel)


@pytest.fixture
async def fresh_gateway(backend_port: int, models_config: Path) -> AsyncIterator[Gateway]:
    """A gateway of its own, so its counters start from zero."""
    running = await create_server(gateway_settings(backend_port, models_config))
    yield running
    await running.stop(0)
