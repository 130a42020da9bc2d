"""A list of byte strings in one file (4-byte big-endian length before each), so the load
generator reads precomputed request bodies without any protobuf or TensorFlow import."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

_LENGTH = struct.Struct(">I")


def write_blobs(path: Path, blobs: Iterable[bytes]) -> int:
    """Writes `blobs` to `path`; returns how many."""
    count = 0
    with open(path, "wb") as out:
        for blob in blobs:
            out.write(_LENGTH.pack(len(blob)))
            out.write(blob)
            count += 1
    return count


def read_blobs(path: str | Path) -> list[bytes]:
    """The byte strings `write_blobs` wrote, in order."""
    data = Path(path).read_bytes()
    blobs, offset = [], 0
    while offset < len(data):
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        blobs.append(data[offset : offset + length])
        offset += length
    return blobs
