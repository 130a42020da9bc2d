"""Config at startup, HandleReloadConfigRequest and config-file polling, labels above all."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.config import model_server_config_pb2

from server.model_host import StartupError, create_server
from tests.model_host.helpers import (
    RunningHost,
    add_corrupt_version,
    add_version,
    assert_rpc_error,
    images,
    model_config,
    predict_request,
    server_config,
    wait_until,
    write_config,
)

StartHost = Callable[..., RunningHost]
LATEST_2 = "latest { num_versions: 2 }"
NOT_AVAILABLE = (
    "Request to assign label to version {version} of model cnn, which is not currently "
    "available for inference"
)


@pytest.fixture
def two_versions(tmp_path: Path, templates: dict[int, Path]) -> Path:
    """tmp_path/cnn with versions 1 and 2."""
    add_version(tmp_path / "cnn", templates[0])
    add_version(tmp_path / "cnn", templates[1])
    return tmp_path / "cnn"


def _labelled(base_path: Path, **labels: int) -> model_server_config_pb2.ModelConfig:
    return model_config("cnn", base_path, policy=LATEST_2, labels=labels)


def _reload(running: RunningHost, *models: model_server_config_pb2.ModelConfig) -> None:
    request = model_management_pb2.ReloadConfigRequest(config=server_config(*models))
    response = running.models.HandleReloadConfigRequest(request, timeout=30)
    assert response.status.error_code == 0


def _reload_call(
    running: RunningHost, config: model_server_config_pb2.ModelServerConfig
) -> Callable[[], object]:
    request = model_management_pb2.ReloadConfigRequest(config=config)
    return lambda: running.models.HandleReloadConfigRequest(request, timeout=30)


def _version_for(running: RunningHost, label: str) -> int:
    response = running.predict.Predict(predict_request(batch=images(1), label=label), timeout=10)
    return int(response.model_spec.version.value)


def test_labels_at_startup_need_the_flag_like_tf_serving(
    tmp_path: Path, two_versions: Path
) -> None:
    config = write_config(tmp_path / "models.config", _labelled(two_versions, stable=1))
    with pytest.raises(StartupError) as caught:
        create_server(config, port=0)
    assert str(caught.value) == "FAILED_PRECONDITION: " + NOT_AVAILABLE.format(version=1)


def test_labels_at_startup_with_the_flag(
    tmp_path: Path, two_versions: Path, start_host: StartHost
) -> None:
    config = write_config(tmp_path / "models.config", _labelled(two_versions, stable=1, canary=2))
    running = start_host(config, allow_version_labels_for_unavailable_models=True)
    assert _version_for(running, "stable") == 1
    assert _version_for(running, "canary") == 2


def test_reload_moves_a_label_to_a_loaded_version(
    tmp_path: Path, two_versions: Path, start_host: StartHost
) -> None:
    config = write_config(
        tmp_path / "models.config", model_config("cnn", two_versions, policy=LATEST_2)
    )
    running = start_host(config)
    _reload(running, _labelled(two_versions, stable=1, canary=1))
    assert _version_for(running, "canary") == 1
    _reload(running, _labelled(two_versions, stable=1, canary=2))
    assert _version_for(running, "canary") == 2
    assert _version_for(running, "stable") == 1


@pytest.mark.parametrize("allow_flag", [False, True])
def test_moving_a_label_to_an_unloaded_version_is_refused_and_the_old_config_stays(
    tmp_path: Path, two_versions: Path, start_host: StartHost, allow_flag: bool
) -> None:
    config = write_config(
        tmp_path / "models.config", model_config("cnn", two_versions, policy=LATEST_2)
    )
    running = start_host(config, allow_version_labels_for_unavailable_models=allow_flag)
    _reload(running, _labelled(two_versions, stable=1, canary=1))

    refused = server_config(_labelled(two_versions, stable=1, canary=3))
    assert_rpc_error(
        _reload_call(running, refused),
        grpc.StatusCode.FAILED_PRECONDITION,
        NOT_AVAILABLE.format(version=3),
    )
    assert _version_for(running, "canary") == 1
    assert _version_for(running, "stable") == 1


def test_a_new_label_may_point_at_an_unloaded_version_only_with_the_flag(
    tmp_path: Path, two_versions: Path, start_host: StartHost, templates: dict[int, Path]
) -> None:
    plain = model_config("cnn", two_versions, policy=LATEST_2)
    strict = start_host(write_config(tmp_path / "a.config", plain))
    assert_rpc_error(
        _reload_call(strict, server_config(_labelled(two_versions, next=3))),
        grpc.StatusCode.FAILED_PRECONDITION,
        NOT_AVAILABLE.format(version=3),
    )

    lenient = start_host(
        write_config(tmp_path / "b.config", plain),
        allow_version_labels_for_unavailable_models=True,
    )
    _reload(lenient, _labelled(two_versions, next=3))
    assert_rpc_error(
        lambda: lenient.predict.Predict(predict_request(batch=images(1), label="next")),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Specific(cnn, 3)",
    )
    add_version(two_versions, templates[2])
    wait_until(lambda: lenient.states().get(3) == "AVAILABLE", "version 3")
    assert _version_for(lenient, "next") == 3


@pytest.mark.parametrize("allow_flag", [False, True])
def test_keeping_a_label_on_a_version_that_was_unloaded(
    tmp_path: Path,
    two_versions: Path,
    start_host: StartHost,
    templates: dict[int, Path],
    allow_flag: bool,
) -> None:
    config = write_config(
        tmp_path / "models.config", model_config("cnn", two_versions, policy=LATEST_2)
    )
    running = start_host(config, allow_version_labels_for_unavailable_models=allow_flag)
    _reload(running, _labelled(two_versions, stable=1))
    add_version(two_versions, templates[2])
    running.wait_states({3: "AVAILABLE", 2: "AVAILABLE", 1: "END"})
    # The label still points at version 1 (labels are checked only when a config is applied).
    assert_rpc_error(
        lambda: running.predict.Predict(predict_request(batch=images(1), label="stable")),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Specific(cnn, 1)",
    )
    # Re-applying it: refused without the flag; with it, an unchanged label is allowed.
    keep = server_config(_labelled(two_versions, stable=1, canary=3))
    if allow_flag:
        _reload(running, *keep.model_config_list.config)
        assert _version_for(running, "canary") == 3
    else:
        assert_rpc_error(
            _reload_call(running, keep),
            grpc.StatusCode.FAILED_PRECONDITION,
            NOT_AVAILABLE.format(version=1),
        )


def test_reload_replaces_the_whole_config(
    tmp_path: Path, two_versions: Path, start_host: StartHost, templates: dict[int, Path]
) -> None:
    add_version(tmp_path / "other", templates[2])
    config = write_config(tmp_path / "models.config", model_config("cnn", two_versions))
    running = start_host(config)
    running.wait_states({2: "AVAILABLE"})

    _reload(running, model_config("other", tmp_path / "other"))
    # The new model is loaded by the time the call returns; the removed one is unloaded.
    assert running.states("other") == {1: "AVAILABLE"}
    assert running.states("cnn") == {2: "END"}
    assert_rpc_error(
        lambda: running.predict.Predict(predict_request(batch=images(1))),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(cnn)",
    )
    response = running.predict.Predict(predict_request("other", images(1)), timeout=10)
    assert response.model_spec.version.value == 1


@pytest.mark.parametrize(
    ("models", "code", "message"),
    [
        (
            lambda base: [model_config("cnn", base), model_config("cnn", base)],
            grpc.StatusCode.INVALID_ARGUMENT,
            "Illegal to list model cnn multiple times in config list",
        ),
        (
            lambda base: [model_config("cnn", base, platform="pytorch")],
            grpc.StatusCode.INVALID_ARGUMENT,
            "Illegal to change a model's platform. For model cnn platform was tensorflow and "
            "new platform requested is pytorch",
        ),
        (
            lambda base: [model_config("cnn", base), model_config("x", base, platform="onnx")],
            grpc.StatusCode.INVALID_ARGUMENT,
            "Model x requests unsupported platform onnx",
        ),
        (
            lambda base: [model_config("cnn", base, platform="")],
            grpc.StatusCode.INVALID_ARGUMENT,
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
            "ModelServerConfig::model_platform.",
        ),
    ],
)
def test_invalid_configs_are_refused_and_change_nothing(
    tmp_path: Path,
    two_versions: Path,
    start_host: StartHost,
    models: Callable[[Path], list[model_server_config_pb2.ModelConfig]],
    code: grpc.StatusCode,
    message: str,
) -> None:
    config = write_config(tmp_path / "models.config", model_config("cnn", two_versions))
    running = start_host(config)
    assert_rpc_error(_reload_call(running, server_config(*models(two_versions))), code, message)
    response = running.predict.Predict(predict_request(batch=images(1)), timeout=10)
    assert response.model_spec.version.value == 2


def test_reload_needs_a_model_config_list(
    tmp_path: Path, two_versions: Path, start_host: StartHost
) -> None:
    running = start_host(
        write_config(tmp_path / "models.config", model_config("cnn", two_versions))
    )
    custom = model_server_config_pb2.ModelServerConfig()
    custom.custom_model_config.type_url = "type.googleapis.com/x"
    message = (
        "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
        "ModelConfigList is currently supported"
    )
    for config in (custom, model_server_config_pb2.ModelServerConfig()):
        assert_rpc_error(_reload_call(running, config), grpc.StatusCode.INVALID_ARGUMENT, message)


def test_reload_with_a_new_model_that_fails_to_load(
    tmp_path: Path, two_versions: Path, start_host: StartHost, templates: dict[int, Path]
) -> None:
    add_corrupt_version(tmp_path / "bad", templates[0])
    running = start_host(
        write_config(tmp_path / "models.config", model_config("cnn", two_versions))
    )
    assert_rpc_error(
        _reload_call(
            running,
            server_config(model_config("cnn", two_versions), model_config("bad", tmp_path / "bad")),
        ),
        grpc.StatusCode.UNKNOWN,
        "1 model(s) did not become available: {{{name: bad version: 1} due to error: "
        "DATA_LOSS: the SavedModel is unreadable (saved_model.pb does not parse) (details in "
        "the model host's log)}, }",
    )
    assert running.states("bad") == {1: "END"}


def test_startup_fails_when_a_model_fails_to_load(
    tmp_path: Path, templates: dict[int, Path]
) -> None:
    add_corrupt_version(tmp_path / "cnn", templates[0])
    config = write_config(tmp_path / "models.config", model_config("cnn", tmp_path / "cnn"))
    with pytest.raises(StartupError, match=r"^UNKNOWN: 1 model\(s\) did not become available"):
        create_server(config, port=0, max_num_load_retries=0)


def test_startup_fails_on_an_unparseable_config(tmp_path: Path) -> None:
    config = tmp_path / "models.config"
    config.write_text("model_config_list { config { name: ")
    with pytest.raises(StartupError) as caught:
        create_server(config, port=0)
    assert str(caught.value) == f"INVALID_ARGUMENT: Invalid protobuf file: '{config}'"


def test_config_file_polling_applies_changes(
    tmp_path: Path, two_versions: Path, start_host: StartHost
) -> None:
    config = write_config(tmp_path / "models.config", _labelled(two_versions, stable=1, canary=1))
    running = start_host(
        config,
        allow_version_labels_for_unavailable_models=True,
        model_config_file_poll_wait_seconds=0.1,
    )
    assert _version_for(running, "canary") == 1

    write_config(config, _labelled(two_versions, stable=1, canary=2))
    wait_until(lambda: _version_for(running, "canary") == 2, "canary to move to version 2")

    # A broken file or a refused config is logged and the last good config stays.
    config.write_text("not a config")
    write_config(config, _labelled(two_versions, stable=1, canary=7))
    write_config(config, _labelled(two_versions, stable=2, canary=2))
    wait_until(lambda: _version_for(running, "stable") == 2, "stable to move to version 2")
    assert _version_for(running, "canary") == 2
