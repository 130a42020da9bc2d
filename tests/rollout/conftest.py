"""A whole stack for rollout tests, under steady load: a real model host (and real TF Serving
where it is on PATH), a real gateway with a SQLite store, callers that never stop, and a driver.

Versions of `cnn` on disk: 1 (seed 0, serving, stable and canary), 2 (the same network: a good
candidate), 3 (a corrupt SavedModel: fails to load), 4 (seed 0 with its classes shuffled: loads,
answers wrongly). The version policy is `specific { versions: 1 }`, as committed.
Callers: through the experiment (with ground truth = what version 1 answers, as feedback), by
the `stable` label and by the `canary` label. Every call's outcome is kept, so a test can say
that none failed and what each step's traffic was.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import subprocess
import time
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from imgclf.v1 import classifier_pb2, classifier_pb2_grpc
from imgclf_client import AsyncClient

from server import models_config
from server.gateway.server import Gateway, create_server
from server.model_host import create_server as create_model_host
from server.model_versions import BackendControl
from server.rollout.driver import RolloutDriver
from server.rollout.plan import Plan, from_table
from server.store import RolloutStore, upgrade
from server.store.engine import create_store_engine
from tests.experiments.conftest import raw_image
from tests.gateway.conftest import gateway_settings
from tests.model_factory import model_entry, publish_tiny, write_config_entries
from tests.model_host.helpers import add_corrupt_version
from tests.support.ports import free_port

TOKEN = "rollout-test-token"
EXPERIMENT = "cnn-stable-vs-canary"
EXPERIMENTS_TOML = f"""
[experiments.{EXPERIMENT}]
arms = [
  {{ name = "stable", model = "cnn", label = "stable", weight = 100 }},
  {{ name = "canary", model = "cnn", label = "canary", weight = 0 }},
]
[experiments.{EXPERIMENT}.analysis]
min_samples = 30
"""
GOOD, CORRUPT, WRONG = 2, 3, 4
IMAGES = 24
KEYS = 2000  # the callers' routing keys cycle through user-0 .. user-1999
REAL_SERVER = shutil.which("tensorflow_model_server")


def quick_plan_toml(*, shadow: bool = True, min_requests: int = 60, name: str = "test") -> str:
    """A plan for tests, in the form of serving_config/rollout.toml: short steps and settling."""
    steps = "".join(
        f"[[plans.{name}.steps]]\nweight = {w}\nmin_duration_s = 4\nmin_requests = {min_requests}\n"
        for w in (10, 50, 100)
    )
    shadow_table = (
        f"[plans.{name}.shadow]\nmin_duration_s = 2\nmin_requests = 40\n" if shadow else ""
    )
    return (
        f'[plans.{name}]\nexperiment = "{EXPERIMENT}"\nsettle_s = 0.6\npoll_interval_s = 0.3\n'
        f"load_timeout_s = 60\n{shadow_table}{steps}"
        f"[plans.{name}.thresholds]\nmax_error_rate = 0.01\nmax_p99_ratio = 20.0\n"
        "min_agreement = 0.9\n"
    )


def quick_plan(*, shadow: bool = True, min_requests: int = 60, name: str = "test") -> Plan:
    text = quick_plan_toml(shadow=shadow, min_requests=min_requests, name=name)
    return from_table(name, tomllib.loads(text)["plans"][name])


@pytest.fixture(scope="session")
def model_templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Versions 1..4 of `cnn`, made once and copied into each test's model root."""
    root = tmp_path_factory.mktemp("rollout-templates")
    publish_tiny(root, "cnn", seed=0)
    publish_tiny(root, "cnn", seed=0)
    add_corrupt_version(root / "cnn", root / "cnn" / "1")
    publish_tiny(root, "cnn", seed=0, permuted=True)
    return root


@dataclass
class Call:
    at: float
    kind: str
    arm: str = ""
    version: int = 0
    error: str = ""
    key: str = ""


@dataclass
class Stack:
    root: Path
    config: Path
    backend_port: int
    gateway: Gateway
    store_url: str
    calls: list[Call] = field(default_factory=list)
    truth: list[int] = field(default_factory=list)

    @property
    def failures(self) -> list[Call]:
        return [c for c in self.calls if c.error]

    def labels(self) -> dict[str, int]:
        _, config = models_config.read(self.config)
        return dict(models_config.entry(config, "cnn").version_labels)

    def served_versions(self) -> list[int] | None:
        _, config = models_config.read(self.config)
        return models_config.specific_versions(models_config.entry(config, "cnn"))


