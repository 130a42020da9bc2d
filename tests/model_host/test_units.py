"""The pure parts: version policy, disk scan, availability-preserving actions, config parsing,
CLI flags and the cleaning of TensorFlow runtime errors."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
import tensorflow as tf

from server.model_host import errors
from server.model_host.__main__ import _parser, main, options_from
from server.model_host.config import (
    PolicyKind,
    VersionPolicy,
    read_config_file,
    resolve_base_path,
    version_policy,
)
from server.model_host.options import parse_channel_arguments
from server.model_host.policy import Action, ActionKind, Phase, VersionSnapshot, next_action
from server.model_host.servable import runtime_error_message
from server.model_host.versions import BasePathMissing, aspired_versions, versions_on_disk
from tests.model_host.helpers import model_config, write_config

LOAD, UNLOAD = ActionKind.LOAD, ActionKind.UNLOAD
NEW, READY, DONE = Phase.NEW, Phase.READY, Phase.DONE


def _v(version: int, phase: Phase, aspired: bool) -> VersionSnapshot:
    return VersionSnapshot(version, phase, aspired)


@pytest.mark.parametrize(
    ("versions", "pinned", "expected"),
    [
        # a new version loads while the old one keeps serving ...
        ([_v(1, READY, False), _v(2, NEW, True)], (), Action(LOAD, 2)),
        # ... and the old one goes once the new one serves
        ([_v(1, READY, False), _v(2, READY, True)], (), Action(UNLOAD, 1)),
        # a failed new version leaves the old one alone
        ([_v(1, READY, False), _v(2, DONE, True)], (), None),
        # nothing aspired: unload, lowest first
        ([_v(1, READY, False), _v(2, READY, False)], (), Action(UNLOAD, 1)),
        # two un-aspired versions serving: one may go even with nothing aspired serving
        ([_v(1, READY, False), _v(2, READY, False), _v(3, NEW, True)], (), Action(UNLOAD, 1)),
        # highest new version first
        ([_v(1, NEW, True), _v(3, NEW, True), _v(2, NEW, True)], (), Action(LOAD, 3)),
        # a version a `specific` policy names is never unloaded
        ([_v(1, READY, False), _v(2, READY, True)], (1,), None),
        ([], (), None),
    ],
)
def test_availability_preserving_policy(
    versions: list[VersionSnapshot], pinned: tuple[int, ...], expected: Action | None
) -> None:
    assert next_action(versions, pinned) == expected


def test_versions_on_disk_ignore_non_numeric_names(tmp_path: Path) -> None:
    for name in ("1", "12", ".tmp-abc", "v3", "٣"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file")
    assert sorted(versions_on_disk(tmp_path)) == [1, 12]
    with pytest.raises(BasePathMissing):
        versions_on_disk(tmp_path / "missing")


def test_versions_on_disk_skip_numbers_that_cannot_be_versions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("1", "07", "7", "9223372036854775807", "9223372036854775808", "9" * 20):
        (tmp_path / name).mkdir()
    caplog.set_level(logging.WARNING, logger="common.versions")
    expected = {1: tmp_path / "1", 7: tmp_path / "7", 2**63 - 1: tmp_path / "9223372036854775807"}
    assert versions_on_disk(tmp_path) == expected
    assert versions_on_disk(tmp_path) == expected

    def warned() -> list[str]:
        return [r.getMessage().split()[2] for r in caplog.records if r.name == "common.versions"]

    # Once per directory, not once per scan ...
    assert sorted(warned()) == sorted(["07", "9223372036854775808", "9" * 20])
    # ... and again when one comes back after it was gone.
    (tmp_path / "07").rmdir()
    versions_on_disk(tmp_path)
    (tmp_path / "07").mkdir()
    versions_on_disk(tmp_path)
    assert sorted(warned()) == sorted(["07", "07", "9223372036854775808", "9" * 20])


def test_cli_flags_of_the_hosts_reach(tmp_path: Path) -> None:
    defaults = options_from(_parser().parse_args([]))
    assert _parser().parse_args([]).address == "127.0.0.1"
    assert (defaults.enable_model_management, defaults.management_token_file) == (True, None)
    args = _parser().parse_args(
        [
            "--address=0.0.0.0",
            "--enable_model_management=false",
            f"--management_token_file={tmp_path / 'token'}",
        ]
    )
    options = options_from(args)
    assert args.address == "0.0.0.0"
    assert options.enable_model_management is False
    assert options.management_token_file == tmp_path / "token"


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (VersionPolicy(), [5]),
        (VersionPolicy(num_versions=2), [3, 5]),
        (VersionPolicy(PolicyKind.ALL), [1, 3, 5]),
        (VersionPolicy(PolicyKind.SPECIFIC, versions=frozenset({1, 4})), [1]),
    ],
)
def test_aspired_versions(policy: VersionPolicy, expected: list[int]) -> None:
    found = {v: Path(str(v)) for v in (1, 3, 5)}
    assert sorted(aspired_versions(policy, found)) == expected


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("", VersionPolicy()),
        ("latest { }", VersionPolicy()),
        ("latest { num_versions: 3 }", VersionPolicy(num_versions=3)),
        ("all { }", VersionPolicy(PolicyKind.ALL)),
        ("specific { versions: 2 }", VersionPolicy(PolicyKind.SPECIFIC, versions=frozenset({2}))),
    ],
)
def test_version_policy_from_config(policy: str, expected: VersionPolicy) -> None:
    assert version_policy(model_config("m", "/m", policy=policy)) == expected


def test_the_repository_models_config_parses() -> None:
    config = read_config_file(Path(__file__).parents[2] / "serving_config" / "models.config")
    (model,) = config.model_config_list.config
    assert model.name == "cnn"
    assert dict(model.version_labels) == {"stable": 1, "canary": 1}


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(errors.ServingError) as missing:
        read_config_file(tmp_path / "nope.config")
    assert missing.value.code == grpc.StatusCode.NOT_FOUND
    bad = tmp_path / "bad.config"
    bad.write_text("model_config_list { nonsense: 1 }")
    with pytest.raises(errors.ServingError) as invalid:
        read_config_file(bad)
    assert invalid.value.message == f"Invalid protobuf file: '{bad}'"


def test_relative_base_paths_resolve_against_the_working_directory(tmp_path: Path) -> None:
    assert resolve_base_path("m", "models/m", tmp_path) == tmp_path / "models" / "m"
    assert resolve_base_path("m", "/abs/m", tmp_path) == Path("/abs/m")


def test_channel_arguments_parse_like_tf_serving() -> None:
    assert parse_channel_arguments("grpc.max_receive_message_length=10,grpc.lb_policy=x") == (
        ("grpc.max_receive_message_length", 10),
        ("grpc.lb_policy", "x"),
    )
    assert parse_channel_arguments("") == ()
    with pytest.raises(ValueError, match="not key=value"):
        parse_channel_arguments("oops")


def test_cli_flags_are_tf_servings() -> None:
    args = _parser().parse_args(
        [
            "--port=9000",
            "--model_config_file=x.config",
            "--model_config_file_poll_wait_seconds=2",
            "--file_system_poll_wait_seconds",
            "0.5",
            "--allow_version_labels_for_unavailable_models=true",
            "--max_num_load_retries=0",
            "--grpc_channel_arguments=grpc.max_receive_message_length=1024",
        ]
    )
    options = options_from(args)
    assert args.port == 9000
    assert options.model_config_file_poll_wait_seconds == 2
    assert options.file_system_poll_wait_seconds == 0.5
    assert options.allow_version_labels_for_unavailable_models is True
    assert options.max_num_load_retries == 0
    assert options.grpc_channel_arguments == (("grpc.max_receive_message_length", 1024),)
    bare = _parser().parse_args(["--allow_version_labels_for_unavailable_models"])
    assert bare.allow_version_labels_for_unavailable_models is True
    assert _parser().parse_args([]).allow_version_labels_for_unavailable_models is False


def test_cli_startup_failure_exits_255(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("server.model_host.__main__.logs.configure", lambda *args: None)
    config = write_config(
        tmp_path / "models.config", model_config("cnn", tmp_path, labels={"stable": 1})
    )
    assert main([f"--model_config_file={config}", "--port=0"]) == 255
    assert capsys.readouterr().err.startswith(
        "Failed to start server. Error: FAILED_PRECONDITION: Request to assign label"
    )


def test_runtime_errors_lose_the_python_preamble() -> None:
    message = (
        "Graph execution error:\n\nDetected at node functional_1/flatten_1/Reshape defined at "
        "(most recent call last):\n<stack traces unavailable>\nInput to reshape is a tensor "
        "with 3 values, but the requested shape has 12\n\t [[{{node functional_1/flatten_1/"
        "Reshape}}]] [Op:__inference_signature_wrapper_serve_34]"
    )
    error = tf.errors.InvalidArgumentError(None, None, message)
    assert runtime_error_message(error) == (
        "Input to reshape is a tensor with 3 values, but the requested shape has 12\n"
        "\t [[{{node functional_1/flatten_1/Reshape}}]]"
    )
    plain = tf.errors.InvalidArgumentError(None, None, "just this")
    assert runtime_error_message(plain) == "just this"
