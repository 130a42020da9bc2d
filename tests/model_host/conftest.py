"""Fixtures for the local model host tests: real tiny SavedModels and real hosts.

Three tiny Keras classifiers (different seeds, so their answers differ) are published once per
session with `training.export.publish`; tests copy them into their own model directories with
`helpers.add_version`. `start_host` starts real hosts on ephemeral ports and stops them (and
their polling threads) after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from server.model_host import create_server
from tests.model_host.helpers import (
    CLASS_NAMES,
    POLL_SECONDS,
    SEEDS,
    RunningHost,
    add_version,
    model_config,
    tiny_classifier,
    write_config,
)
from training.export import publish


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """SavedModel directories by seed, published once for the session."""
    root = tmp_path_factory.mktemp("templates")
    return {seed: publish(tiny_classifier(seed), CLASS_NAMES, root, "tiny")[1] for seed in SEEDS}


@pytest.fixture(scope="session")
def reference(templates: dict[int, Path]) -> Callable[[int, np.ndarray], np.ndarray]:
    """The probabilities a template gives for `images`, computed in process."""
    loaded = {seed: tf.saved_model.load(str(path)) for seed, path in templates.items()}

    def run(seed: int, images: np.ndarray) -> np.ndarray:
        function = loaded[seed].signatures["serving_default"]
        return np.asarray(function(images=tf.constant(images))["probabilities"])

    return run


@pytest.fixture
def start_host() -> Iterator[Callable[..., RunningHost]]:
    """`start_host(config_path, **create_server_kwargs)`; everything started is stopped."""
    started: list[RunningHost] = []

    def start(config_path: Path | None, **kwargs: Any) -> RunningHost:
        kwargs.setdefault("file_system_poll_wait_seconds", POLL_SECONDS)
        kwargs.setdefault("max_num_load_retries", 0)
        host, port = create_server(config_path, port=0, **kwargs)
        running = RunningHost(host, port)
        started.append(running)
        return running

    yield start
    for running in started:
        running.channel.close()
        running.host.stop(None).wait(10)


@pytest.fixture(scope="module")
def shared_host(
    tmp_path_factory: pytest.TempPathFactory, templates: dict[int, Path]
) -> Iterator[RunningHost]:
    """One host for read-only tests: model `cnn` with version 1 (seed 0) and 2 (seed 1) under
    `latest { num_versions: 2 }`, labels stable -> 1 and canary -> 2."""
    root = tmp_path_factory.mktemp("shared")
    add_version(root / "cnn", templates[0])
    add_version(root / "cnn", templates[1])
    config = write_config(
        root / "models.config",
        model_config(
            "cnn",
            root / "cnn",
            policy="latest { num_versions: 2 }",
            labels={"stable": 1, "canary": 2},
        ),
    )
    host, port = create_server(
        config,
        port=0,
        file_system_poll_wait_seconds=POLL_SECONDS,
        allow_version_labels_for_unavailable_models=True,
    )
    running = RunningHost(host, port)
    yield running
    running.channel.close()
    host.stop(None).wait(10)
