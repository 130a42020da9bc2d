"""Tests of `server.gateway.preprocess`: every file of the shared odd-image corpus, colour-mode
conversions against known values, EXIF orientation, raw pixels and limits."""

from __future__ import annotations

import csv
import io
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from PIL import GifImagePlugin, Image, ImageFile, ImageOps

from server.gateway.errors import InvalidImage, LimitExceeded
from server.gateway.preprocess import (
    RESAMPLE,
    ImageLimits,
    decode_image,
    raw_to_array,
    resize_array,
)

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "images"
TARGET = (32, 32)
LIMITS = ImageLimits()
QUICK_SECONDS = 1.0

T = TypeVar("T")
WHITE = (255, 255, 255)
# How the manifest states an after-orientation size: "swaps dims to WxH" or "WxH displayed".
DISPLAYED = re.compile(r"swaps dims to (\d+)x(\d+)|(\d+)x(\d+) displayed")


@dataclass(frozen=True)
class Row:
    """One line of MANIFEST.tsv."""

    path: str
    description: str
    expected: str

    @property
    def data(self) -> bytes:
        return (CORPUS / self.path).read_bytes()

    def displayed_size(self) -> tuple[int, int]:
        """(height, width) after EXIF orientation, from the expected and description columns."""
        stored = re.match(r"decodes \(\S+ \S+ (\d+)x(\d+)", self.expected)
        assert stored, self.expected
        width, height = int(stored[1]), int(stored[2])
        stated = DISPLAYED.search(self.description)
        if stated:
            shown_width, shown_height = (int(v) for v in stated.groups() if v is not None)
            return shown_height, shown_width
        if re.search(r"Orientation=[5-8]\b", self.description):
            return width, height
        return height, width


def manifest_rows() -> list[Row]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    with manifest.open(newline="", encoding="utf-8") as handle:
        return [
            Row(row["relative_path"], row["what_it_exercises_or_class"], row["expected"])
            for row in csv.DictReader(handle, delimiter="\t")
        ]


ROWS = manifest_rows()
DECODES = [row for row in ROWS if row.expected.startswith("decodes")]
REJECTED = [row for row in ROWS if row.expected.startswith("must be rejected")]
needs_corpus = pytest.mark.skipif(not ROWS, reason=f"odd-image corpus not found at {CORPUS}")


def timed(call: Callable[[], T]) -> T:
    """Run `call` and assert it was quick (no frame iteration, no bomb decoding)."""
    start = time.perf_counter()
    result = call()
    assert time.perf_counter() - start < QUICK_SECONDS
    return result


def no_pillow_warnings(recwarn: pytest.WarningsRecorder) -> None:
    leaked = [w for w in recwarn if not issubclass(w.category, DeprecationWarning)]
    assert not leaked, [str(w.message) for w in leaked]


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def corpus_file(name: str) -> bytes:
    path = CORPUS / "odd" / name
    if not path.exists():
        pytest.skip(f"odd-image corpus not found at {CORPUS}")
    return path.read_bytes()


# --- the corpus -----------------------------------------------------------------------------


def test_manifest_lists_every_corpus_file() -> None:
    if not ROWS:
        pytest.skip(f"odd-image corpus not found at {CORPUS}")
    assert len(ROWS) == len(DECODES) + len(REJECTED) == 80
    assert {row.path for row in ROWS} == {f"odd/{p.name}" for p in (CORPUS / "odd").iterdir()}


@needs_corpus
@pytest.mark.parametrize("row", DECODES, ids=[row.path for row in DECODES])
def test_corpus_file_decodes(row: Row, recwarn: pytest.WarningsRecorder) -> None:
    data = row.data

    native = timed(lambda: decode_image(data, LIMITS))
    resized = timed(lambda: decode_image(data, LIMITS, TARGET))

    assert native.dtype == np.uint8
    assert native.shape == (*row.displayed_size(), 3)
    assert resized.dtype == np.uint8
    assert resized.shape == (*TARGET, 3)
    no_pillow_warnings(recwarn)


@needs_corpus
@pytest.mark.parametrize("row", REJECTED, ids=[row.path for row in REJECTED])
def test_corpus_file_is_rejected(row: Row, recwarn: pytest.WarningsRecorder) -> None:
    data = row.data
    expected = LimitExceeded if "decompression bomb" in row.expected else InvalidImage

    with pytest.raises(expected) as caught:
        timed(lambda: decode_image(data, LIMITS, TARGET))

    message = caught.value.message
    assert len(message) > 20
    assert "BytesIO" not in message
    assert message != str(caught.value.__cause__)
    no_pillow_warnings(recwarn)


