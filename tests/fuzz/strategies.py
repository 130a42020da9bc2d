"""Hypothesis strategies for the four fuzz families: encoded images, raw pixels, selectors and
malformed messages.

Images come from three sources: mutations of the real files in shared/testdata/images/odd/,
images made with Pillow in every format it can write (every mode the format takes, odd sizes,
frames, compression options, EXIF orientations, random ICC profiles and palettes), and arbitrary
bytes, bare or behind a format's magic number; plus PNG files built chunk by chunk with valid
CRCs, so the fuzzer gets past the checksums into the decoder. Messages are built either from the
generated classes or field by field in protobuf's wire format, so the parser sees both random
noise and well-formed tags carrying the wrong types.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import assume
from hypothesis import strategies as st
from imgclf.v1 import classifier_pb2 as pb
from imgclf.v1 import experiments_pb2 as epb
from PIL import Image

ODD = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "images" / "odd"
MAX_SOURCE_BYTES = 600_000
"""Corpus files above this are left out (the 920 KB GIF of 40,000 frames): mutating them costs
seconds per case without reaching new code."""
MODEL = "cnn"
EXPERIMENT = "ab"
MAX_INT64 = 2**63 - 1
MAX_UINT32 = 2**32 - 1


def corpus() -> dict[str, bytes]:
    """The real files, by name; empty when shared/ is not beside the checkout."""
    if not ODD.is_dir():
        return {}
    files = {}
    for path in sorted(ODD.iterdir()):
        size = path.stat().st_size
        if path.is_file() and size <= MAX_SOURCE_BYTES:
            files[path.name] = path.read_bytes()
    return files


CORPUS = corpus()

# -- byte mutations -------------------------------------------------------------------------

EXTREME_FIELDS = (
    b"\x00\x00",
    b"\xff\xff",
    b"\x7f\xff",
    b"\x80\x00",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\x80\x00\x00\x00",
    b"\x00\x01\x00\x00",
)
"""Values written over header fields: zero, the largest, the sign bit (sizes, counts, offsets)."""


@st.composite
def mutated(draw: st.DrawFn, data: bytes, max_ops: int = 4) -> bytes:
    """`data` with one to `max_ops` corruptions: flipped or set bytes, a truncation, a zeroed,
    repeated, inserted or deleted run, an extreme value over a header field, or a splice."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, max_ops))):
        how = draw(
            st.sampled_from(
                ("flip", "set", "truncate", "zero", "repeat", "insert", "delete", "field", "splice")
            )
        )
        if not out:
            out += draw(st.binary(min_size=1, max_size=64))
            continue
        at = draw(st.integers(0, len(out) - 1))
        if how == "flip":
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "set":
            out[at] = draw(st.integers(0, 255))
        elif how == "truncate":
            del out[at:]
        elif how == "zero":
            end = min(len(out), at + draw(st.integers(1, 256)))
            out[at:end] = bytes(end - at)
        elif how == "repeat":
            run = bytes(out[at : at + draw(st.integers(1, 64))])
            out[at:at] = run * draw(st.integers(1, 64))
        elif how == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif how == "delete":
            del out[at : at + draw(st.integers(1, 256))]
        elif how == "field":
            value = draw(st.sampled_from(EXTREME_FIELDS))
            out[at : at + len(value)] = value
        else:
            other = CORPUS[draw(st.sampled_from(sorted(CORPUS)))] if CORPUS else b""
            start = draw(st.integers(0, max(0, len(other) - 1)))
            out[at:] = other[start : start + draw(st.integers(1, 4096))]
    return bytes(out)


def corpus_mutations() -> st.SearchStrategy[tuple[str, bytes]]:
    """(file name, corrupted copy of that real file)."""
    names = sorted(CORPUS)
    return st.sampled_from(names).flatmap(
        lambda name: st.tuples(st.just(name), mutated(CORPUS[name]))
    )


# -- images made with Pillow ----------------------------------------------------------------