@pytest.fixture(params=["local model host", "tensorflow_model_server"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "tensorflow_model_server" and REAL_SERVER is None:
        pytest.skip("tensorflow_model_server not on PATH")
    return str(request.param)


def _start_backend(kind: str, config: Path) -> tuple[int, Any]:
    if kind == "local model host":
        host, port = create_model_host(
            config,
            port=0,
            address="127.0.0.1",
            file_system_poll_wait_seconds=0.2,
            max_num_load_retries=0,
            allow_version_labels_for_unavailable_models=True,
        )
        return port, lambda: host.stop(None)
    port = free_port()
    process = subprocess.Popen(
        [str(REAL_SERVER), f"--port={port}", "--rest_api_port=0",
         f"--model_config_file={config}", "--file_system_poll_wait_seconds=1",
         "--max_num_load_retries=0",
         "--allow_version_labels_for_unavailable_models=true"],
    )  # fmt: skip
    return port, process.terminate


@pytest.fixture
async def stack(
    tmp_path: Path, model_templates: Path, backend_kind: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    root = tmp_path / "models"
    shutil.copytree(model_templates, root)
    config = write_config_entries(
        tmp_path / "models.config",
        model_entry(
            root, "cnn", labels={"stable": 1, "canary": 1}, policy="specific { versions: 1 }"
        ),
    )
    backend_port, stop_backend = _start_backend(backend_kind, config)
    with BackendControl(f"127.0.0.1:{backend_port}") as backend:
        backend.wait_available("cnn", 1, 60)
    experiments = tmp_path / "experiments.toml"
    experiments.write_text(EXPERIMENTS_TOML)
    store_url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await asyncio.to_thread(upgrade, store_url)
    monkeypatch.setenv("IMGCLF_ROLLOUT_TEST_TOKEN", TOKEN)
    gateway = await create_server(
        gateway_settings(
            backend_port,
            config,
            store_url=store_url,
            store_migrate_on_start=False,
            experiments_path=experiments,
            admin_token_env="IMGCLF_ROLLOUT_TEST_TOKEN",
            experiment_sync_interval_s=0.2,
            prediction_log_flush_interval_s=0.1,
            report_cache_s=0.0,
        )
    )
    running = Stack(tmp_path / "models", config, backend_port, gateway, store_url)
    try:
        yield running
    finally:
        await gateway.stop(0)
        stop_backend()


@pytest.fixture
async def traffic(stack: Stack) -> AsyncIterator[Stack]:
    """Keeps callers busy on the stack until the test ends."""
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{stack.gateway.port}")
    stub = classifier_pb2_grpc.ClassifierStub(channel)
    images = [raw_image(seed) for seed in range(IMAGES)]
    for image in images:
        reply = await stub.Classify(
            classifier_pb2.ClassifyRequest(
                raw=image, model=classifier_pb2.ModelSelector(name="cnn", version=1)
            )
        )
        stack.truth.append(reply.scores[0].index)
    stopping = asyncio.Event()
    keys = itertools.count()

    async def caller(kind: str) -> None:
        index = 0
        while not stopping.is_set():
            index = (index + 1) % IMAGES
            selector = (
                classifier_pb2.ModelSelector(experiment=EXPERIMENT)
                if kind == "experiment"
                else classifier_pb2.ModelSelector(name="cnn", label=kind)
            )
            key = f"user-{next(keys) % KEYS}"
            request = classifier_pb2.ClassifyRequest(
                raw=images[index], model=selector, routing_key=key
            )
            try:
                reply = await stub.Classify(request, timeout=10)
                stack.calls.append(Call(time.time(), kind, reply.arm, reply.model_version, key=key))
                if kind == "experiment":
                    await stub.Feedback(
                        classifier_pb2.FeedbackRequest(
                            request_id=reply.request_id, class_index=stack.truth[index]
                        ),
                        timeout=10,
                    )
            except grpc.aio.AioRpcError as error:
                stack.calls.append(
                    Call(time.time(), kind, error=f"{error.code().name}: {error.details()}")
                )

    kinds = ["experiment"] * 4 + ["stable", "canary"]
    tasks = [asyncio.ensure_future(caller(kind)) for kind in kinds]
    try:
        yield stack
    finally:
        stopping.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await channel.close()


class Drivers:
    """Makes rollout drivers on the stack (each as a separate process would: its own store
    connection, gateway client and backend channel) and collects every event they emit."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.events: list[dict[str, Any]] = []
        self._stores: list[RolloutStore] = []
        self._clients: list[AsyncClient] = []
        self._backends: list[BackendControl] = []

    def make(self) -> RolloutDriver:
        store = RolloutStore(create_store_engine(self.stack.store_url, timeout_s=10), timeout_s=10)
        client = AsyncClient(f"127.0.0.1:{self.stack.gateway.port}", timeout=30, admin_token=TOKEN)
        backend = BackendControl(f"127.0.0.1:{self.stack.backend_port}")
        self._stores.append(store)
        self._clients.append(client)
        self._backends.append(backend)
        return RolloutDriver(
            store=store,
            client=client,
            backend=backend,
            config_path=self.stack.config,
            emit=self.events.append,
        )

    async def close(self) -> None:
        for store in self._stores:
            await store.close()
        for client in self._clients:
            await client.close()
        for backend in self._backends:
            backend.close()


@pytest.fixture
async def drivers(traffic: Stack) -> AsyncIterator[Drivers]:
    made = Drivers(traffic)
    yield made
    await made.close()


def step_windows(events: list[dict[str, Any]]) -> list[tuple[float, float, float]]:
    """(start, end, canary weight) of each live step, from its analysis events (the weights
    were set and had settled by the first of them)."""
    windows: dict[int, list[float]] = {}
    weights: dict[int, float] = {}
    current_weight = 0.0
    for event in events:
        if event["event"] == "step" and event["step_kind"] == "canary":
            current_weight = event["weights"]["canary"]
            weights[event["step"]] = current_weight
        if event["event"] == "analysis" and event.get("step") in weights:
            at = datetime.fromisoformat(event["time"]).timestamp()
            windows.setdefault(event["step"], []).append(at)
    return [(min(t), max(t), weights[s]) for s, t in sorted(windows.items()) if len(t) > 1]
