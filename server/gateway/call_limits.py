"""Concurrent-call limits: one caller cannot take the whole gateway, nor can all of them together.

A call takes a slot for its whole duration (a stream until it ends). Over `max_calls` in flight,
or over `max_calls_per_client` in flight from one client (its address, without the port, so
every connection of one host counts together), the call is refused at once with
RESOURCE_EXHAUSTED and a message saying which limit and to retry with backoff. 0 turns a limit
off. The health service is never limited (probes must get through). Every call runs on the
server's one event loop, so the counts need no lock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from server.gateway.errors import LimitExceeded


def client_of(peer: str) -> str:
    """The client part of a gRPC peer string: `ipv4:10.0.0.7:5123` -> `ipv4:10.0.0.7`."""
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rsplit(":", 1)[0]
    return peer  # unix sockets and the like: the whole string


class CallLimits:
    def __init__(self, *, max_calls: int, max_calls_per_client: int) -> None:
        self._max_calls = max(0, max_calls)
        self._max_per_client = max(0, max_calls_per_client)
        self._in_flight = 0
        self._by_client: Counter[str] = Counter()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def slot(self, peer: str, what: str = "calls") -> Iterator[None]:
        """Holds one call's slot; raises LimitExceeded when none is free (`what` names the
        calls counted, in the message)."""
        client = client_of(peer)
        if self._max_calls and self._in_flight >= self._max_calls:
            raise LimitExceeded(
                f"the gateway is at its limit of {self._max_calls} concurrent {what}; retry "
                "with backoff"
            )
        if self._max_per_client and self._by_client[client] >= self._max_per_client:
            raise LimitExceeded(
                f"this client already has {self._max_per_client} {what} in flight, its limit; "
                "wait for answers before sending more"
            )
        self._in_flight += 1
        self._by_client[client] += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self._by_client[client] -= 1
            if not self._by_client[client]:
                del self._by_client[client]
