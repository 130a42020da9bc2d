"""The host survives bad versions: odd directory names, versions that fail to load, and load
retries, on a real host with real SavedModels."""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2

from server.model_host.registry import LOG_HINT
from tests.model_host.helpers import (
    RunningHost,
    add_corrupt_version,
    add_version,
    images,
    model_config,
    predict_request,
    server_config,
    wait_until,
    write_config,
)
from training.export import next_version

StartHost = Callable[..., RunningHost]
TOO_LARGE = ("99999999999999999999", "9223372036854775808")  # 2**63: one past int64


def _statuses(
    running: RunningHost, model: str
) -> dict[int, get_model_status_pb2.ModelVersionStatus]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    response = running.models.GetModelStatus(request, timeout=10)
    return {s.version: s for s in response.model_version_status}


def _messages(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


def _add_broken_version(model_dir: Path, template: Path, damage: Callable[[Path], None]) -> int:
    """Publishes `template`, damaged by `damage(directory)`, as the next version (atomically)."""
    temp = model_dir / ".tmp-broken"
    shutil.copytree(template, temp)
    damage(temp)
    temp.mkdir(exist_ok=True)
    number = next_version(model_dir)
    temp.rename(model_dir / str(number))
    return number


def test_odd_version_directories_are_skipped_with_one_warning_each(
    tmp_path: Path,
    templates: dict[int, Path],
    start_host: StartHost,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="common.versions")
    model_dir = tmp_path / "cnn"
    add_version(model_dir, templates[0])
    for name in TOO_LARGE:
        shutil.copytree(templates[1], model_dir / name)
    # A second spelling of version 1, broken: TF Serving uses the name that sorts last ("1").
    shutil.copytree(templates[1], model_dir / "01")
    (model_dir / "01" / "saved_model.pb").write_bytes(b"not a SavedModel")
    running = start_host(write_config(tmp_path / "models.config", model_config("cnn", model_dir)))
    assert running.states() == {1: "AVAILABLE"}

    # Version 2 appearing proves that polls went on after the startup scan.
    add_version(model_dir, templates[1], version=2)
    running.wait_states({2: "AVAILABLE", 1: "END"})
    response = running.predict.Predict(predict_request(batch=images(1)), timeout=10)
    assert response.model_spec.version.value == 2
    assert all(s.status.error_code == 0 for s in _statuses(running, "cnn").values())

    # One warning for each odd directory, however many polls saw it.
    warnings = _messages(caplog, "common.versions")
    for name in ("01", *TOO_LARGE):
        assert sum(bool(re.search(rf"\b{name}\b", m)) for m in warnings) == 1, warnings


def test_failed_versions_tell_callers_no_server_paths(
    tmp_path: Path,
    templates: dict[int, Path],
    start_host: StartHost,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="server.model_host.registry")
    model_dir = tmp_path / "cnn"
    add_version(model_dir, templates[0])
    config = write_config(
        tmp_path / "models.config", model_config("cnn", model_dir, policy="all { }")
    )
    running = start_host(config)
    corrupt = add_corrupt_version(model_dir, templates[1])
    empty = _add_broken_version(model_dir, templates[1], lambda d: shutil.rmtree(d))
    no_variables = _add_broken_version(
        model_dir, templates[1], lambda d: shutil.rmtree(d / "variables")
    )
    running.wait_states({no_variables: "END", empty: "END", corrupt: "END", 1: "AVAILABLE"})
    statuses = _statuses(running, "cnn")
    failed = {v: statuses[v].status for v in (corrupt, empty, no_variables)}
    assert failed[corrupt].error_code == grpc.StatusCode.DATA_LOSS.value[0]
    assert failed[corrupt].error_message == (
        "the SavedModel is unreadable (saved_model.pb does not parse)" + LOG_HINT
    )
    assert failed[empty].error_code == grpc.StatusCode.NOT_FOUND.value[0]
    for status in failed.values():
        assert status.error_message.endswith(LOG_HINT)
        assert "/" not in status.error_message, status.error_message

    # A reload whose new model fails to load says so, still without a path.
    add_corrupt_version(tmp_path / "bad", templates[0])
    request = model_management_pb2.ReloadConfigRequest(
        config=server_config(
            model_config("cnn", model_dir, policy="all { }"), model_config("bad", tmp_path / "bad")
        )
    )
    with pytest.raises(grpc.RpcError) as caught:
        running.models.HandleReloadConfigRequest(request, timeout=30)
    error: grpc.Call = caught.value  # type: ignore[assignment]
    assert error.code() == grpc.StatusCode.UNKNOWN
    assert "the SavedModel is unreadable" in error.details()
    assert "/" not in error.details(), error.details()

    # The details, paths included, are in the host's log.
    logged = "\n".join(_messages(caplog, "server.model_host.registry"))
    for version in (corrupt, empty, no_variables):
        assert str(model_dir / str(version)) in logged
    assert str(tmp_path / "bad" / "1") in logged


def test_a_version_waiting_for_a_load_retry_blocks_nothing_else(
    tmp_path: Path,
    templates: dict[int, Path],
    start_host: StartHost,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="server.model_host.registry")
    for name in ("cnn", "other", "third"):
        add_version(tmp_path / name, templates[0])
    models = [model_config("cnn", tmp_path / "cnn"), model_config("other", tmp_path / "other")]
    # TF Serving's default retry interval: the next attempt is a minute away.
    running = start_host(
        write_config(tmp_path / "models.config", *models),
        max_num_load_retries=5,
        load_retry_interval_micros=60_000_000,
    )
    bad = add_corrupt_version(tmp_path / "cnn", templates[1])
    wait_until(
        lambda: any(
            f"cnn version {bad} failed (attempt 1 of 6), retrying in 60.0 s" in m
            for m in _messages(caplog, "server.model_host.registry")
        ),
        "the first failed attempt",
    )
    assert running.states() == {bad: "LOADING", 1: "AVAILABLE"}

    # A config reload answers (well within the retry interval) and loads its new model.
    request = model_management_pb2.ReloadConfigRequest(
        config=server_config(*models, model_config("third", tmp_path / "third"))
    )
    running.models.HandleReloadConfigRequest(request, timeout=20)
    assert running.states("third") == {1: "AVAILABLE"}

    # A good version of another model loads.
    add_version(tmp_path / "other", templates[1])
    running.wait_states({2: "AVAILABLE", 1: "END"}, "other")

    # A good version of the same model loads; the failing one, no longer aspired, ends.
    good = add_version(tmp_path / "cnn", templates[2])
    running.wait_states({good: "AVAILABLE", bad: "END", 1: "END"})
    status = _statuses(running, "cnn")[bad].status
    assert status.error_code == grpc.StatusCode.DATA_LOSS.value[0]
    assert "/" not in status.error_message
    attempts = [m for m in _messages(caplog, "server.model_host.registry") if "attempt" in m]
    assert len(attempts) == 1, attempts
