"""Request bytes that do not parse: the call is answered INVALID_ARGUMENT like any bad field,
and is logged and counted like any other call, instead of failing inside gRPC (UNKNOWN, an
ERROR traceback, no access-log line, no metric).

`tolerant(deserializer)` parses as the generated code would and hands a `MalformedMessage` to
the handler in place of the request when the bytes are not a valid message (bad wire format,
invalid UTF-8 in a string field...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

MAX_DETAIL_LENGTH = 200


@dataclass(frozen=True)
class MalformedMessage:
    """Stands for a request whose bytes did not parse."""

    type_name: str
    detail: str

    @property
    def message(self) -> str:
        """What the caller is told."""
        return (
            f"the request is not a valid {self.type_name} message ({self.detail}); send it with "
            "a client generated from protos/ (bytes in the wrong format, or a string field that "
            "is not UTF-8)"
        )


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserializer`, returning a `MalformedMessage` where it would raise."""
    if deserializer is None:
        return None
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    type_name = str(getattr(descriptor, "full_name", "") or "request")

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except (DecodeError, ValueError, TypeError) as error:
            return MalformedMessage(type_name, str(error)[:MAX_DETAIL_LENGTH] or "unparseable")

    return parse
