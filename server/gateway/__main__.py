"""Runs the gateway: `python -m server.gateway` (settings: serving_config/gateway.toml + env)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from server import logs
from server.gateway.server import create_server
from server.gateway.settings import GatewaySettings


async def serve(settings: GatewaySettings) -> None:
    gateway = await create_server(settings)
    print(
        f"gateway ready on port {gateway.port}, metrics on {gateway.metrics_port}, "
        f"reports on {gateway.report_port} "
        f"(backend {settings.backend_target})",
        flush=True,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log = logging.getLogger(__name__)
    log.info("stopping: NOT_SERVING for %.1f s, then draining", settings.drain_notice_s)
    await gateway.announce_drain()
    await asyncio.sleep(settings.drain_notice_s)
    log.info("draining for up to %.1f s", settings.grace_period_s)
    await gateway.stop()


def main() -> None:
    settings = GatewaySettings()
    logs.configure(settings.log_format == "json")
    asyncio.run(serve(settings))
    # Drained: exit now, even if a decode thread is still busy with an abandoned image (the
    # interpreter would otherwise wait for it past the grace period).
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