WRITABLE_MODES: dict[str, tuple[str, ...]] = {
    "PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B"),
    "JPEG": ("1", "L", "RGB", "RGBX", "CMYK", "YCbCr"),
    "GIF": ("1", "L", "LA", "P", "RGB", "RGBA", "I", "F"),
    "BMP": ("1", "L", "P", "RGB", "RGBA"),
    "TIFF": (
        "1",
        "L",
        "LA",
        "P",
        "PA",
        "RGB",
        "RGBA",
        "RGBX",
        "CMYK",
        "YCbCr",
        "LAB",
        "I",
        "I;16",
        "I;16B",
        "F",
    ),
    "WEBP": ("L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "F"),
    "AVIF": ("L", "LA", "P", "RGB", "RGBA"),
    "ICO": ("1", "L", "LA", "P", "RGB", "RGBA"),
    "PPM": ("1", "L", "RGB", "I", "I;16", "F"),
    # Formats the gateway does not accept: they must be refused as clearly as a corrupt file.
    "TGA": ("L", "LA", "P", "RGB", "RGBA"),
    "PCX": ("1", "L", "P", "RGB"),
    "JPEG2000": ("L", "LA", "RGB", "RGBA"),
    "DDS": ("L", "LA", "RGB", "RGBA"),
    "SGI": ("L", "RGB", "RGBA"),
    "IM": ("L", "P", "RGB", "I", "F"),
    "QOI": ("RGB", "RGBA"),
    "XBM": ("1",),
    "MSP": ("1",),
    "SPIDER": ("F",),
    "BLP": ("P",),
}
MULTI_FRAME = frozenset({"PNG", "GIF", "TIFF", "WEBP"})
WITH_EXIF = frozenset({"JPEG", "PNG", "WEBP", "AVIF"})
WITH_ICC = frozenset({"JPEG", "PNG", "WEBP", "TIFF"})
ORIENTATION = 0x0112
TIFF_COMPRESSIONS: tuple[str | None, ...] = (
    None,
    "tiff_lzw",
    "tiff_deflate",
    "tiff_adobe_deflate",
    "packbits",
    "jpeg",
    "group3",
    "group4",
)


def _format_options(draw: st.DrawFn, fmt: str, mode: str) -> dict[str, Any]:
    if fmt == "JPEG":
        return {
            "quality": draw(st.integers(1, 100)),
            "progressive": draw(st.booleans()),
            "optimize": draw(st.booleans()),
            "subsampling": draw(st.sampled_from((-1, 0, 1, 2))),
            "restart_marker_blocks": draw(st.sampled_from((0, 0, 1, 7))),
        }
    if fmt == "PNG":
        return {"compress_level": draw(st.integers(0, 9)), "optimize": draw(st.booleans())}
    if fmt == "GIF":
        return {"interlace": draw(st.booleans()), "optimize": draw(st.booleans())}
    if fmt == "TIFF":
        allowed = [
            c
            for c in TIFF_COMPRESSIONS
            if (c not in ("group3", "group4") or mode == "1")
            and (c != "jpeg" or mode in ("L", "RGB", "CMYK", "YCbCr"))
        ]
        return {"compression": draw(st.sampled_from(allowed))}
    if fmt == "WEBP":
        return {
            "lossless": draw(st.booleans()),
            "quality": draw(st.integers(0, 100)),
            "method": draw(st.integers(0, 2)),
        }
    if fmt == "AVIF":
        return {"quality": draw(st.integers(0, 100)), "speed": 10}
    if fmt == "ICO":
        side = draw(st.sampled_from((16, 32, 48, 64, 256)))
        return {"sizes": [(side, side)], "bitmap_format": draw(st.sampled_from(("png", "bmp")))}
    if fmt == "TGA":
        return {"compression": draw(st.sampled_from((None, "tga_rle")))}
    if fmt == "JPEG2000":
        return {"irreversible": draw(st.booleans()), "num_resolutions": draw(st.integers(1, 3))}
    return {}