@pytest.mark.parametrize(
    ("name", "phrases"),
    [
        ("jpeg_truncated_progressive.jpg", ("truncated", "JPEG")),
        ("png_truncated.png", ("truncated", "PNG")),
        ("jpeg_12bit.jpg", ("JPEG", "12-bit")),
        ("heic_phone_photo.heic", ("HEIC", "JPEG")),
        ("svg_vector.svg", ("SVG", "PNG")),
        ("text_file_renamed.jpg", ("not a supported image format",)),
        ("tiff_webp_compressed.tif", ("TIFF", "corrupt")),
        ("png_ztxt_bomb.png", ("metadata",)),
        ("empty.png", ("empty",)),
    ],
)
def test_rejections_say_what_to_do(name: str, phrases: tuple[str, ...]) -> None:
    with pytest.raises((InvalidImage, LimitExceeded)) as caught:
        decode_image(corpus_file(name), LIMITS, TARGET)
    for phrase in phrases:
        assert phrase in caught.value.message


@pytest.mark.parametrize("name", ["gif_frame_flood_40000.gif", "gif_bomb_second_frame.gif"])
def test_only_the_first_frame_is_read(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = corpus_file(name)
    frames: list[int] = []
    original = GifImagePlugin.GifImageFile._seek

    def spy(self: GifImagePlugin.GifImageFile, frame: int, update_image: bool = True) -> None:
        frames.append(frame)
        original(self, frame, update_image)

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "_seek", spy)
    decode_image(data, LIMITS, TARGET)
    assert set(frames) == {0}


# --- colour modes ---------------------------------------------------------------------------


