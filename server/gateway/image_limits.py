"""Limits the gateway applies to images before and while decoding them.

`ImageLimits` is a plain frozen value so that the settings layer can build one from configuration
and pass it to `server.gateway.preprocess`; nothing here reads the environment.

Why these defaults:

- `max_encoded_bytes` = 20 MiB: a 12 MP phone JPEG is 2-6 MB and a 48-50 MP full-resolution one
  10-20 MB; anything bigger is rarely a photo. The gRPC message limit must be set above it (gRPC's
  own default of 4 MiB would reject such photos first).
- `max_pixels` = 64,000,000 (width x height as declared in the file's header): passes every
  phone's default output (12-24 MP), the 48-50 MP full-resolution modes (8064x6048, 8160x6144,
  8192x6144) and 8K video frames (33 MP), and rejects the 108/200 MP modes. It stays under
  Pillow's own warning threshold (`Image.MAX_IMAGE_PIXELS`, about 89 MP), so Pillow's
  `DecompressionBombWarning` can only concern images this limit rejects anyway; Pillow still
  refuses anything over twice that threshold on its own. JPEGs are decoded at a reduced DCT scale
  when the model input is small, so a 50 MP JPEG costs a few MB; the worst case is a non-JPEG
  RGBA image at the limit, about 64 M x (4 + 3) bytes = 450 MB while it is decoded and
  flattened; each decode runs in a worker process with its own memory cap
  (`server.gateway.decode_pool`), so such an image fails alone instead of the gateway.
- `max_decoded_bytes` = 256 MiB: a frame at the pixel limit in RGBA or 32-bit float (4 bytes a
  pixel) passes; the same frame with 16-bit channels (8 bytes a pixel, e.g. RGBA;16 TIFF) does not.
- `formats`: the raster formats the public contract advertises plus Netpbm. An allow-list keeps
  the accepted set the same whatever plugins are registered in the process (a HEIF plugin, for
  example) and keeps out formats that are risky or that Pillow identifies by weak signatures
  (EPS runs Ghostscript; TGA has no magic number). MPO (multi-picture JPEG) opens through JPEG.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_FORMATS: tuple[str, ...] = (
    "JPEG",
    "PNG",
    "GIF",
    "BMP",
    "TIFF",
    "WEBP",
    "AVIF",
    "ICO",
    "PPM",
)
"""Pillow format identifiers accepted by default, tried in this order."""


@dataclass(frozen=True)
class ImageLimits:
    """Size limits and accepted formats for one image of a request."""

    max_encoded_bytes: int = 20 * 1024 * 1024
    """Largest accepted encoded image, in bytes."""

    max_pixels: int = 64_000_000
    """Largest accepted width x height, checked against the file's header before decoding and
    against the declared size of raw pixels."""

    max_decoded_bytes: int = 256 * 1024 * 1024
    """Largest accepted decoded frame (width x height x bytes per pixel of the file's mode, e.g.
    4 for RGBA or 32-bit float), checked against the header before decoding."""

    formats: tuple[str, ...] = DEFAULT_FORMATS
    """Pillow format identifiers (`Image.ID`) accepted for encoded images."""

    def __post_init__(self) -> None:
        if self.max_encoded_bytes <= 0:
            raise ValueError(f"max_encoded_bytes must be positive, got {self.max_encoded_bytes}")
        if self.max_pixels <= 0:
            raise ValueError(f"max_pixels must be positive, got {self.max_pixels}")
        if self.max_decoded_bytes <= 0:
            raise ValueError(f"max_decoded_bytes must be positive, got {self.max_decoded_bytes}")
        if not self.formats:
            raise ValueError("formats must name at least one Pillow format")
        if any(name != name.upper() for name in self.formats):
            raise ValueError(f"formats must be upper-case Pillow identifiers, got {self.formats}")
