"""What the gateway tells a sender about an image it cannot decode: the format the bytes
announce (for messages only, never to choose a decoder) and the messages for unidentified,
unsupported and corrupt files, each saying what would be accepted instead."""

from __future__ import annotations

from typing import Final

from server.gateway.image_limits import ImageLimits

_DISPLAY_NAMES: Final = {"WEBP": "WebP", "PPM": "PNM (PBM/PGM/PPM)"}
_HEIF_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_VARIANT_EXAMPLES: Final = {
    "JPEG": " (such as 12-bit or lossless JPEG)",
    "TIFF": " (such as an unusual sample layout)",
}


def accepted(limits: ImageLimits) -> str:
    return _one_of([display_name(name) for name in limits.formats])


def _one_of(names: list[str]) -> str:
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def display_name(pillow_format: str) -> str:
    return _DISPLAY_NAMES.get(pillow_format, pillow_format)


def kind_of(data: bytes, pillow_format: str | None) -> str | None:
    """The format's name: the one Pillow identified, else the one the first bytes announce."""
    return display_name(pillow_format) if pillow_format else sniff(data)


def sniff(data: bytes) -> str | None:
    """Name the format the first bytes announce, for error messages only."""
    head = data[:512]
    if head[4:8] == b"ftyp":
        brands = {head[i : i + 4] for i in range(8, min(len(head), 40), 4)}
        if brands & {b"avif", b"avis"}:
            return "AVIF"
        return "HEIC/HEIF" if brands & _HEIF_BRANDS else None
    signatures = (
        (b"\xff\xd8\xff", "JPEG"),
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"GIF8", "GIF"),
        (b"BM", "BMP"),
        (b"II*\x00", "TIFF"),
        (b"MM\x00*", "TIFF"),
        (b"II+\x00", "TIFF"),
        (b"MM\x00+", "TIFF"),
        (b"\x00\x00\x01\x00", "ICO"),
        (b"%PDF", "PDF"),
        (b"8BPS", "PSD"),
        (b"\xff\x4f\xff\x51", "JPEG 2000"),
        (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    )
    for magic, name in signatures:
        if head.startswith(magic):
            return name
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP"
    if b"<svg" in head.lower():
        return "SVG"
    return None


def unidentified(data: bytes, limits: ImageLimits) -> str:
    kind = sniff(data)
    send = f"send {accepted(limits)}"
    if kind == "HEIC/HEIF":
        return (
            "HEIC/HEIF images are not supported; convert the photo to JPEG (on an iPhone: "
            f"Settings > Camera > Formats > Most Compatible) or {send}"
        )
    if kind == "SVG":
        return f"SVG is a vector format and is not supported; render it to PNG first, or {send}"
    if kind in {display_name(name) for name in limits.formats}:
        alternatives = _one_of(list(dict.fromkeys((kind, "JPEG", "PNG"))))
        return (
            f"the data starts like a {kind} file, but its header is corrupt or uses a variant "
            f"this server cannot decode{_VARIANT_EXAMPLES.get(kind, '')}; save it again as a "
            f"standard 8-bit {alternatives}"
        )
    if kind is not None:
        return f"{kind} files are not supported; {send}"
    return f"not a supported image format; {send} file bytes, or raw pixels"


def undecodable(kind: str | None, exc: Exception) -> str:
    what = f"the {kind} data" if kind else "the image data"
    if "truncated" in str(exc).lower():
        return f"could not decode the image: {what} is truncated; send the complete file"
    return (
        f"could not decode the image: {what} is corrupt or uses a compression this server "
        "cannot decode; save it again as a standard JPEG or PNG"
    )
