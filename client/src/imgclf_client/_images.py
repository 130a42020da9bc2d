"""Turns what a caller passes as an image into the request's `encoded` or `raw` field.

Encoded bytes and files are sent as they are (the gateway decodes them); numpy arrays are
sent as raw pixels. Nothing here decodes an image, so the client needs no imaging library.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from imgclf.v1 import classifier_pb2

from ._exceptions import InvalidInput

ImageInput: TypeAlias = bytes | bytearray | memoryview | str | os.PathLike[str] | npt.NDArray[Any]
"""Encoded image bytes, the path of an image file, or a uint8 array (H, W) or (H, W, C)."""

RAW_CHANNELS = (1, 3, 4)


def set_image(
    request: classifier_pb2.ClassifyRequest | classifier_pb2.CompareRequest, image: ImageInput
) -> None:
    """Fills the request's `encoded` or `raw` field with `image`; raises InvalidInput."""
    field = image_field(image)
    if isinstance(field, bytes):
        request.encoded = field
    else:
        request.raw.CopyFrom(field)


def image_field(image: ImageInput) -> bytes | classifier_pb2.RawImage:
    """The encoded bytes or the raw pixels to send for `image`; raises InvalidInput."""
    if isinstance(image, bytes | bytearray | memoryview):
        return _encoded(bytes(image))
    if isinstance(image, str | os.PathLike):
        return _encoded(_read_file(Path(image)))
    if isinstance(image, np.ndarray):
        return raw_image(image)
    raise InvalidInput(
        f"image must be bytes, a file path or a numpy uint8 array, not {type(image).__name__}"
    )


def raw_image(pixels: npt.NDArray[Any]) -> classifier_pb2.RawImage:
    """A RawImage from a uint8 array shaped (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)."""
    if pixels.dtype != np.uint8:
        raise InvalidInput(f"image array must have dtype uint8, not {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    if pixels.ndim != 3 or pixels.shape[2] not in RAW_CHANNELS:
        raise InvalidInput(
            f"image array must be shaped (H, W) or (H, W, C) with C in {RAW_CHANNELS}, "
            f"not {pixels.shape}"
        )
    height, width, channels = pixels.shape
    if height == 0 or width == 0:
        raise InvalidInput(f"image array is empty: shape {pixels.shape}")
    return classifier_pb2.RawImage(
        pixels=pixels.tobytes(order="C"), height=height, width=width, channels=channels
    )


def _encoded(data: bytes) -> bytes:
    if not data:
        raise InvalidInput("image is empty")
    return data


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read image file {str(path)!r}: {exc.strerror}") from exc
