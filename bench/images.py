"""The benchmark's image set: real CIFAR-10 test images, encoded, plus a few real photos.

CIFAR-10 test images (the first `count` of `test_batch`) are encoded alternately as PNG and as
JPEG (quality 90), as a client would upload them; the odd-corpus photos are sent as they are
(a 128x128 baseline JPEG and a 1173x1071 camera JPEG with an EXIF orientation), so every path
also pays for decoding and resizing a bigger image now and then.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from training.data import TEST_FILE, read_batch

ODD_PHOTOS = ("jpeg_baseline_rgb.jpg", "jpeg_exif_orientation8_photo.jpg")
JPEG_QUALITY = 90


@dataclass(frozen=True)
class EncodedImage:
    name: str
    data: bytes
    content_type: str


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    options = {"quality": JPEG_QUALITY} if fmt == "JPEG" else {}
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def cifar_test_pixels(cifar_dir: Path, count: int, num_classes: int = 10) -> np.ndarray:
    """The first `count` CIFAR-10 test images, uint8 [count, 32, 32, 3]."""
    images, _ = read_batch(Path(cifar_dir) / TEST_FILE, num_classes)
    return images[:count]


def encoded_images(pixels: np.ndarray, odd_dir: Path | None) -> list[EncodedImage]:
    """`pixels` encoded alternately as PNG and JPEG, then the odd-corpus photos found."""
    encoded = []
    for index, image in enumerate(pixels):
        fmt, mime = ("PNG", "image/png") if index % 2 == 0 else ("JPEG", "image/jpeg")
        encoded.append(EncodedImage(f"cifar-test-{index}.{fmt.lower()}", _encode(image, fmt), mime))
    photos = [Path(odd_dir) / name for name in ODD_PHOTOS] if odd_dir is not None else []
    for path in photos:
        if path.is_file():
            encoded.append(EncodedImage(path.name, path.read_bytes(), "image/jpeg"))
    return encoded


def describe(images: list[EncodedImage], cifar_count: int) -> str:
    """One line for the report: what the set holds and how big its files are."""
    sizes = np.array([len(image.data) for image in images])
    photos = [image.name for image in images[cifar_count:]]
    extra = f" + {len(photos)} photos ({', '.join(photos)})" if photos else ""
    return (
        f"{cifar_count} CIFAR-10 test images (alternately PNG and JPEG q{JPEG_QUALITY}){extra}; "
        f"{len(images)} files, median {int(np.median(sizes)):,} B, largest {sizes.max():,} B"
    )
