"""Transport-free image preprocessing: what a client sent -> uint8 RGB pixels for the model.

`decode_image` handles encoded bytes (`ClassifyRequest.encoded`), `raw_to_array` the proto's
`RawImage`; both return a numpy array of shape (height, width, 3) and dtype uint8, resized to
`target_size` when one is given. Sizes are (height, width) everywhere in this module's API, as in
numpy and the proto's `ImageSize`; Pillow's (width, height) stays inside.

Behaviour worth knowing:

- Only the first frame or page of an animated or multi-page file is decoded; later frames are
  never read, so a GIF of 40,000 frames or a bomb in frame 2 costs nothing.
- The header's dimensions are checked against `ImageLimits.max_pixels` before any pixel is
  decoded (`Image.open` is lazy).
- EXIF orientation is applied, after resizing where it is cheapest. A malformed Orientation
  value is ignored. AVIF files follow their own irot/imir boxes, as Pillow and browsers do.
- Transparent pixels are composited over white (`ALPHA_BACKGROUND`): transparent uploads are
  mostly logos, stickers and product shots made to be shown on white pages, and Pillow's plain
  RGBA -> RGB conversion would instead expose whatever colour the transparent pixels happen to
  store. Raw RGBA pixels drop their alpha instead, as the proto specifies.
- 16-bit samples are scaled with rounding (v * 255 / 65535), not clipped; Pillow's mode "I" is
  taken as 16-bit samples (what its Netpbm and signed-16-bit TIFF decoders produce) and mode "F"
  as floats in [0, 1].
- Resizing stretches to the target size (no crop): JPEGs are first decoded at a reduced DCT scale
  (`Image.draft`) down to no less than `REDUCING_GAP` times the target, then Pillow resizes with
  `RESAMPLE` and the same `reducing_gap`, which box-reduces by an integer factor first. Bicubic is
  Pillow's own default for downscaling: antialiased, sharper than bilinear, less ringing than
  Lanczos; the reducing gap keeps its cost flat however large the source.
- Failures raise `InvalidImage` (INVALID_ARGUMENT) or `LimitExceeded` (RESOURCE_EXHAUSTED) with a
  message for the sender; Pillow's exception stays chained (`__cause__`) for the logs.
- The pixel limit (`ImageLimits.max_pixels`) and the decoded-byte limit
  (`ImageLimits.max_decoded_bytes`, width x height x bytes per pixel of the file's mode) are
  checked against what the header declares before any pixel is decoded, and also against every
  image an ICO file embeds, read from its directory before Pillow opens it (Pillow decodes an
  ICO's largest image while opening it, whatever size the directory announces).
- No Pillow global is changed. Pillow's warnings while parsing headers and metadata (EXIF, TIFF
  tags, decompression-bomb warnings) are silenced with `warnings.catch_warnings`, which is not
  thread-safe: call `decode_image` from one thread per process. The gateway does so in decode
  worker processes (`server.gateway.decode_pool`), which also give every decode a time and a
  memory budget; no lock is shared between requests.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageFile, PngImagePlugin, UnidentifiedImageError

from server.gateway import image_messages
from server.gateway.errors import GatewayError, InvalidImage, LimitExceeded
from server.gateway.image_limits import ImageLimits

__all__ = [
    "ALPHA_BACKGROUND",
    "OUT_OF_MEMORY_MESSAGE",
    "REDUCING_GAP",
    "RESAMPLE",
    "ImageLimits",
    "RgbArray",
    "Size",
    "decode_image",
    "raw_to_array",
    "resize_array",
]

Size = tuple[int, int]
"""(height, width) in pixels."""

RgbArray = npt.NDArray[np.uint8]
"""Pixels of shape (height, width, 3), dtype uint8, RGB order."""

ALPHA_BACKGROUND: Final = (255, 255, 255)
RESAMPLE: Final = Image.Resampling.BICUBIC
REDUCING_GAP: Final = 3.0

_RAW_CHANNELS: Final = (1, 3, 4)

# Exceptions Pillow raises for undecodable input (besides the ones handled on their own).
_DECODE_ERRORS: Final = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error)

_TRANSPOSE_FOR_ORIENTATION: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_AXES_SWAPPING: Final = frozenset(
    {
        Image.Transpose.TRANSPOSE,
        Image.Transpose.ROTATE_270,
        Image.Transpose.TRANSVERSE,
        Image.Transpose.ROTATE_90,
    }
)

_ICO_MAGIC: Final = b"\x00\x00\x01\x00"
_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
# Bytes per pixel of Pillow's modes once decoded; modes not listed count 4.
_BYTES_PER_PIXEL: Final = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "RGB": 3}
_BYTES_PER_PIXEL_I16: Final = 2

OUT_OF_MEMORY_MESSAGE: Final = (
    "decoding the image needs more memory than this server allows for one image; send a "
    "smaller image"
)


def decode_image(data: bytes, limits: ImageLimits, target_size: Size | None = None) -> RgbArray:
    """Decode the first frame of an encoded image into RGB pixels.

    Args:
        data: The encoded file, in one of `limits.formats`.
        limits: Size limits and accepted formats.
        target_size: (height, width) to resize to; None keeps the (EXIF-oriented) native size.

    Returns:
        A read-only uint8 array of shape (height, width, 3).

    Raises:
        InvalidImage: The data is empty, not an accepted format, truncated or corrupt.
        LimitExceeded: The data or the image's dimensions are over `limits`.
    """
    _check_encoded_size(data, limits)
    if target_size is not None:
        _check_target_size(target_size)
    with _pillow_errors(data, limits):
        if data.startswith(_ICO_MAGIC):
            _check_ico_images(data, limits)
        image = _open(data, limits)
    with image, _pillow_errors(data, limits, image.format):
        _check_dimensions(image.size, limits)
        _check_decoded_bytes(image.size, image.mode, limits)
        if target_size is not None:
            _draft(image, target_size)
        _load(image)
        transpose = _orientation_transpose(image)
        stored_size = None
        if target_size is not None:
            stored_size = _swap(target_size) if transpose in _AXES_SWAPPING else target_size
        # Float pixels (4 bytes each) are resized before conversion, which then costs nothing.
        frame: Image.Image = image
        if stored_size is not None and image.mode == "F":
            frame = _resize(image, stored_size)
        rgb = _to_rgb(frame)
        if stored_size is not None:
            rgb = _resize(rgb, stored_size)
        if transpose is not None:
            rgb = rgb.transpose(transpose)
        return np.asarray(rgb)


def raw_to_array(
    pixels: bytes,
    height: int,
    width: int,
    channels: int,
    limits: ImageLimits,
    target_size: Size | None = None,
) -> RgbArray:
    """Turn `RawImage` pixels (uint8, row-major, channels last) into RGB pixels.

    Grayscale is repeated into three channels and the alpha of RGBA is dropped. Without resizing
    the result may share memory with `pixels`; treat it as read-only.

    Raises:
        InvalidImage: Unsupported channel count, a zero dimension, or a byte count that does not
            match height x width x channels.
        LimitExceeded: height x width is over `limits.max_pixels`.
    """
    if channels not in _RAW_CHANNELS:
        raise InvalidImage(
            f"raw.channels must be 1 (grayscale), 3 (RGB) or 4 (RGBA), got {channels}"
        )
    if height <= 0 or width <= 0:
        raise InvalidImage(f"raw.height and raw.width must be positive, got {height}x{width}")
    expected = height * width * channels
    if len(pixels) != expected:
        raise InvalidImage(
            f"raw.pixels holds {len(pixels):,} bytes but height x width x channels = "
            f"{height} x {width} x {channels} needs {expected:,} (one uint8 per sample, "
            "row-major, channels last)"
        )
    _check_dimensions((width, height), limits)
    array = np.frombuffer(pixels, dtype=np.uint8).reshape(height, width, channels)
    rgb = np.repeat(array, 3, axis=2) if channels == 1 else array[:, :, :3]
    return rgb if target_size is None else resize_array(rgb, target_size)


def resize_array(array: RgbArray, size: Size) -> RgbArray:
    """Resize (height, width, 3) uint8 pixels to `size` = (height, width) with `RESAMPLE`.

    Returns `array` itself when it already has that size.
    """
    _check_target_size(size)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected (h, w, 3) uint8 pixels, got {array.shape}, {array.dtype}")
    if array.shape[:2] == size:
        return array
    return np.asarray(_resize(Image.fromarray(np.ascontiguousarray(array)), size))


def _check_encoded_size(data: bytes, limits: ImageLimits) -> None:
    if not data:
        raise InvalidImage(
            "the image is empty (0 bytes); send the bytes of a "
            f"{image_messages.accepted(limits)} file"
        )
    if len(data) > limits.max_encoded_bytes:
        raise LimitExceeded(
            f"the encoded image is {len(data):,} bytes, over the limit of "
            f"{limits.max_encoded_bytes:,} bytes; send a smaller or more compressed image"
        )


def _check_target_size(size: Size) -> None:
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"target size must be (height, width) with both positive, got {size}")


def _check_dimensions(width_height: tuple[int, int], limits: ImageLimits) -> None:
    width, height = width_height
    if width <= 0 or height <= 0:
        raise InvalidImage(f"the image has no pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise LimitExceeded(
            f"the image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{limits.max_pixels:,} pixels; downscale it before sending"
        )


def _check_decoded_bytes(width_height: tuple[int, int], mode: str, limits: ImageLimits) -> None:
    width, height = width_height
    per_pixel = _BYTES_PER_PIXEL_I16 if mode.startswith("I;16") else _BYTES_PER_PIXEL.get(mode, 4)
    needed = width * height * per_pixel
    if needed > limits.max_decoded_bytes:
        raise LimitExceeded(
            f"the {width}x{height} image decodes to {needed:,} bytes ({mode}), over the limit "
            f"of {limits.max_decoded_bytes:,} bytes; downscale it or save it with 8-bit samples"
        )


def _check_ico_images(data: bytes, limits: ImageLimits) -> None:
    """Checks every image an ICO directory points at, by its own header, before Pillow opens it."""
    (count,) = struct.unpack_from("<H", data, 4)
    for index in range(count):
        entry = 6 + 16 * index
        if entry + 16 > len(data):
            return  # a short directory is Pillow's to reject
        (offset,) = struct.unpack_from("<I", data, entry + 12)
        embedded = data[offset : offset + 32]
        if embedded.startswith(_PNG_MAGIC) and len(embedded) >= 24:
            width, height = struct.unpack_from(">II", embedded, 16)
            mode = "RGBA"
        elif len(embedded) >= 12:
            # A BMP without its file header: BITMAPINFOHEADER, height counts the AND mask too.
            width, height = struct.unpack_from("<ii", embedded, 4)
            width, height, mode = abs(width), abs(height) // 2, "RGBA"
        else:
            continue
        if width and height:
            _check_dimensions((width, height), limits)
            _check_decoded_bytes((width, height), mode, limits)


@contextmanager
def _silenced_pillow_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@cache
def _openable(formats: tuple[str, ...]) -> tuple[str, ...]:
    """The formats of `formats` this Pillow build can open (`Image.open` fails on others)."""
    Image.init()
    return tuple(name for name in formats if name in Image.OPEN)


def _open(data: bytes, limits: ImageLimits) -> ImageFile.ImageFile:
    with _silenced_pillow_warnings():
        return Image.open(io.BytesIO(data), formats=_openable(limits.formats))


@contextmanager
def _pillow_errors(
    data: bytes, limits: ImageLimits, image_format: str | None = None
) -> Iterator[None]:
    """Turn Pillow's exceptions for bad input into the gateway's."""
    try:
        yield
    except Image.DecompressionBombError as exc:
        raise LimitExceeded(
            "the image's declared dimensions are far over the pixel limit; downscale it "
            "before sending"
        ) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage(image_messages.unidentified(data, limits)) from exc
    except _DECODE_ERRORS as exc:
        kind = (
            image_messages.display_name(image_format)
            if image_format
            else image_messages.sniff(data)
        )
        if _is_text_chunk_bomb(exc):
            raise LimitExceeded(
                f"the {kind or 'image'} file's text metadata decompresses to more than "
                f"{PngImagePlugin.MAX_TEXT_CHUNK // 1024} KiB; save it again without that "
                "metadata"
            ) from exc
        raise InvalidImage(image_messages.undecodable(kind, exc)) from exc
    except GatewayError:
        raise
    except MemoryError as exc:
        raise LimitExceeded(OUT_OF_MEMORY_MESSAGE) from exc
    except Exception as exc:
        # A codec's own failure on a corrupt file (libavif's RuntimeError, a TypeError from a
        # TIFF tag of the wrong type...): the data is at fault whatever the codec raised.
        kind = (
            image_messages.display_name(image_format)
            if image_format
            else image_messages.sniff(data)
        )
        raise InvalidImage(image_messages.undecodable(kind, exc)) from exc


def _is_text_chunk_bomb(exc: Exception) -> bool:
    message = str(exc)
    return isinstance(exc, ValueError) and (
        "Decompressed data too large" in message or "Too much memory used in text" in message
    )


def _draft(image: ImageFile.ImageFile, target_size: Size) -> None:
    # JPEG decodes at 1/2, 1/4 or 1/8 scale but never below the requested size; other formats
    # ignore drafts. A square request stays valid whichever way EXIF later turns the image.
    side = math.ceil(max(target_size) * REDUCING_GAP)
    image.draft(None, (side, side))


def _load(image: ImageFile.ImageFile) -> None:
    # The TIFF loader parses (and may warn about) the EXIF IFDs after decoding the pixels.
    with _silenced_pillow_warnings():
        image.load()


def _orientation_transpose(image: Image.Image) -> Image.Transpose | None:
    # Pillow's TIFF loader has already applied the tag and removed it; AVIF reports its irot/imir.
    with _silenced_pillow_warnings():
        try:
            orientation = image.getexif().get(ExifTags.Base.Orientation)
        except _DECODE_ERRORS:
            return None  # unreadable EXIF: show the pixels as stored
    if not isinstance(orientation, int):
        return None  # absent, or junk such as a string in the tag
    return _TRANSPOSE_FOR_ORIENTATION.get(orientation)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        return Image.fromarray(_high_depth_to_uint8(image)).convert("RGB")
    if image.has_transparency_data:
        return _flatten_alpha(image.convert("RGBA"))
    if image.mode == "RGB":
        return image
    return image.convert("RGB")


def _high_depth_to_uint8(image: Image.Image) -> npt.NDArray[np.uint8]:
    if image.mode == "F":
        floats = np.array(image, dtype=np.float32)
        np.nan_to_num(floats, copy=False, nan=0.0)
        np.clip(floats, 0.0, 1.0, out=floats)
        floats *= 255.0
        return np.rint(floats, out=floats).astype(np.uint8)
    sixteen_bit = np.clip(np.asarray(image, dtype=np.int32), 0, 65535)  # x 255 fits int32
    return ((sixteen_bit * 255 + 32767) // 65535).astype(np.uint8)


def _flatten_alpha(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGB", rgba.size, ALPHA_BACKGROUND)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _resize(image: Image.Image, size: Size) -> Image.Image:
    height, width = size
    if image.size == (width, height):
        return image
    return image.resize((width, height), RESAMPLE, reducing_gap=REDUCING_GAP)


def _swap(size: Size) -> Size:
    return size[1], size[0]
