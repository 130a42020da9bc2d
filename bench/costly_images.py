"""Small files that are costly to decode, made on the spot (nothing large is committed).

Used by the attack row of `make bench` and by the gateway's decode-budget tests:

- `scan_bomb`: a progressive JPEG of many tiny scans. Each scan is a few bytes (one end-of-band
  run covers every block) but the decoder visits every block of the image in every scan, so the
  CPU time grows with width x height x scans while the file stays small.
- `ico_with_large_png`: an ICO whose directory announces a small icon but whose embedded PNG is
  huge (a run of zero rows compresses about 1000:1).
- `float_tiff`: a deflate-compressed TIFF of 32-bit float samples, 4 bytes per pixel once decoded.
- `empty_chunk_png`: a 1x1 PNG padded with many empty ancillary chunks, slow to parse.
- `zero_png`: a large all-zero PNG, a few KB per megapixel, that needs its full size to decode.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

_EOBRUN_MAX = 2**15 - 1  # symbol 0xE0 (EOBRUN class 14) with 14 extra bits
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def scan_bomb(width: int = 4096, height: int = 4096, scans: int = 2000) -> bytes:
    """A valid grayscale progressive JPEG with one DC scan and `scans` identical AC scans."""
    blocks = -(-width // 8) * -(-height // 8)
    out = bytearray(b"\xff\xd8")
    out += _segment(0xDB, b"\x00" + bytes([1] * 64))  # quantisation table 0, all ones
    out += _segment(0xC2, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    # One Huffman code ("0", one bit) per table: DC difference category 0, and EOBRUN class 14.
    out += _segment(0xC4, b"\x00" + _one_code_table(0x00))
    out += _segment(0xC4, b"\x10" + _one_code_table(0xE0))
    out += _segment(0xDA, b"\x01\x01\x00\x00\x00\x00")  # DC first scan
    out += _bits_to_bytes("0" * blocks)
    ac_scan = _segment(0xDA, b"\x01\x01\x00\x01\x3f\x00")  # AC 1..63 first scan, Al = 0
    runs: list[str] = []
    left = blocks
    while left > 0:
        run = min(left, _EOBRUN_MAX)
        runs.append("0" + format(run - 2**14, "014b") if run >= 2**14 else _short_run(run))
        left -= run
    ac_data = _bits_to_bytes("".join(runs))
    for _ in range(scans):
        out += ac_scan + ac_data
    out += b"\xff\xd9"
    return bytes(out)


def ico_with_large_png(side: int = 13_000, *, header_only: bool = False) -> bytes:
    """An ICO announcing a 256x256 icon whose PNG payload is `side` x `side` RGBA.

    `header_only` leaves out the pixel data (the PNG stops after its header): as costly for a
    decoder that allocates before it reads, and made in no time.
    """
    png = zero_png(side, side)[:33] if header_only else zero_png(side, side)
    directory = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 6 + 16)
    return directory + entry + png


def float_tiff(side: int = 8000) -> bytes:
    """A `side` x `side` TIFF of 32-bit float zeros, deflate-compressed."""
    buffer = io.BytesIO()
    Image.new("F", (side, side)).save(buffer, format="TIFF", compression="tiff_adobe_deflate")
    return buffer.getvalue()


def empty_chunk_png(chunks: int = 200_000) -> bytes:
    """A 1x1 grey PNG with `chunks` empty private ancillary chunks before its image data."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    padding = _chunk(b"prVt", b"") * chunks
    pixels = _chunk(b"IDAT", zlib.compress(b"\x00\x80"))
    return _PNG_SIGNATURE + header + padding + pixels + _chunk(b"IEND", b"")


def zero_png(width: int, height: int, *, rgba: bool = True) -> bytes:
    """A `width` x `height` PNG of zeros, RGBA (4 bytes a pixel decoded) or grayscale (1)."""
    color_type, channels = (6, 4) if rgba else (0, 1)
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0))
    compressor = zlib.compressobj(9)
    row = bytes(1 + width * channels)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return _PNG_SIGNATURE + header + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _one_code_table(symbol: int) -> bytes:
    return bytes([1] + [0] * 15) + bytes([symbol])


def _short_run(run: int) -> str:
    # EOBRUN class r covers 2**r .. 2**(r+1)-1 with r extra bits; only class 14 has a code here,
    # so a last run under 2**14 is padded up to it (the decoder stops at the scan's end anyway).
    return "0" + format(0, "014b")


def _bits_to_bytes(bits: str) -> bytes:
    bits += "1" * (-len(bits) % 8)
    raw = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    return raw.replace(b"\xff", b"\xff\x00")