def _pixels(draw: st.DrawFn, mode: str, size: tuple[int, int]) -> Image.Image:
    """An image of `mode` and `size` whose raw bytes are noise, one value, or a ramp (for F
    and I modes that includes NaNs, infinities, denormals and extreme integers)."""
    length = len(Image.new(mode, (size[0], 1)).tobytes()) * size[1]
    kind = draw(st.sampled_from(("noise", "solid", "ramp")))
    if kind == "noise":
        seed = draw(st.integers(0, 2**32 - 1))
        data = np.random.default_rng(seed).bytes(length)
    elif kind == "solid":
        data = bytes([draw(st.integers(0, 255))]) * length
    else:
        data = (bytes(range(256)) * (length // 256 + 1))[:length]
    image = Image.frombytes(mode, size, data)
    if mode in ("P", "PA"):
        image.putpalette(draw(st.binary(min_size=3, max_size=768)))
    return image


def _size(draw: st.DrawFn, fmt: str) -> tuple[int, int]:
    side = st.one_of(st.integers(1, 40), st.integers(1, 300), st.sampled_from((1, 2, 3, 1500)))
    width, height = draw(side), draw(side)
    if width * height > 600_000:  # one thin side at most: cheap to make and to send
        height = min(height, 2)
    if fmt == "ICO":
        width, height = min(width, 256), min(height, 256)
    return width, height


@st.composite
def pillow_images(draw: st.DrawFn) -> tuple[str, bytes]:
    """(description, an image file Pillow wrote), possibly corrupted afterwards."""
    fmt = draw(st.sampled_from(sorted(WRITABLE_MODES)))
    mode = draw(st.sampled_from(WRITABLE_MODES[fmt]))
    size = _size(draw, fmt)
    image = _pixels(draw, mode, size)
    options = _format_options(draw, fmt, mode)
    if fmt in MULTI_FRAME and draw(st.booleans()):
        frames = [_pixels(draw, mode, size) for _ in range(draw(st.integers(1, 3)))]
        options |= {"save_all": True, "append_images": frames}
    if fmt in WITH_EXIF and draw(st.booleans()):
        exif = Image.Exif()
        exif[ORIENTATION] = draw(st.sampled_from((0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 65535)))
        options["exif"] = exif.tobytes()
    if fmt in WITH_ICC and draw(st.integers(0, 7)) == 0:
        options["icc_profile"] = draw(st.binary(min_size=1, max_size=512))
    written = _save(image, fmt, options)
    if written is None:
        written = _save(image, fmt, {})
    assume(written is not None)
    assert written is not None
    label = f"{fmt} {mode} {size[0]}x{size[1]} {sorted(k for k in options if k != 'append_images')}"
    if draw(st.integers(0, 2)) == 0:
        return label + " mutated", draw(mutated(written))
    return label, written


def _save(image: Image.Image, fmt: str, options: dict[str, Any]) -> bytes | None:
    out = io.BytesIO()
    try:
        image.save(out, format=fmt, **options)
    except (OSError, ValueError, TypeError, KeyError, SyntaxError):
        return None
    return out.getvalue()


# -- PNG built chunk by chunk ---------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CHUNK_TYPES = (
    b"IDAT", b"PLTE", b"tRNS", b"tEXt", b"zTXt", b"iTXt", b"iCCP", b"eXIf", b"gAMA", b"cHRM",
    b"sRGB", b"pHYs", b"sBIT", b"bKGD", b"hIST", b"tIME", b"acTL", b"fcTL", b"fdAT", b"IHDR",
    b"IEND", b"zzzz",
)  # fmt: skip


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _scanlines(draw: st.DrawFn, width: int, height: int, depth: int, colour: int) -> bytes:
    """Rows of the size the header implies, each behind a filter byte (valid or not)."""
    row = (width * PNG_CHANNELS.get(colour, 1) * depth + 7) // 8
    fill = draw(st.integers(0, 255))
    return b"".join(bytes([draw(st.integers(0, 5))]) + bytes([fill]) * row for _ in range(height))


@st.composite
def structured_pngs(draw: st.DrawFn) -> tuple[str, bytes]:
    """A PNG with a drawn header (any size, depth, colour type, interlace) and random chunks,
    every CRC right; IDAT holds zlib data (of noise, or of a plausible scanline layout)."""
    width = draw(st.one_of(st.integers(0, 64), st.sampled_from((2**31 - 1, MAX_UINT32, 100_000))))
    height = draw(st.one_of(st.integers(0, 64), st.sampled_from((2**31 - 1, MAX_UINT32, 100_000))))
    depth = draw(st.sampled_from((1, 2, 4, 8, 16, 0, 3, 255)))
    colour = draw(st.sampled_from((0, 2, 3, 4, 6, 1, 5, 7)))
    interlace = draw(st.sampled_from((0, 1, 2)))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    chunks = [png_chunk(b"IHDR", header)]
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(PNG_CHUNK_TYPES))
        if kind in (b"IDAT", b"zTXt", b"iCCP") and draw(st.booleans()):
            body = draw(st.binary(max_size=2048))
            if kind == b"IDAT" and draw(st.booleans()) and width * height <= 4096:
                body = _scanlines(draw, width, height, depth, colour)
            packed = zlib.compress(body)
            payload = packed if kind == b"IDAT" else b"k\x00\x00" + packed
        else:
            payload = draw(st.binary(max_size=256))
        chunks.append(png_chunk(kind, payload))
    if draw(st.integers(0, 3)):
        chunks.append(png_chunk(b"IEND", b""))
    label = f"PNG {width}x{height} depth {depth} colour {colour} interlace {interlace}"
    return label, PNG_SIGNATURE + b"".join(chunks)


