"""The host's reach (local-host extensions): it binds to loopback unless told otherwise, and
HandleReloadConfigRequest is local-only by default, can require a bearer token, or be off."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import model_management_pb2

from server import labels
from server.model_host import HostOptions, StartupError, create_server
from server.model_host.management import is_local_peer
from server.model_versions import BackendControl
from tests.model_host.helpers import (
    RunningHost,
    Stubs,
    add_version,
    assert_rpc_error,
    model_config,
    server_config,
    write_config,
)

StartHost = Callable[..., RunningHost]
TOKEN = "s3cret-token-for-tests"


def _outward_address() -> str:
    """An IPv4 address of this machine that is not loopback (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
        except OSError:
            pytest.skip("this machine has no non-loopback IPv4 address")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("this machine has no non-loopback IPv4 address")
    return address


@pytest.fixture
def two_versions(tmp_path: Path, templates: dict[int, Path]) -> Path:
    add_version(tmp_path / "cnn", templates[0])
    add_version(tmp_path / "cnn", templates[1])
    return write_config(
        tmp_path / "models.config",
        model_config("cnn", tmp_path / "cnn", policy="all { }", labels={"stable": 1}),
    )


def _moved(tmp_path: Path, version: int) -> model_management_pb2.ReloadConfigRequest:
    """The same config with `stable` moved to `version`."""
    config = server_config(
        model_config("cnn", tmp_path / "cnn", policy="all { }", labels={"stable": version})
    )
    return model_management_pb2.ReloadConfigRequest(config=config)


def _reload(
    stubs: Stubs, request: model_management_pb2.ReloadConfigRequest, **kwargs: object
) -> Callable[[], object]:
    return lambda: stubs.models.HandleReloadConfigRequest(request, timeout=30, **kwargs)


def _options(**fields: object) -> HostOptions:
    return HostOptions(allow_version_labels_for_unavailable_models=True, **fields)  # type: ignore[arg-type]


def test_the_host_listens_on_loopback_only_by_default(
    two_versions: Path, start_host: StartHost
) -> None:
    outward = _outward_address()
    running = start_host(two_versions, options=_options())
    assert running.states() == {2: "AVAILABLE", 1: "AVAILABLE"}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((outward, running.port), timeout=5).close()


def test_management_from_this_machine_needs_no_token_by_default(
    tmp_path: Path, two_versions: Path, start_host: StartHost
) -> None:
    running = start_host(two_versions, options=_options())
    _reload(running, _moved(tmp_path, 2))()
    # The rollout tools' own client, by name as `make serve` calls it.
    with BackendControl(f"localhost:{running.port}") as backend:
        backend.reload(_moved(tmp_path, 1).config)
        assert backend.available("cnn") == {1, 2}


def test_management_from_elsewhere_needs_a_token(
    tmp_path: Path, two_versions: Path, start_host: StartHost
) -> None:
    outward = _outward_address()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    for options, allowed in (
        (_options(), False),
        (_options(management_token_file=token_file), True),
    ):
        running = start_host(two_versions, address="0.0.0.0", options=options)
        with grpc.insecure_channel(f"{outward}:{running.port}") as channel:
            remote = Stubs(channel)
            assert remote.states() == {2: "AVAILABLE", 1: "AVAILABLE"}
            call = _reload(
                remote, _moved(tmp_path, 2), metadata=[("authorization", f"Bearer {TOKEN}")]
            )
            if allowed:
                call()
            else:
                assert_rpc_error(
                    call,
                    grpc.StatusCode.PERMISSION_DENIED,
                    "HandleReloadConfigRequest without a token is accepted from this machine "
                    "only; start the model host with --management_token_file to manage it from "
                    "elsewhere",
                )


def test_a_management_token_is_required_when_configured(
    tmp_path: Path, two_versions: Path, start_host: StartHost
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    running = start_host(two_versions, options=_options(management_token_file=token_file))
    missing = (
        "HandleReloadConfigRequest on this model host needs metadata "
        "'authorization: Bearer <token>' with the token of its --management_token_file"
    )
    request = _moved(tmp_path, 2)
    assert_rpc_error(_reload(running, request), grpc.StatusCode.UNAUTHENTICATED, missing)
    assert_rpc_error(
        _reload(running, request, metadata=[("authorization", f"Basic {TOKEN}")]),
        grpc.StatusCode.UNAUTHENTICATED,
        missing,
    )
    assert_rpc_error(
        _reload(running, request, metadata=[("authorization", "Bearer not-the-token")]),
        grpc.StatusCode.PERMISSION_DENIED,
        "the bearer token is not this model host's management token",
    )
    # Nothing was applied by the refused calls; the right token is.
    assert running.host.core.applied_config is not None
    assert (
        running.host.core.applied_config.model_config_list.config[0].version_labels["stable"] == 1
    )
    _reload(running, request, metadata=[("authorization", f"Bearer {TOKEN}")])()
    assert (
        running.host.core.applied_config.model_config_list.config[0].version_labels["stable"] == 2
    )
    # Reading is not management: GetModelStatus needs no token.
    assert running.states() == {2: "AVAILABLE", 1: "AVAILABLE"}


def test_management_can_be_turned_off(
    tmp_path: Path, two_versions: Path, start_host: StartHost
) -> None:
    running = start_host(two_versions, options=_options(enable_model_management=False))
    assert_rpc_error(
        _reload(running, _moved(tmp_path, 2)),
        grpc.StatusCode.PERMISSION_DENIED,
        "HandleReloadConfigRequest is turned off on this model host "
        "(--enable_model_management=false); change its --model_config_file instead",
    )
    assert running.host.core.applied_config is not None
    assert (
        running.host.core.applied_config.model_config_list.config[0].version_labels["stable"] == 1
    )
    assert running.states() == {2: "AVAILABLE", 1: "AVAILABLE"}


@pytest.mark.parametrize("content", ["", "\n\n", "one\ntwo\n", "has space\n"])
def test_an_unusable_token_file_stops_startup(
    tmp_path: Path, two_versions: Path, content: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(content)
    with pytest.raises(StartupError, match="must hold exactly one token"):
        create_server(two_versions, options=_options(management_token_file=token_file))
    with pytest.raises(StartupError, match="cannot read the management token file"):
        create_server(two_versions, options=_options(management_token_file=tmp_path / "nope"))


@pytest.mark.parametrize(
    ("peer", "local"),
    [
        ("ipv4:127.0.0.1:5000", True),
        ("ipv4:127.8.9.10:5000", True),
        ("ipv6:%5B::1%5D:5000", True),
        ("ipv6:[::1]:5000", True),
        ("ipv6:%5B::ffff:127.0.0.1%5D:5000", True),
        ("unix:/tmp/host.sock", True),
        ("ipv4:192.0.2.7:5000", False),
        ("ipv6:%5B2001:db8::1%5D:5000", False),
        ("ipv6:%5B::ffff:192.0.2.7%5D:5000", False),
        ("", False),
        ("nonsense", False),
    ],
)
def test_local_peers(peer: str, local: bool) -> None:
    assert is_local_peer(peer) is local


def test_the_label_and_rollout_tools_send_the_token_from_a_file(
    tmp_path: Path,
    two_versions: Path,
    start_host: StartHost,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    running = start_host(two_versions, options=_options(management_token_file=token_file))
    running.wait_states({1: "AVAILABLE", 2: "AVAILABLE"})
    move = [
        "set",
        "--model",
        "cnn",
        "--label",
        "stable",
        "--version",
        "2",
        "--config",
        str(two_versions),
        "--backend",
        f"127.0.0.1:{running.port}",
    ]
    assert labels.main(move) == 1
    assert "refused the new config" in capsys.readouterr().err
    assert labels.main([*move, "--backend-token-file", str(token_file)]) == 0
    assert "label 'stable' -> version 2" in capsys.readouterr().out
    assert labels.labels(two_versions, "cnn") == {"stable": 2}
    (tmp_path / "bad").write_text("two\ntokens\n")
    assert labels.main([*move, "--backend-token-file", str(tmp_path / "bad")]) == 1
    assert "exactly one token" in capsys.readouterr().err
