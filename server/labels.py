"""Moves a version label safely: `python -m server.labels set --model M --label L --version N`.

TF Serving refuses a label on a version that is not loaded, and a config reload replaces the
whole config. So this tool checks that the version is AVAILABLE on the backend, rewrites
`models.config` atomically (keeping its leading comment block) and pushes the same config to the
backend with `ModelService.HandleReloadConfigRequest`. A backend that also polls the file reads
the same content, so the two ways never disagree.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import grpc
from google.protobuf import text_format
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


class LabelError(Exception):
    """The label cannot be moved; the message says why."""


def read_config(path: Path) -> tuple[list[str], model_server_config_pb2.ModelServerConfig]:
    """The file's leading comment lines and its parsed config."""
    text = path.read_text()
    header: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    return header, text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def write_config(
    path: Path, header: list[str], config: model_server_config_pb2.ModelServerConfig
) -> None:
    body = text_format.MessageToString(config)
    text = "\n".join(header) + ("\n" if header else "") + body
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


def available_versions(channel: grpc.Channel, model: str, timeout: float) -> set[int]:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=model))
    response = stub.GetModelStatus(request, timeout=timeout)
    return {int(v.version) for v in response.model_version_status if v.state == AVAILABLE}


def set_label(
    config_path: Path, backend: str, model: str, label: str, version: int, timeout: float = 30.0
) -> None:
    header, config = read_config(config_path)
    entries = [c for c in config.model_config_list.config if c.name == model]
    if not entries:
        names = ", ".join(c.name for c in config.model_config_list.config)
        raise LabelError(f"model '{model}' is not in {config_path} (models: {names})")
    with grpc.insecure_channel(backend) as channel:
        try:
            loaded = available_versions(channel, model, timeout)
        except grpc.RpcError as error:
            raise LabelError(f"cannot ask {backend} about '{model}': {error.details()}") from error
        if version not in loaded:
            raise LabelError(
                f"version {version} of '{model}' is not AVAILABLE on {backend} "
                f"(available: {sorted(loaded) or 'none'}); publish it and wait for it to load"
            )
        entries[0].version_labels[label] = version
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        try:
            stub.HandleReloadConfigRequest(
                model_management_pb2.ReloadConfigRequest(config=config), timeout=timeout
            )
        except grpc.RpcError as error:
            raise LabelError(f"{backend} refused the new config: {error.details()}") from error
    write_config(config_path, header, config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.labels", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    move = commands.add_parser("set", help="point a label at a loaded version")
    move.add_argument("--model", required=True)
    move.add_argument("--label", required=True)
    move.add_argument("--version", type=int, required=True)
    move.add_argument("--config", type=Path, default=Path("serving_config/models.config"))
    move.add_argument("--backend", default="localhost:8500")
    args = parser.parse_args(argv)
    try:
        set_label(args.config, args.backend, args.model, args.label, args.version)
    except LabelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{args.model}: label '{args.label}' -> version {args.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