# -- arbitrary bytes ------------------------------------------------------------------------

MAGIC = (
    b"\xff\xd8\xff",
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    PNG_SIGNATURE,
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"II+\x00\x08\x00\x00\x00",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"RIFF\xff\xff\xff\xffWEBPVP8L",
    b"\x00\x00\x00\x1cftypavif",
    b"\x00\x00\x00\x18ftypheic",
    b"\x00\x00\x01\x00",
    b"\x00\x00\x02\x00",
    b"P1",
    b"P4\n",
    b"P5\n",
    b"P6\n65535 65535\n255\n",
    b"P7\n",
    b"Pf\n",
    b"\x00\x00\x00\x0cjP  \r\n\x87\n",
    b"qoif",
    b"DDS ",
    b"8BPS",
    b"<svg",
    b"%!PS",
)


def arbitrary_images() -> st.SearchStrategy[tuple[str, bytes]]:
    """(description, bytes): noise, or noise behind a known magic number."""
    bare = st.binary(max_size=4096).map(lambda data: ("bytes", data))
    behind_magic = st.tuples(st.sampled_from(MAGIC), st.binary(max_size=4096)).map(
        lambda parts: (f"magic {parts[0][:12]!r}", parts[0] + parts[1])
    )
    return st.one_of(bare, behind_magic)


def encoded_images() -> st.SearchStrategy[tuple[str, bytes]]:
    """Every source of encoded images."""
    sources = [pillow_images(), structured_pngs(), arbitrary_images()]
    if CORPUS:
        sources.insert(0, corpus_mutations().map(lambda nd: (f"mutated {nd[0]}", nd[1])))
    return st.one_of(*sources)


# -- raw pixels -----------------------------------------------------------------------------

DIMENSION = st.one_of(
    st.integers(0, 64),
    st.integers(0, 4096),
    st.sampled_from((0, 1, 2**16, 2**24, 2**31 - 1, 2**31, MAX_UINT32)),
)
CHANNELS = st.one_of(st.integers(0, 5), st.sampled_from((255, 2**16, 2**31, MAX_UINT32)))
MAX_RAW_BYTES = 4 * 1024 * 1024


