"""`python -m server.model_host`: the local model host, with tensorflow_model_server's flags.

    python -m server.model_host --port=8500 --model_config_file=serving_config/models.config \\
        --model_config_file_poll_wait_seconds=2 --file_system_poll_wait_seconds=1 \\
        --allow_version_labels_for_unavailable_models=true

Flags take `--flag=value` or `--flag value`; booleans also take a bare `--flag`. Flags of
tensorflow_model_server that do not apply here (`--rest_api_port`, batching, ...) are not
accepted, except `--rest_api_port=0`. SIGTERM or SIGINT drains in-flight RPCs for
`--grace_period_seconds` and exits 0; a failed startup exits 255 like tensorflow_model_server.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from server import logs
from server.model_host.options import HostOptions, parse_channel_arguments
from server.model_host.server import StartupError, create_server

log = logging.getLogger("server.model_host")

DEFAULT_PORT = 8500
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parser() -> argparse.ArgumentParser:
    defaults = HostOptions()
    parser = argparse.ArgumentParser(
        prog="python -m server.model_host",
        description="Local stand-in for tensorflow_model_server (TF Serving's gRPC API).",
    )
    add = parser.add_argument
    add("--port", type=int, default=DEFAULT_PORT, help="gRPC port (default 8500)")
    add(
        "--address",
        default="127.0.0.1",
        help="local-host extension: address to bind (default 127.0.0.1, this machine only; "
        "[::] or 0.0.0.0 for every interface)",
    )
    add("--model_config_file", type=Path, help="text-format ModelServerConfig to serve")
    add(
        "--model_config_file_poll_wait_seconds",
        type=float,
        default=defaults.model_config_file_poll_wait_seconds,
        help="seconds between re-reads of --model_config_file; 0 reads it once",
    )
    add("--model_name", default="default", help="single-model mode: the model's name")
    add("--model_base_path", help="single-model mode: the model's base path")
    add(
        "--file_system_poll_wait_seconds",
        type=float,
        default=defaults.file_system_poll_wait_seconds,
        help="seconds between scans for new versions; 0 scans once",
    )
    add(
        "--allow_version_labels_for_unavailable_models",
        type=_bool,
        nargs="?",
        const=True,
        default=defaults.allow_version_labels_for_unavailable_models,
        help="let new labels point at versions that are not AVAILABLE yet",
    )
    add("--max_num_load_retries", type=int, default=defaults.max_num_load_retries)
    add("--load_retry_interval_micros", type=int, default=defaults.load_retry_interval_micros)
    add("--saved_model_tags", default=",".join(defaults.saved_model_tags))
    add(
        "--enable_signature_method_name_check",
        type=_bool,
        nargs="?",
        const=True,
        default=defaults.enable_signature_method_name_check,
    )
    add("--grpc_max_threads", type=int, default=defaults.grpc_max_threads)
    add(
        "--grpc_channel_arguments",
        default="",
        help="comma-separated key=value gRPC server arguments, e.g. "
        "grpc.max_receive_message_length=134217728",
    )
    add(
        "--enable_model_management",
        type=_bool,
        nargs="?",
        const=True,
        default=defaults.enable_model_management,
        help="local-host extension: serve HandleReloadConfigRequest (false refuses it)",
    )
    add(
        "--management_token_file",
        type=Path,
        default=defaults.management_token_file,
        help="local-host extension: HandleReloadConfigRequest then needs metadata "
        "'authorization: Bearer <the token in this file>'; without it, only callers on this "
        "machine may reload the config",
    )
    add("--rest_api_port", type=int, default=0, help="must be 0: the host serves gRPC only")
    add("--grace_period_seconds", type=float, default=5.0, help="drain time on SIGTERM")
    add("--log_format", choices=("text", "json"), default="text")
    add("--log_level", default="INFO")
    return parser


def options_from(args: argparse.Namespace) -> HostOptions:
    """The HostOptions the parsed flags describe."""
    return HostOptions(
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
        allow_version_labels_for_unavailable_models=args.allow_version_labels_for_unavailable_models,
        max_num_load_retries=args.max_num_load_retries,
        load_retry_interval_micros=args.load_retry_interval_micros,
        saved_model_tags=tuple(t for t in args.saved_model_tags.split(",") if t),
        enable_signature_method_name_check=args.enable_signature_method_name_check,
        grpc_max_threads=args.grpc_max_threads,
        grpc_channel_arguments=parse_channel_arguments(args.grpc_channel_arguments),
        enable_model_management=args.enable_model_management,
        management_token_file=args.management_token_file,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.rest_api_port:
        parser.error("--rest_api_port: the local model host serves gRPC only; use 0")
    if args.model_config_file is None and not args.model_base_path:
        parser.error("one of --model_config_file or --model_base_path is required")
    try:
        options = options_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    logs.configure(args.log_format == "json", getattr(logging, args.log_level.upper(), 20))

    try:
        host, _ = create_server(
            args.model_config_file,
            port=args.port,
            address=args.address,
            model_name=args.model_name,
            model_base_path=args.model_base_path,
            options=options,
        )
    except StartupError as exc:
        print(f"Failed to start server. Error: {exc}", file=sys.stderr)
        return 255

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, draining", signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    while not stop_requested.wait(0.5):
        pass
    host.stop(args.grace_period_seconds).wait()
    log.info("model host stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
