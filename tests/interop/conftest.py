"""Fixtures for the interop tests: the real gateway and model host from tests/gateway, re-exported.

pytest only sees fixtures from a test's own conftest chain, so the session-scoped fixtures are
imported here by name (a non-root conftest may not use `pytest_plugins`). They are separate
registrations: when the whole suite runs, the interop tests start their own gateway.
"""

from tests.gateway.conftest import backend_port, channel, gateway, model_root, models_config, stub

__all__ = ["backend_port", "channel", "gateway", "model_root", "models_config", "stub"]
