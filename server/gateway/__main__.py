"""Runs the gateway: `python -m server.gateway` (settings: serving_config/gateway.toml + env)."""

from __future__ import annotations

import asyncio
import logging
import signal

from server import logs
from server.gateway.server import create_server
from server.gateway.settings import GatewaySettings


async def serve(settings: GatewaySettings) -> None:
    gateway = await create_server(settings)
    print(
        f"gateway ready on port {gateway.port}, metrics on {gateway.metrics_port} "
        f"(backend {settings.backend_target})",
        flush=True,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    logging.getLogger(__name__).info("draining for up to %.1f s", settings.grace_period_s)
    await gateway.stop()


def main() -> None:
    settings = GatewaySettings()
    logs.configure(settings.log_format == "json")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
