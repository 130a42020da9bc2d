"""serving_config/ parses as TF Serving would read it and says what the stack relies on."""

from __future__ import annotations

import tomllib
from pathlib import Path

from google.protobuf import text_format
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