def test_cmyk_jpeg_matches_pillows_rgb_conversion() -> None:
    data = corpus_file("jpeg_cmyk.jpg")
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "CMYK"
        reference = np.asarray(image.convert("RGB"), dtype=np.int16)
    decoded = decode_image(data, LIMITS).astype(np.int16)
    assert np.abs(decoded - reference).max() <= 1


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_gray_is_scaled_not_clipped(fmt: str) -> None:
    values = np.array([[0, 128, 129, 257, 32896, 65280, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"

    decoded = decode_image(encode(image, fmt), LIMITS)

    assert decoded[0, :, 0].tolist() == [0, 0, 1, 1, 128, 254, 255]
    assert (decoded[..., 0] == decoded[..., 1]).all() and (decoded[..., 1] == decoded[..., 2]).all()


def test_16_bit_corpus_files_use_the_full_range() -> None:
    for name in ("png_16bit_gray.png", "tiff_16bit_gray.tif"):
        data = corpus_file(name)
        with Image.open(io.BytesIO(data)) as image:
            samples = np.asarray(image).astype(np.float64)
        expected = np.rint(samples * 255 / 65535)
        assert np.abs(decode_image(data, LIMITS)[..., 0] - expected).max() <= 1, name


def test_32_bit_integer_samples_are_taken_as_16_bit() -> None:
    values = np.array([[-5, 0, 257, 65535, 70000]], dtype=np.int32)
    decoded = decode_image(encode(Image.fromarray(values), "TIFF"), LIMITS)
    assert decoded[0, :, 0].tolist() == [0, 0, 1, 255, 255]


def test_float_samples_are_taken_as_0_to_1() -> None:
    values = np.array([[-1.0, 0.0, 0.5, 1.0, 2.0]], dtype=np.float32)
    decoded = decode_image(encode(Image.fromarray(values), "TIFF"), LIMITS)
    assert decoded[0, :, 0].tolist() == [0, 0, 128, 255, 255]


def test_palette_transparency_is_composited_on_white() -> None:
    image = Image.new("P", (3, 1))
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    image.putdata([0, 1, 2])
    data = encode(image, "PNG", transparency=bytes([255, 0, 128]))

    decoded = decode_image(data, LIMITS)

    assert tuple(decoded[0, 0]) == (255, 0, 0)
    assert tuple(decoded[0, 1]) == WHITE
    assert np.abs(decoded[0, 2].astype(int) - (127, 127, 255)).max() <= 1


def test_palette_with_one_transparent_index_from_the_corpus() -> None:
    data = corpus_file("png_palette_trns.png")
    with Image.open(io.BytesIO(data)) as image:
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
    decoded = decode_image(data, LIMITS)
    assert (alpha == 0).any()
    assert (decoded[alpha == 0] == WHITE).all()


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_white(mode: str) -> None:
    pixels = [(0, 0, 0, 255), (0, 0, 0, 128), (255, 0, 0, 0)]
    image = Image.new("RGBA", (3, 1))
    image.putdata(pixels)
    data = encode(image.convert(mode), "PNG")

    decoded = decode_image(data, LIMITS).astype(int)

    assert tuple(decoded[0, 0]) == (0, 0, 0)
    assert np.abs(decoded[0, 1] - 127).max() <= 1
    assert tuple(decoded[0, 2]) == WHITE


def test_rgb_with_a_transparent_colour_key() -> None:
    image = Image.new("RGB", (2, 1))
    image.putdata([(10, 20, 30), (40, 50, 60)])
    decoded = decode_image(encode(image, "PNG", transparency=(40, 50, 60)), LIMITS)
    assert tuple(decoded[0, 0]) == (10, 20, 30)
    assert tuple(decoded[0, 1]) == WHITE


@pytest.mark.parametrize("mode", ["1", "L", "P"])
def test_single_channel_modes_become_gray_rgb(mode: str) -> None:
    image = Image.new("L", (4, 2), 255).convert(mode)
    decoded = decode_image(encode(image, "PNG"), LIMITS)
    assert decoded.shape == (2, 4, 3)
    assert (decoded == 255).all()


# --- EXIF orientation -----------------------------------------------------------------------


def two_colour_jpeg(orientation: int) -> bytes:
    """A 40x20 (width x height) JPEG, red left half and blue right half, with an Orientation."""
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def is_red(pixel: np.ndarray) -> bool:
    return bool(pixel[0] > 200 and pixel[2] < 60)


def is_blue(pixel: np.ndarray) -> bool:
    return bool(pixel[2] > 200 and pixel[0] < 60)


def test_orientation_6_is_rotated_clockwise() -> None:
    decoded = decode_image(two_colour_jpeg(6), LIMITS)
    assert decoded.shape == (40, 20, 3)
    assert is_red(decoded[5, 10]) and is_blue(decoded[35, 10])


def test_orientation_applies_with_a_non_square_target() -> None:
    decoded = decode_image(two_colour_jpeg(6), LIMITS, (30, 10))
    assert decoded.shape == (30, 10, 3)
    assert is_red(decoded[3, 5]) and is_blue(decoded[27, 5])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_exif_transpose(orientation: int) -> None:
    data = two_colour_jpeg(orientation)
    with Image.open(io.BytesIO(data)) as image:
        expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    np.testing.assert_array_equal(decode_image(data, LIMITS), expected)


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_bogus_orientation_is_ignored(orientation: int) -> None:
    # A string in the tag (jpeg_exif_php_payload.jpg) is covered by the corpus tests.
    decoded = decode_image(two_colour_jpeg(orientation), LIMITS)
    assert decoded.shape == (20, 40, 3)
    assert is_red(decoded[10, 5]) and is_blue(decoded[10, 35])


# --- resizing -------------------------------------------------------------------------------


def test_reduced_jpeg_decoding_matches_a_full_decode() -> None:
    data = corpus_file("jpeg_exif_orientation8_photo.jpg")
    with Image.open(io.BytesIO(data)) as image:
        full = ImageOps.exif_transpose(image).convert("RGB")
    reference = np.asarray(full.resize((32, 32), RESAMPLE), dtype=np.int16)

    fast = decode_image(data, LIMITS, TARGET).astype(np.int16)

    assert np.abs(fast - reference).mean() < 3


def test_decode_and_resize_is_fast() -> None:
    data = corpus_file("jpeg_exif_orientation8_photo.jpg")
    times = []
    for _ in range(15):
        start = time.perf_counter()
        decode_image(data, LIMITS, TARGET)
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.05


def test_resize_array_is_a_no_op_at_the_right_size() -> None:
    array = np.zeros((32, 32, 3), dtype=np.uint8)
    assert resize_array(array, (32, 32)) is array


def test_resize_array_keeps_colours() -> None:
    array = np.full((64, 48, 3), (10, 200, 90), dtype=np.uint8)
    resized = resize_array(array, (32, 16))
    assert resized.shape == (32, 16, 3)
    assert (resized == (10, 200, 90)).all()


@pytest.mark.parametrize(
    "array", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3))]
)
def test_resize_array_rejects_other_layouts(array: np.ndarray) -> None:
    with pytest.raises(ValueError):
        resize_array(array, (2, 2))


# --- raw pixels -----------------------------------------------------------------------------


