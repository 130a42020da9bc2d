"""serving_config/ parses as TF Serving would read it and says what the stack relies on."""

from __future__ import annotations

import tomllib
from pathlib import Path

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from server.gateway.settings import GatewaySettings

CONFIG_DIR = Path(__file__).resolve().parents[2] / "serving_config"


def test_models_config_parses_with_labels_and_policy() -> None:
    config = text_format.Parse(
        (CONFIG_DIR / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    models = {c.name: c for c in config.model_config_list.config}
    assert "cnn" in models
    cnn = models["cnn"]
    assert cnn.model_platform == "tensorflow"
    assert cnn.base_path == "/models/cnn"
    assert cnn.model_version_policy.WhichOneof("policy_choice") is not None
    assert {"stable", "canary"} <= set(cnn.version_labels)


def test_gateway_settings_file_matches_the_settings_class() -> None:
    values = tomllib.loads((CONFIG_DIR / "gateway.toml").read_text())
    assert set(values) <= set(GatewaySettings.model_fields)
    settings = GatewaySettings(**values)
    assert settings.port == 50051
    assert settings.backend_target == "localhost:8500"


def test_every_setting_is_documented() -> None:
    for name, field in GatewaySettings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_environment_overrides_the_file(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("IMGCLF_GATEWAY_SETTINGS_FILE", str(CONFIG_DIR / "gateway.toml"))
    monkeypatch.setenv("IMGCLF_GATEWAY_PORT", "6000")
    assert GatewaySettings().port == 6000


def batching_parameters_class() -> type:
    """TF Serving's `BatchingParameters` message, by field name and type (its .proto is not in
    the tensorflow-serving-api wheel), so the file is checked by a real text-format parser."""
    wrappers = {"Int64Value": "max_batch_size batch_timeout_micros max_enqueued_batches "
                "num_batch_threads", "StringValue": "thread_pool_name"}  # fmt: skip
    file = descriptor_pb2.FileDescriptorProto(
        name="batching_check.proto",
        package="check",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = file.message_type.add(name="BatchingParameters")
    number = 1
    for wrapper, names in wrappers.items():
        for name in names.split():
            message.field.add(
                name=name,
                number=number,
                type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                type_name=f".google.protobuf.{wrapper}",
            )
            number += 1
    message.field.add(
        name="allowed_batch_sizes",
        number=number,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    )
    message.field.add(
        name="pad_variable_length_inputs",
        number=number + 1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("check.BatchingParameters"))


def test_batching_config_parses_as_tf_serving_reads_it() -> None:
    parameters = text_format.Parse(
        (CONFIG_DIR / "batching.config").read_text(), batching_parameters_class()()
    )
    assert parameters.max_batch_size.value == GatewaySettings().max_batch_size
    assert 0 < parameters.batch_timeout_micros.value <= 5000
    assert parameters.num_batch_threads.value >= 1
