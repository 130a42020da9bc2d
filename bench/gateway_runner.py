"""Runs the gateway for the benchmark: `serving_config/gateway.toml` as deployed, except the
addresses, the batching switch, metrics off (unless `--metrics`, for diagnosis), text logs at
WARNING (so neither skews timing), and no experiments nor store unless `--experiments` and
`--store-url` name them (the experiment rows).

    python -m bench.gateway_runner --backend 127.0.0.1:PORT --models-config F --batching on

`--metrics` and `--profile FILE` are for diagnosis runs only (`python -m bench
--gateway-metrics --gateway-profile DIR`).

Binds 127.0.0.1 on a free port and prints `ready <port> <batching settings as JSON>`; SIGTERM
or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import signal
from pathlib import Path

from server import logs
from server.gateway.server import create_server
from server.gateway.settings import GatewaySettings

BATCH_FIELDS = ("batching", "max_batch_size", "batch_max_wait_ms", "batch_max_in_flight")


async def serve(settings: GatewaySettings) -> None:
    gateway = await create_server(settings)
    used = {name: getattr(settings, name) for name in (*BATCH_FIELDS, "preprocess_workers")}
    if gateway.metrics_port is not None:
        used["metrics_port"] = gateway.metrics_port
    print(f"ready {gateway.port} {json.dumps(used)}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await gateway.stop(grace_s=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", required=True, help="host:port of the model host")
    parser.add_argument("--models-config", type=Path, required=True)
    parser.add_argument("--batching", choices=("on", "off"), required=True)
    parser.add_argument(
        "--metrics", action="store_true", help="serve /metrics on a free port (diagnosis only)"
    )
    parser.add_argument(
        "--profile", type=Path, help="diagnosis: cProfile the event loop's thread into this file"
    )
    parser.add_argument("--experiments", type=Path, help="experiments file (default: none)")
    parser.add_argument("--store-url", default="", help="experiment store (default: none)")
    args = parser.parse_args()
    settings = GatewaySettings(
        host="127.0.0.1",
        port=0,
        backend_target=args.backend,
        models_config_path=args.models_config,
        batching=args.batching == "on",
        metrics_host="127.0.0.1",
        metrics_port=0 if args.metrics else -1,
        report_host="127.0.0.1",
        report_port=-1,
        log_format="text",
        experiments_path=args.experiments or Path("/nonexistent/experiments.toml"),
        store_url=args.store_url,
    )
    logs.configure(json_lines=False, level=logging.WARNING)
    if args.profile is None:
        asyncio.run(serve(settings))
        return
    profiler = cProfile.Profile()
    try:
        profiler.runcall(asyncio.run, serve(settings))
    finally:
        profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