@st.composite
def raw_images(draw: st.DrawFn) -> pb.RawImage:
    """A RawImage with any declared size: the pixels match it exactly, miss or overshoot it by a
    few bytes, or are arbitrary (empty included)."""
    height, width, channels = draw(DIMENSION), draw(DIMENSION), draw(CHANNELS)
    declared = height * width * channels
    shape = draw(st.sampled_from(("exact", "off by some", "arbitrary")))
    if shape != "arbitrary" and declared <= MAX_RAW_BYTES:
        length = declared
        if shape == "off by some":
            length = max(0, declared + draw(st.integers(-16, 16).filter(lambda d: d != 0)))
        seed = draw(st.integers(0, 255))
        ramp = bytes(range(seed, 256))
        pixels = (ramp * (length // len(ramp) + 1))[:length]
    else:
        pixels = draw(st.binary(max_size=1024))
    return pb.RawImage(pixels=pixels, height=height, width=width, channels=channels)


def small_raw_image(seed: int = 0) -> pb.RawImage:
    """A valid 32x32 RGB image: cheap to send when the fuzz is about something else."""
    ramp = bytes(range(seed % 256, 256))
    data = (ramp * (32 * 32 * 3 // len(ramp) + 1))[: 32 * 32 * 3]
    return pb.RawImage(pixels=data, height=32, width=32, channels=3)


# -- selectors ------------------------------------------------------------------------------


def long_text(alphabet: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[str]:
    """One character repeated up to a million times (names far over any limit)."""
    chars = alphabet or st.sampled_from(("a", "é", "名", "\U0001f600", "\x00", "/", " "))
    return st.tuples(chars, st.sampled_from((129, 256, 257, 1000, 10_000, 100_000, 1_000_000))).map(
        lambda cn: cn[0] * cn[1]
    )


def names(*known: str) -> st.SearchStrategy[str]:
    """Known names and near misses, empty, unicode, control characters, very long."""
    near = [
        *known,
        *(k.upper() for k in known),
        *(f" {k}" for k in known),
        *(k + "\x00" for k in known),
    ]
    return st.one_of(
        st.sampled_from([*known, ""]),
        st.sampled_from(near or [""]),
        st.text(max_size=40),
        st.text(st.characters(codec="ascii"), max_size=40),
        long_text(),
    )


VERSIONS = st.one_of(
    st.integers(-3, 4),
    st.integers(-(2**63), MAX_INT64),
    st.sampled_from((MAX_INT64, -(2**63), 2**31, 2**32, 10**18)),
)
TOP_K = st.one_of(st.integers(0, 12), st.integers(0, MAX_UINT32))


@st.composite
def selectors(draw: st.DrawFn, *, experiments: bool = True) -> pb.ModelSelector:
    """A ModelSelector with any combination of name, version or label, and experiment."""
    selector = pb.ModelSelector(name=draw(names(MODEL)))
    choice = draw(st.sampled_from(("none", "version", "label")))
    if choice == "version":
        selector.version = draw(VERSIONS)
    elif choice == "label":
        selector.label = draw(names("stable", "canary", "latest"))
    if experiments and draw(st.integers(0, 3)) == 0:
        selector.experiment = draw(names(EXPERIMENT))
        if draw(st.booleans()):
            selector.ClearField("name")
            selector.ClearField("version_choice")
    return selector


OPTIONAL_TEXT = st.one_of(st.just(""), st.text(max_size=40), long_text())


@st.composite
def classify_requests(
    draw: st.DrawFn, image: st.SearchStrategy[pb.RawImage] | None = None
) -> pb.ClassifyRequest:
    request = pb.ClassifyRequest(
        raw=draw(image) if image is not None else small_raw_image(draw(st.integers(0, 255))),
        model=draw(selectors()),
        top_k=draw(TOP_K),
        routing_key=draw(OPTIONAL_TEXT),
        request_id=draw(OPTIONAL_TEXT),
    )
    return request


@st.composite
def compare_requests(draw: st.DrawFn) -> pb.CompareRequest:
    return pb.CompareRequest(
        raw=small_raw_image(draw(st.integers(0, 255))),
        models=draw(st.lists(selectors(), max_size=10)),
        top_k=draw(TOP_K),
        request_id=draw(OPTIONAL_TEXT),
    )


@st.composite
def feedback_requests(draw: st.DrawFn) -> pb.FeedbackRequest:
    """Feedback with any request id and any true class (the test may swap in a real id)."""
    request = pb.FeedbackRequest(request_id=draw(OPTIONAL_TEXT))
    which = draw(st.sampled_from(("index", "name", "none")))
    if which == "index":
        request.class_index = draw(st.one_of(st.integers(-2, 11), st.integers(-(2**31), 2**31 - 1)))
    elif which == "name":
        request.class_name = draw(names("cat", "dog", "airplane"))
    return request


# -- malformed messages ---------------------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    value &= 2**64 - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


FIELD_NUMBERS = st.one_of(st.integers(1, 8), st.sampled_from((0, 19000, 2**29 - 1, 2**29)))
INVALID_UTF8 = (
    b"\xff",
    b"\xc3",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x82",
    b"a\x80b",
    b"\xfe\xfe\xff\xff",
)


@st.composite
def wire_messages(draw: st.DrawFn, depth: int = 2) -> bytes:
    """Well-formed tags with any field number and wire type, carrying any payload: varints
    (overlong ones too), fixed widths, length-delimited runs (nested messages, invalid UTF-8,
    lengths that overrun), groups and the two wire types that do not exist."""
    out = bytearray()
    for _ in range(draw(st.integers(0, 6))):
        number, wire_type = draw(FIELD_NUMBERS), draw(st.integers(0, 7))
        out += varint((number << 3) | wire_type)
        if wire_type == 0:
            if draw(st.integers(0, 5)) == 0:
                out += b"\xff" * draw(st.integers(10, 12)) + b"\x01"
            else:
                out += varint(draw(st.integers(0, 2**64 - 1)))
        elif wire_type == 1:
            out += draw(st.binary(min_size=8, max_size=8))
        elif wire_type == 5:
            out += draw(st.binary(min_size=4, max_size=4))
        elif wire_type == 2:
            if depth > 0 and draw(st.booleans()):
                payload = draw(wire_messages(depth - 1))
            else:
                payload = draw(st.one_of(st.binary(max_size=64), st.sampled_from(INVALID_UTF8)))
            length = len(payload) + draw(st.sampled_from((0, 0, 0, 1, 100, 2**31)))
            out += varint(length) + payload
        elif wire_type in (3, 4) and draw(st.booleans()):
            out += draw(st.binary(max_size=8))
    return bytes(out)


def valid_messages() -> st.SearchStrategy[tuple[str, bytes]]:
    """(method name, a valid serialized request for it)."""
    return st.one_of(
        classify_requests().map(lambda r: ("Classify", r.SerializeToString())),
        compare_requests().map(lambda r: ("Compare", r.SerializeToString())),
        selectors(experiments=False).map(
            lambda s: ("GetModel", pb.GetModelRequest(model=s).SerializeToString())
        ),
        feedback_requests().map(lambda r: ("Feedback", r.SerializeToString())),
    )


@dataclass(frozen=True)
class Spliced:
    """A valid request whose string field is replaced by bytes that are not UTF-8."""

    method: str
    body: bytes


PLACEHOLDER = "QQQQQQQQ"


def invalid_utf8_messages() -> st.SearchStrategy[Spliced]:
    builders: list[tuple[str, Callable[[], bytes]]] = [
        (
            "Classify",
            lambda: pb.ClassifyRequest(
                raw=small_raw_image(), model=pb.ModelSelector(name=PLACEHOLDER)
            ).SerializeToString(),
        ),
        (
            "Classify",
            lambda: pb.ClassifyRequest(
                encoded=b"x", model=pb.ModelSelector(name="cnn"), request_id=PLACEHOLDER
            ).SerializeToString(),
        ),
        (
            "GetModel",
            lambda: pb.GetModelRequest(
                model=pb.ModelSelector(name="cnn", label=PLACEHOLDER)
            ).SerializeToString(),
        ),
        (
            "Feedback",
            lambda: pb.FeedbackRequest(request_id="x", class_name=PLACEHOLDER).SerializeToString(),
        ),
        (
            "Compare",
            lambda: pb.CompareRequest(
                raw=small_raw_image(), models=[pb.ModelSelector(experiment=PLACEHOLDER)]
            ).SerializeToString(),
        ),
    ]

    def splice(which: int, bad: bytes) -> Spliced:
        method, build = builders[which]
        # Same length as the placeholder, so no length prefix changes.
        replacement = (bad * len(PLACEHOLDER))[: len(PLACEHOLDER)]
        return Spliced(method, build().replace(PLACEHOLDER.encode(), replacement))

    return st.builds(splice, st.integers(0, len(builders) - 1), st.sampled_from(INVALID_UTF8))


# -- experiment definitions (Admin) ---------------------------------------------------------

FLOATS = st.one_of(
    st.floats(0, 100),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from((0.0, -0.0, 1.0, -1.0, 1e308, 5e-324)),
)


@st.composite
def experiment_definitions(draw: st.DrawFn, *, spare: str = EXPERIMENT) -> epb.Experiment:
    """An imgclf.v1.Experiment with any name (never `spare`, the experiment other tests route
    through), any arms, shadows and analysis settings, and the fields the gateway sets."""
    arm_names = names("stable", "canary", "a", "b")
    experiment = epb.Experiment(
        name=draw(names("fz", "fz.1", "fz_2-x").filter(lambda n: n != spare)),
        description=draw(OPTIONAL_TEXT),
        revision=draw(VERSIONS),
        ended=draw(st.booleans()),
    )
    for _ in range(draw(st.integers(0, 4))):
        experiment.arms.add(name=draw(arm_names), model=draw(selectors()), weight=draw(FLOATS))
    for _ in range(draw(st.integers(0, 2))):
        experiment.shadows.add(
            name=draw(arm_names), model=draw(selectors()), sample_rate=draw(FLOATS)
        )
    if draw(st.booleans()):
        experiment.analysis.alpha = draw(FLOATS)
        experiment.analysis.min_samples = draw(st.integers(0, MAX_UINT32))
        experiment.analysis.mixture_sd = draw(FLOATS)
    if draw(st.integers(0, 3)) == 0:
        experiment.started_at.CopyFrom(
            Timestamp(seconds=draw(st.integers(-(2**40), 2**40)), nanos=draw(st.integers(0, 10**9)))
        )
    return experiment