def test_raw_rgb() -> None:
    pixels = bytes(range(2 * 3 * 3))
    array = raw_to_array(pixels, 2, 3, 3, LIMITS)
    assert array.shape == (2, 3, 3)
    assert array.dtype == np.uint8
    assert array.tobytes() == pixels


def test_raw_grayscale_is_repeated() -> None:
    array = raw_to_array(bytes([0, 100, 200, 255]), 2, 2, 1, LIMITS)
    assert array.shape == (2, 2, 3)
    assert array[..., 0].tolist() == [[0, 100], [200, 255]]
    assert (array[..., 0] == array[..., 2]).all()


def test_raw_rgba_drops_alpha() -> None:
    array = raw_to_array(bytes([1, 2, 3, 0, 4, 5, 6, 255]), 1, 2, 4, LIMITS)
    assert array.tolist() == [[[1, 2, 3], [4, 5, 6]]]


def test_raw_is_resized_to_the_target() -> None:
    array = raw_to_array(bytes([7] * 64 * 48), 64, 48, 1, LIMITS, (32, 32))
    assert array.shape == (32, 32, 3)
    assert (array == 7).all()


@pytest.mark.parametrize(
    ("pixels", "height", "width", "channels", "phrase"),
    [
        (bytes(11), 2, 2, 3, "needs 12"),
        (bytes(13), 2, 2, 3, "needs 12"),
        (b"", 2, 2, 3, "needs 12"),
        (bytes(12), 0, 2, 3, "positive"),
        (bytes(12), 2, 0, 3, "positive"),
        (bytes(8), 2, 2, 2, "channels"),
        (bytes(0), 2, 2, 0, "channels"),
        (bytes(12), 2**32 - 1, 2**32 - 1, 3, "needs"),
    ],
)
def test_malformed_raw_pixels_are_invalid(
    pixels: bytes, height: int, width: int, channels: int, phrase: str
) -> None:
    with pytest.raises(InvalidImage, match=phrase):
        raw_to_array(pixels, height, width, channels, LIMITS)


def test_raw_over_the_pixel_limit() -> None:
    with pytest.raises(LimitExceeded, match="11x10"):
        raw_to_array(bytes(10 * 11 * 3), 10, 11, 3, ImageLimits(max_pixels=100))


# --- limits ---------------------------------------------------------------------------------


def test_empty_data_is_invalid() -> None:
    with pytest.raises(InvalidImage, match="empty"):
        decode_image(b"", LIMITS)


def test_encoded_size_limit() -> None:
    data = encode(Image.new("RGB", (64, 64)), "PNG")
    with pytest.raises(LimitExceeded, match="bytes"):
        decode_image(data, ImageLimits(max_encoded_bytes=len(data) - 1))
    assert decode_image(data, ImageLimits(max_encoded_bytes=len(data))).shape == (64, 64, 3)


def test_pixel_limit_is_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(Image.new("RGB", (128, 100)), "JPEG")

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(LimitExceeded, match="128x100"):
        decode_image(data, ImageLimits(max_pixels=128 * 100 - 1), TARGET)


def test_header_in_pillows_warning_range_is_rejected_without_warnings(
    recwarn: pytest.WarningsRecorder,
) -> None:
    assert Image.MAX_IMAGE_PIXELS is not None
    side = int((Image.MAX_IMAGE_PIXELS * 1.2) ** 0.5)  # between Pillow's warning and error
    data = encode(Image.new("1", (side, side)), "PNG")
    with pytest.raises(LimitExceeded, match="over the limit"):
        decode_image(data, LIMITS, TARGET)
    no_pillow_warnings(recwarn)


def test_formats_outside_the_allow_list_are_refused() -> None:
    data = encode(Image.new("RGB", (8, 8)), "JPEG")
    with pytest.raises(InvalidImage, match="JPEG files are not supported; send PNG"):
        decode_image(data, ImageLimits(formats=("PNG",)))


def test_unlisted_pillow_formats_are_refused() -> None:
    data = encode(Image.new("RGB", (8, 8)), "TGA")
    with pytest.raises(InvalidImage, match="not a supported image format"):
        decode_image(data, LIMITS)


@pytest.mark.parametrize(
    "kwargs", [{"max_encoded_bytes": 0}, {"max_pixels": -1}, {"formats": ()}, {"formats": ("png",)}]
)
def test_limits_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ImageLimits(**kwargs)  # type: ignore[arg-type]


def test_target_size_is_validated() -> None:
    with pytest.raises(ValueError):
        decode_image(b"x", LIMITS, (0, 32))
