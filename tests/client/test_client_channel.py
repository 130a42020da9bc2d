"""Channel behaviour: deadlines, retries through the service config, message size limits,
credentials, and the settings the client validates."""

from __future__ import annotations

import json
import time

import grpc
import pytest
from imgclf_client import (
    Client,
    DeadlineExceeded,
    InvalidInput,
    ResourceExhausted,
    ServerError,
    Unavailable,
)

from tests.client.fakes import Connect, FakeClassifier, Server

UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, "model is loading")
MIB = 1024 * 1024


async def test_the_default_deadline_reaches_the_server(
    connect: Connect, servicer: FakeClassifier
) -> None:
    await connect(timeout=7.0).classify(b"image", model="cnn")
    assert 6.0 < servicer.calls[0].time_remaining < 7.1


async def test_the_default_deadline_expires(connect: Connect, servicer: FakeClassifier) -> None:
    servicer.delay = 5.0
    client = connect(timeout=0.2)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as raised:
        await client.classify(b"image", model="cnn")
    assert raised.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2.0


async def test_a_per_call_timeout_overrides_the_default(
    connect: Connect, servicer: FakeClassifier
) -> None:
    servicer.delay = 5.0
    client = connect(timeout=30.0)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await client.classify(b"image", model="cnn", timeout=0.2)
    with pytest.raises(DeadlineExceeded):
        await client.list_models(timeout=0.1)
    with pytest.raises(DeadlineExceeded):
        await client.get_model("cnn", timeout=0.1)
    assert time.monotonic() - started < 3.0


async def test_timeout_none_means_no_deadline(connect: Connect, servicer: FakeClassifier) -> None:
    servicer.delay = 0.3
    result = await connect(timeout=0.1).classify(b"image", model="cnn", timeout=None)
    assert result.version == 4
    assert servicer.calls[0].time_remaining > 1e6
    servicer.reset()
    await connect(timeout=None).list_models()
    assert servicer.calls[0].time_remaining > 1e6


async def test_unavailable_is_retried(connect: Connect, servicer: FakeClassifier) -> None:
    servicer.failures += [UNAVAILABLE, UNAVAILABLE]
    result = await connect().classify(b"image", model="cnn")
    assert result.top.name == "truck"
    assert len(servicer.requests("Classify")) == 3


async def test_large_images_are_retried_too(connect: Connect, servicer: FakeClassifier) -> None:
    servicer.failures += [UNAVAILABLE, UNAVAILABLE]
    await connect().classify(bytes(MIB), model="cnn")
    assert len(servicer.requests("Classify")) == 3


async def test_every_method_is_retried(connect: Connect, servicer: FakeClassifier) -> None:
    client = connect()
    servicer.failures += [UNAVAILABLE]
    await client.list_models()
    servicer.failures += [UNAVAILABLE]
    await client.get_model("cnn")
    assert [call.method for call in servicer.calls] == ["ListModels"] * 2 + ["GetModel"] * 2


async def test_retries_stop_after_max_attempts(connect: Connect, servicer: FakeClassifier) -> None:
    servicer.failures += [UNAVAILABLE] * 10
    with pytest.raises(Unavailable, match="model is loading"):
        await connect(max_attempts=3).classify(b"image", model="cnn")
    assert len(servicer.calls) == 3


async def test_max_attempts_1_disables_retries(connect: Connect, servicer: FakeClassifier) -> None:
    servicer.failures += [UNAVAILABLE]
    with pytest.raises(Unavailable):
        await connect(max_attempts=1).classify(b"image", model="cnn")
    assert len(servicer.calls) == 1


@pytest.mark.parametrize(
    "code",
    [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN],
)
async def test_other_codes_are_not_retried(
    connect: Connect, servicer: FakeClassifier, code: grpc.StatusCode
) -> None:
    servicer.failures += [(code, "no")] * 3
    with pytest.raises(ServerError) as raised:
        await connect().classify(b"image", model="cnn")
    assert raised.value.code is code
    assert len(servicer.calls) == 1


async def test_images_over_4_mib_go_through_by_default(
    connect: Connect, servicer: FakeClassifier
) -> None:
    await connect().classify(bytes(5 * MIB), model="cnn")
    assert len(servicer.requests("Classify")[0].encoded) == 5 * MIB


async def test_the_send_limit_is_checked_before_sending(
    connect: Connect, servicer: FakeClassifier
) -> None:
    with pytest.raises(ResourceExhausted):
        await connect(max_message_bytes=1024).classify(bytes(2048), model="cnn")
    assert servicer.calls == []


async def test_the_receive_limit_applies_to_responses(
    connect: Connect, servicer: FakeClassifier
) -> None:
    with pytest.raises(ResourceExhausted):
        await connect(max_message_bytes=64).list_models()
    assert len(servicer.calls) == 1


async def test_channel_credentials(connect: Connect, server: Server) -> None:
    credentials = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    client = connect(server.local_credentials_target, credentials=credentials)
    assert (await client.classify(b"image", model="cnn")).version == 4


async def test_secure_fails_against_a_plaintext_server(connect: Connect, target: str) -> None:
    with pytest.raises(Unavailable):
        await connect(target, secure=True, max_attempts=1).classify(b"image", model="cnn")


def test_channel_options() -> None:
    with Client("localhost:1", max_message_bytes=MIB, max_attempts=3) as client:
        options = dict(client.channel_options)
    assert options["grpc.max_send_message_length"] == MIB
    assert options["grpc.max_receive_message_length"] == MIB
    assert options["grpc.per_rpc_retry_buffer_size"] == MIB
    (method,) = json.loads(options["grpc.service_config"])["methodConfig"]
    assert method["name"] == [
        {"service": "imgclf.v1.Classifier", "method": name}
        for name in ("Classify", "ListModels", "GetModel", "Compare", "Feedback")
    ] + [
        {"service": "imgclf.v1.Experiments", "method": name}
        for name in ("ListExperiments", "GetExperimentReport")
    ]
    # Admin calls change state and are never retried.
    assert all(entry["service"] != "imgclf.v1.Admin" for entry in method["name"])
    assert method["retryPolicy"]["maxAttempts"] == 3
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]


def test_extra_options_override_the_clients_own() -> None:
    extra = [("grpc.max_send_message_length", 10), ("grpc.primary_user_agent", "test")]
    with Client("localhost:1", options=extra) as client:
        options = dict(client.channel_options)
    assert options["grpc.max_send_message_length"] == 10
    assert options["grpc.max_receive_message_length"] == 32 * MIB
    assert options["grpc.primary_user_agent"] == "test"


def test_no_retry_policy_with_one_attempt() -> None:
    with Client("localhost:1", max_attempts=1) as client:
        config = json.loads(dict(client.channel_options)["grpc.service_config"])
    assert "retryPolicy" not in config["methodConfig"][0]


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 0}, {"timeout": -1}, {"max_attempts": 0}, {"max_attempts": 6},
     {"max_message_bytes": 0}],
)  # fmt: skip
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        Client("localhost:1", **kwargs)  # type: ignore[arg-type]


def test_defaults() -> None:
    with Client() as client:
        assert (client.target, client.timeout) == ("localhost:50051", 10.0)
        assert repr(client) == "Client(target='localhost:50051', timeout=10.0)"
