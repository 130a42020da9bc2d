"""Versions coming and going while the host serves: polling, policies, failures, shutdown."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import get_model_status_pb2

from server.model_host import create_server
from tests.model_host.helpers import (
    CLASS_NAMES,
    RunningHost,
    add_corrupt_version,
    add_version,
    assert_rpc_error,
    images,
    model_config,
    poller_threads,
    predict_request,
    tiny_classifier,
    wait_until,
    write_config,
)
from training.export import publish

StartHost = Callable[..., RunningHost]


class Traffic:
    """A client thread sending Predicts for the latest version until stopped."""

    def __init__(self, running: RunningHost) -> None:
        self._running = running
        self._stop = threading.Event()
        self.versions: list[int] = []
        self.failures: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        request = predict_request(batch=images(2))
        while not self._stop.is_set():
            try:
                response = self._running.predict.Predict(request, timeout=10)
                self.versions.append(response.model_spec.version.value)
            except grpc.RpcError as error:
                self.failures.append(f"{error.code()}: {error.details()}")


def test_new_version_replaces_the_old_without_a_failed_request(
    tmp_path: Path, templates: dict[int, Path], start_host: StartHost
) -> None:
    add_version(tmp_path / "cnn", templates[0])
    config = write_config(tmp_path / "models.config", model_config("cnn", tmp_path / "cnn"))
    running = start_host(config)
    running.wait_states({1: "AVAILABLE"})

    with Traffic(running) as traffic:
        wait_until(lambda: len(traffic.versions) >= 20, "traffic on version 1")
        version, _ = publish(tiny_classifier(1), CLASS_NAMES, tmp_path, "cnn")
        assert version == 2
        running.wait_states({2: "AVAILABLE", 1: "END"})
        served_before = len(traffic.versions)
        wait_until(lambda: len(traffic.versions) >= served_before + 20, "traffic on version 2")

    assert traffic.failures == []
    assert traffic.versions[0] == 1 and traffic.versions[-1] == 2
    # Once version 2 answered, nothing went back to version 1.
    first_v2 = traffic.versions.index(2)
    assert set(traffic.versions[first_v2:]) == {2}


def test_a_corrupt_version_fails_alone_and_the_old_one_keeps_serving(
    tmp_path: Path, templates: dict[int, Path], start_host: StartHost
) -> None:
    add_version(tmp_path / "cnn", templates[0])
    config = write_config(tmp_path / "models.config", model_config("cnn", tmp_path / "cnn"))
    running = start_host(config)
    running.wait_states({1: "AVAILABLE"})

    with Traffic(running) as traffic:
        bad = add_corrupt_version(tmp_path / "cnn", templates[1])
        running.wait_states({bad: "END", 1: "AVAILABLE"})
        served = len(traffic.versions)
        wait_until(lambda: len(traffic.versions) >= served + 10, "traffic after the failure")
    assert traffic.failures == []
    assert set(traffic.versions) == {1}

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "cnn"
    request.model_spec.version.value = bad
    status = running.models.GetModelStatus(request, timeout=10).model_version_status[0].status
    assert status.error_code == grpc.StatusCode.DATA_LOSS.value[0]
    assert status.error_message == (
        "the SavedModel is unreadable (saved_model.pb does not parse)"
        " (details in the model host's log)"
    )
    assert_rpc_error(
        lambda: running.predict.Predict(predict_request(batch=images(1), version=bad)),
        grpc.StatusCode.NOT_FOUND,
        f"Servable not found for request: Specific(cnn, {bad})",
    )

    # A good version published after the bad one is loaded, and replaces version 1.
    good = add_version(tmp_path / "cnn", templates[2])
    running.wait_states({good: "AVAILABLE", bad: "END", 1: "END"})


def test_a_failing_load_is_retried_before_it_ends(
    tmp_path: Path, templates: dict[int, Path], start_host: StartHost
) -> None:
    add_version(tmp_path / "cnn", templates[0])
    config = write_config(tmp_path / "models.config", model_config("cnn", tmp_path / "cnn"))
    running = start_host(config, max_num_load_retries=2, load_retry_interval_micros=300_000)
    running.wait_states({1: "AVAILABLE"})
    bad = add_corrupt_version(tmp_path / "cnn", templates[1])
    wait_until(lambda: running.states().get(bad) == "LOADING", "the retries in LOADING")
    running.wait_states({bad: "END", 1: "AVAILABLE"})


def test_hidden_and_non_numeric_directories_are_ignored(
    tmp_path: Path, templates: dict[int, Path], start_host: StartHost
) -> None:
    model_dir = tmp_path / "cnn"
    add_version(model_dir, templates[0])
    config = write_config(tmp_path / "models.config", model_config("cnn", model_dir))
    running = start_host(config)
    running.wait_states({1: "AVAILABLE"})

    shutil.copytree(templates[1], model_dir / ".tmp-half-written")
    shutil.copytree(templates[1], model_dir / "v7")
    (model_dir / "9").write_text("a file, not a directory")
    # Version 2 appearing proves a poll ran after the decoys were there.
    add_version(model_dir, templates[1], version=2)
    running.wait_states({2: "AVAILABLE", 1: "END"})


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("", {3: "AVAILABLE"}),
        ("latest { num_versions: 2 }", {3: "AVAILABLE", 2: "AVAILABLE"}),
        ("all { }", {3: "AVAILABLE", 2: "AVAILABLE", 1: "AVAILABLE"}),
        ("specific { versions: 1 versions: 3 versions: 8 }", {3: "AVAILABLE", 1: "AVAILABLE"}),
    ],
)
def test_version_policies(
    tmp_path: Path,
    templates: dict[int, Path],
    start_host: StartHost,
    policy: str,
    expected: dict[int, str],
) -> None:
    for seed in (0, 1, 2):
        add_version(tmp_path / "cnn", templates[seed])
    config = write_config(
        tmp_path / "models.config", model_config("cnn", tmp_path / "cnn", policy=policy)
    )
    running = start_host(config)
    assert running.states() == expected
    response = running.predict.Predict(predict_request(batch=images(1)), timeout=10)
    assert response.model_spec.version.value == 3


def test_a_version_removed_from_disk_is_unloaded(
    tmp_path: Path, templates: dict[int, Path], start_host: StartHost
) -> None:
    add_version(tmp_path / "cnn", templates[0])
    add_version(tmp_path / "cnn", templates[1])
    config = write_config(
        tmp_path / "models.config",
        model_config("cnn", tmp_path / "cnn", policy="latest { num_versions: 2 }"),
    )
    running = start_host(config)
    running.wait_states({2: "AVAILABLE", 1: "AVAILABLE"})
    shutil.rmtree(tmp_path / "cnn" / "2")
    running.wait_states({2: "END", 1: "AVAILABLE"})
    response = running.predict.Predict(predict_request(batch=images(1)), timeout=10)
    assert response.model_spec.version.value == 1


def test_a_model_without_versions_starts_empty_and_loads_the_first_one(
    tmp_path: Path, templates: dict[int, Path], start_host: StartHost
) -> None:
    (tmp_path / "cnn").mkdir()
    config = write_config(tmp_path / "models.config", model_config("cnn", tmp_path / "cnn"))
    running = start_host(config)
    assert_rpc_error(
        lambda: running.predict.Predict(predict_request(batch=images(1))),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(cnn)",
    )
    assert running.states() == {}
    add_version(tmp_path / "cnn", templates[0])
    running.wait_states({1: "AVAILABLE"})


def test_single_model_mode(
    tmp_path: Path, templates: dict[int, Path], start_host: StartHost
) -> None:
    add_version(tmp_path / "tiny", templates[0])
    running = start_host(None, model_name="tiny", model_base_path=str(tmp_path / "tiny"))
    response = running.predict.Predict(predict_request("tiny", images(1)), timeout=10)
    assert response.model_spec.version.value == 1


def test_relative_base_path_is_taken_from_the_working_directory(
    tmp_path: Path,
    templates: dict[int, Path],
    start_host: StartHost,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_version(tmp_path / "models" / "cnn", templates[0])
    config = write_config(tmp_path / "models.config", model_config("cnn", "models/cnn"))
    monkeypatch.chdir(tmp_path)
    running = start_host(config)
    assert running.states() == {1: "AVAILABLE"}


def test_stop_ends_the_polling_threads_and_the_server(
    tmp_path: Path, templates: dict[int, Path]
) -> None:
    add_version(tmp_path / "cnn", templates[0])
    config = write_config(tmp_path / "models.config", model_config("cnn", tmp_path / "cnn"))
    before = set(poller_threads())
    host, port = create_server(
        config, port=0, file_system_poll_wait_seconds=0.05, model_config_file_poll_wait_seconds=0.05
    )
    assert len(set(poller_threads()) - before) == 2
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
    assert host.stop(grace=1).wait(10)
    assert set(poller_threads()) - before == set()
    with (
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        pytest.raises(grpc.FutureTimeoutError),
    ):
        grpc.channel_ready_future(channel).result(timeout=0.5)
