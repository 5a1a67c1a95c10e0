"""Bring any picture of a digit to MNIST's conventions, the way the MNIST files were made.

MNIST digits are grey, ink bright on black, scaled to fit a 20x20 box keeping their aspect ratio
and placed in a 28x28 field by an integer shift that puts their centre of mass at pixel (14, 14)
(measured on the training set: every image's centre of mass lies in [13.5, 14.5] on both axes).
A photo, a scan or a canvas drawing is none of that, and a model trained on MNIST misreads it
until it is brought there: `to_mnist` does, and also widens hairline strokes (thin pens on
high-resolution scans) to MNIST's typical stroke width. `decode_image` and `read_image` are the
checked way in for bytes and files from outside. NumPy, SciPy and Pillow only: no TensorFlow.
"""

from __future__ import annotations

import io
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from digits.dataset import IMAGE_HEIGHT, IMAGE_WIDTH
from digits.errors import DigitsError

ALLOWED_FORMATS = ("PNG", "JPEG")
MAX_IMAGE_BYTES = 20 * 1024 * 1024  # a phone photo is a few MB
MAX_IMAGE_SIDE = 4096  # pixels, each side: checked from the header, before decoding
# A progressive JPEG's cost grows with its scans, each a pass over every 8x8 block of a
# component: 64 refinement scans of a 4096x4096 image cost 0.6 s of CPU, 30,000 tiny ones a
# minute. Encoders write 6 (grey) to 10 (colour) scans with libjpeg's standard script; the
# scans are counted from the markers, before decoding.
MAX_JPEG_SCANS = 64
MAX_JPEG_MARKERS = 1000  # segments and scans: a camera writes a few dozen
# With a CPU limit (decode_image's cpu_limit_s), Pillow is fed this many bytes at a time and the
# limit is checked between them: libjpeg and zlib stop at the end of what they were given.
DECODE_BLOCK_BYTES = 4096

DIGIT_BOX = 20  # MNIST: the digit's longer side, in pixels
CENTRE = (IMAGE_HEIGHT // 2, IMAGE_WIDTH // 2)  # MNIST: where the centre of mass lands (row, col)

# Larger pictures are first reduced (box filter) to at most this side: the digit ends up 20 px
# tall anyway, and this keeps a 4096x4096 photo to tens of milliseconds.
WORKING_SIDE = 512
# Ink strength (0 = background, 1 = the strongest ink) below which a pixel is paper: JPEG
# ringing, paper grain, scanner noise. Bright enough to keep anti-aliased stroke edges.
NOISE_LEVEL = 0.25
# Less contrast than this (on 0..1) between the background and the strongest ink: blank.
MIN_CONTRAST = 0.15
# Ink blobs smaller than this share of the largest one are specks of dust, not strokes.
SPECK_FRACTION = 0.02
# Stroke widths in a 20 px digit, measured on the MNIST training set (2 x area / boundary of the
# pixels >= 0.5): median 2.85 px, 10th percentile 2.15 px. Thinner strokes are widened to the
# median; STROKE_SIDE is the size at which that is done.
MIN_STROKE_WIDTH = 2.0
TYPICAL_STROKE_WIDTH = 2.8
STROKE_SIDE = 4 * DIGIT_BOX
# Pillow allocates image memory in blocks (16 MB by default). glibc hands blocks over 32 MB back
# to the system when they are freed, but keeps smaller ones in the heap of the thread that
# decoded them: 16 4096x4096 PNGs decoded by 2 threads left 150 MB held, 17 MB with 64 MB blocks.
PILLOW_BLOCK_BYTES = 64 * 1024 * 1024


class ImageError(DigitsError):
    """An image that cannot be read or holds no digit."""


@dataclass(frozen=True)
class ImageHeader:
    """What a PNG or JPEG says about itself, read from its bytes without Pillow."""

    format: str  # "PNG" or "JPEG"
    width: int
    height: int
    scans: int = 1  # JPEG: the number of scans (SOS markers)

    @property
    def pixels(self) -> int:
        return self.width * self.height


# A JPEG marker: 0xFF and a code other than 0x00 (a stuffed 0xFF byte in entropy-coded data),
# 0xD0-0xD7 (restart markers, inside a scan) and 0xFF (fill).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_END, _JPEG_SCAN = 0xD9, 0xDA
_JPEG_STANDALONE = {0x01, 0xD8}  # markers without a length (TEM, SOI)


def read_header(data: bytes, source: str) -> ImageHeader | None:
    """The format, size and (JPEG) number of scans of PNG or JPEG bytes, from the bytes alone
    and in milliseconds; None for anything else (Pillow then says what is wrong).

    Raises ImageError for a side over MAX_IMAGE_SIDE, and for a JPEG with more than
    MAX_JPEG_SCANS scans or MAX_JPEG_MARKERS markers. A JPEG is walked marker by marker
    (segments skipped by their length, entropy-coded data searched for the next marker);
    every frame header counts, whichever Pillow would use.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        header = ImageHeader("PNG", *struct.unpack(">II", data[16:24]))
    elif data.startswith(b"\xff\xd8\xff"):
        header = _jpeg_header(data, source)
    else:
        return None
    if header.width > MAX_IMAGE_SIDE or header.height > MAX_IMAGE_SIDE:
        raise ImageError(
            f"{source}: {header.width}x{header.height} pixels is over the limit of "
            f"{MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}"
        )
    return header


def _jpeg_header(data: bytes, source: str) -> ImageHeader:
    width = height = scans = markers = 0
    position = 2  # after SOI
    while found := _JPEG_MARKER.search(data, position):
        markers += 1
        if markers > MAX_JPEG_MARKERS:
            raise ImageError(
                f"{source}: more than {MAX_JPEG_MARKERS:,} JPEG markers; a camera or an editor "
                f"writes a few dozen"
            )
        marker = data[found.start() + 1]
        position = found.end()
        if marker == _JPEG_END:
            break
        if marker in _JPEG_STANDALONE:
            continue
        if position + 7 > len(data):
            break  # truncated: Pillow says so
        if marker in _JPEG_FRAMES:  # length, precision, height, width
            frame_height, frame_width = struct.unpack(">HH", data[position + 3 : position + 7])
            height, width = max(height, frame_height), max(width, frame_width)
        elif marker == _JPEG_SCAN:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise ImageError(
                    f"{source}: a JPEG with more than {MAX_JPEG_SCANS} scans (passes of a "
                    f"progressive JPEG), the limit; encoders write 6 to 10"
                )
        (length,) = struct.unpack(">H", data[position : position + 2])
        position += length  # the segment; after SOS, the search skips the scan's data
    return ImageHeader("JPEG", width, height, scans)


def read_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image file with the same checks as `decode_image`, naming the file in errors."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ImageError(f"{path}: not a file")
        if size > MAX_IMAGE_BYTES:
            raise ImageError(
                f"{path}: {size:,} bytes is over the limit of {MAX_IMAGE_BYTES:,} bytes"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as error:
        raise ImageError(f"{path}: cannot read: {error.strerror or error}") from None
    return decode_image(data, str(path))


class _CpuLimitedBytes(io.BytesIO):
    """Image bytes that Pillow reads as it parses and decodes: a read raises ImageError once
    the reading thread has used more than `limit_s` seconds of CPU since this was made."""

    def __init__(self, data: bytes, limit_s: float, source: str) -> None:
        super().__init__(data)
        self.limit_s = limit_s
        self.source = source
        self.deadline = time.thread_time() + limit_s

    def read(self, size: int | None = -1) -> bytes:
        if time.thread_time() > self.deadline:
            raise ImageError(
                f"{self.source}: decoding took more than {self.limit_s:g} s of CPU time, the "
                f"limit for one image"
            )
        return super().read(size)


def decode_image(data: bytes, source: str, cpu_limit_s: float | None = None) -> Image.Image:
    """PNG or JPEG bytes -> a decoded Pillow image, upright (EXIF orientation applied).

    Checks, before decoding the pixels: at most MAX_IMAGE_BYTES, a PNG or JPEG header, at most
    MAX_IMAGE_SIDE on each side, a JPEG's scans (read_header). A large JPEG is decoded at the
    scale it will be used at (libjpeg's scaled IDCT, through Pillow's draft mode): no side
    smaller than WORKING_SIDE. With `cpu_limit_s`, parsing and decoding stop with an ImageError
    once they have used that much CPU time. `source` names the image in the messages.
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(
            f"{source}: {len(data):,} bytes is over the limit of {MAX_IMAGE_BYTES:,} bytes"
        )
    if not data:
        raise ImageError(f"{source}: empty file; expected a PNG or JPEG image")
    allowed = " or ".join(ALLOWED_FORMATS)
    kind = allowed
    # Sides over the limit are refused here, before Pillow sees them: it never warns about a
    # decompression bomb (its threshold is far above MAX_IMAGE_SIDE squared).
    read_header(data, source)
    try:
        if cpu_limit_s is None:
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        else:
            image = Image.open(_CpuLimitedBytes(data, cpu_limit_s, source), formats=ALLOWED_FORMATS)
            image.decodermaxblock = DECODE_BLOCK_BYTES
        kind = image.format
        width, height = image.size
        if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:  # what Pillow found, to be sure
            raise ImageError(
                f"{source}: {width}x{height} pixels is over the limit of "
                f"{MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}"
            )
        if kind == "JPEG":  # at 1/2, 1/4 or 1/8 scale when both sides stay >= WORKING_SIDE
            image.draft(image.mode, (WORKING_SIDE, WORKING_SIDE))
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # not a copy: 64 MB for 4096x4096 RGBA
        return image
    except UnidentifiedImageError:
        raise ImageError(f"{source}: not a {allowed} image") from None
    except Image.DecompressionBombError:  # a header claiming far more pixels than allowed
        raise ImageError(
            f"{source}: over the limit of {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} pixels"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        # Pillow's words for a truncated or corrupt file ("image file is truncated", ...).
        raise ImageError(f"{source}: damaged {kind} image ({error})") from None


def release_image_memory_when_freed() -> None:
    """Process-wide (call it from main): decoded images in PILLOW_BLOCK_BYTES blocks."""
    Image.core.set_block_size(PILLOW_BLOCK_BYTES)


def to_grey(image: Image.Image | np.ndarray) -> np.ndarray:
    """A Pillow image or an array -> (H, W) float32 in [0, 1], 0 = black.

    Arrays may be (H, W) or (H, W, 3|4), uint8 in 0..255 or float in [0, 1]. Images larger
    than WORKING_SIDE are reduced first. Transparent pixels count as background: they are
    filled with white behind dark ink and with black behind light ink.
    """
    if isinstance(image, np.ndarray):
        image = _array_to_image(image)
    image = reduce_to_working_size(_canonical_mode(image))
    if image.mode in ("I", "F"):
        top = 65535 if image.mode == "I" else 1  # "I" comes from 16-bit PNGs
        return np.clip(np.asarray(image, dtype=np.float32) / np.float32(top), 0, 1)
    if image.mode == "RGBA":
        image = _flatten_transparency(image)
    return np.asarray(image.convert("L"), dtype=np.float32) / np.float32(255)


def _canonical_mode(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> L, RGB, RGBA, I (16-bit grey) or F, without losing grey levels."""
    if image.mode in ("L", "RGB", "RGBA", "I", "F"):
        return image
    if image.mode.startswith("I;16"):
        return image.convert("I")
    if image.mode == "1":
        return image.convert("L")
    if "A" in image.getbands() or image.mode in ("RGBa", "La") or "transparency" in image.info:
        return image.convert("RGBA")
    return image.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV


def _array_to_image(array: np.ndarray) -> Image.Image:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"expected an (H, W), (H, W, 3) or (H, W, 4) array, got {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"empty image: {array.shape[1]}x{array.shape[0]} pixels")
    if array.dtype == np.uint8:
        return Image.fromarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise ImageError(f"unsupported pixel type {array.dtype}; use uint8 or float in [0, 1]")
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
        raise ImageError("float pixel values must be finite and lie in [0, 1]")
    if array.ndim == 2:
        return Image.fromarray(array.astype(np.float32))  # mode F: no rounding to 8 bits
    return Image.fromarray(np.rint(array * 255).astype(np.uint8))


def _flatten_transparency(rgba: Image.Image) -> Image.Image:
    """RGBA -> RGB on a background that contrasts with the visible pixels."""
    pixels = np.asarray(rgba, dtype=np.float32)
    alpha = pixels[..., 3] / 255
    if alpha.min() == 1:
        return rgba.convert("RGB")
    luma = pixels[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    weight = alpha.sum()
    visible = (luma * alpha).sum() / weight if weight > 0 else 0.0
    background = (255, 255, 255) if visible < 128 else (0, 0, 0)
    flat = Image.new("RGB", rgba.size, background)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def reduce_to_working_size(image: Image.Image) -> Image.Image:
    """Shrink by an integer factor (averaging blocks) until neither side exceeds WORKING_SIDE."""
    factor = -(-max(image.size) // WORKING_SIDE)
    return image.reduce(factor) if factor > 1 else image


def ink_strength(grey: np.ndarray, source: str = "image") -> np.ndarray:
    """(H, W) grey in [0, 1] -> (H, W) float32 ink in [0, 1]: 1 the strongest ink, 0 paper.

    The background is the median of the outermost rows and columns: if it is light, the ink is
    dark and the image is inverted. Background and strongest ink are stretched to 0 and 1, faint
    noise is set to 0, and specks far smaller than the largest stroke are removed.
    """
    border = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
    background = float(np.median(border))
    ink = 1 - grey if background > 0.5 else grey
    background = min(background, 1 - background)
    strongest = float(ink.max())
    if strongest - background < MIN_CONTRAST:
        raise ImageError(
            f"{source}: blank image: no ink stands out from the background "
            f"(contrast {strongest - background:.2f}, at least {MIN_CONTRAST} needed)"
        )
    ink = np.clip((ink - background) / (strongest - background), 0, 1).astype(np.float32)
    ink[ink < NOISE_LEVEL] = 0
    labels, count = ndimage.label(ink > 0)
    if count > 1:
        sizes = np.bincount(labels.ravel())[1:]
        specks = np.flatnonzero(sizes < SPECK_FRACTION * sizes.max()) + 1
        ink[np.isin(labels, specks)] = 0
    return ink


def crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The smallest rectangle holding every non-zero pixel."""
    rows = np.flatnonzero(ink.any(axis=1))
    columns = np.flatnonzero(ink.any(axis=0))
    return ink[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]


def resize(ink: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a float ink map. Shrinking averages the pixels each output pixel covers (MNIST's
    anti-aliasing: grey stroke edges); enlarging interpolates (bicubic)."""
    shrinking = height * width < ink.size
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
    resized = Image.fromarray(ink.astype(np.float32)).resize((width, height), resample)
    return np.clip(np.asarray(resized, dtype=np.float32), 0, 1)


def fit_in_box(ink: np.ndarray, box: int = DIGIT_BOX) -> np.ndarray:
    """Scale so the longer side is `box` pixels, keeping the aspect ratio (shorter side >= 1)."""
    height, width = ink.shape
    scale = box / max(height, width)
    return resize(ink, max(1, round(height * scale)), max(1, round(width * scale)))


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: 2 x ink area / boundary length (a long stroke of width w
    and length L has area w*L and a boundary of about 2*L), ink being the pixels >= 0.5."""
    mask = ink >= 0.5
    boundary = np.count_nonzero(mask & ~ndimage.binary_erosion(mask))
    return 2 * np.count_nonzero(mask) / boundary if boundary else 0.0


def thicken_thin_strokes(ink: np.ndarray) -> np.ndarray:
    """Widen strokes thinner than MNIST's thin end to its typical width (a grey dilation).

    A pen on a 300 dpi scan, or a thin brush on a large canvas, gives strokes a few tenths of a
    pixel wide once the digit is 20 px tall: faint hairlines that an MNIST model misreads. The
    width is judged as it will be at 20 px, on a copy of at most STROKE_SIDE pixels (so the
    dilation stays small and fast), stretched so that its strongest ink is 1 again.
    """
    height, width = ink.shape
    if max(height, width) > STROKE_SIDE:
        scale = STROKE_SIDE / max(height, width)
        ink = resize(ink, max(1, round(height * scale)), max(1, round(width * scale)))
        ink = ink / ink.max()
    side = max(ink.shape)
    width_at_box = stroke_width(ink) * DIGIT_BOX / side
    if width_at_box >= MIN_STROKE_WIDTH:
        return ink
    radius = (TYPICAL_STROKE_WIDTH - width_at_box) / 2 * side / DIGIT_BOX
    reach = round(radius)
    if reach < 1:
        return ink
    y, x = np.ogrid[-reach : reach + 1, -reach : reach + 1]
    disk = x * x + y * y <= radius * radius + 0.5
    return ndimage.grey_dilation(np.pad(ink, reach), footprint=disk)


def place_by_centre_of_mass(
    digit: np.ndarray, shape: tuple[int, int] = (IMAGE_HEIGHT, IMAGE_WIDTH)
) -> np.ndarray:
    """Paste `digit` into a black field, shifted by whole pixels so that its centre of mass
    lands within half a pixel of CENTRE; clamped so that no ink leaves the field."""
    height, width = digit.shape
    mass_row, mass_column = ndimage.center_of_mass(digit)
    top = int(np.clip(round(CENTRE[0] - mass_row), 0, shape[0] - height))
    left = int(np.clip(round(CENTRE[1] - mass_column), 0, shape[1] - width))
    field = np.zeros(shape, np.float32)
    field[top : top + height, left : left + width] = digit
    return field


def to_mnist(image: Image.Image | np.ndarray, source: str = "image") -> np.ndarray:
    """Any digit picture -> (28, 28) float32 in [0, 1] in MNIST's conventions.

    Grey; ink bright on black (inverted when the background is light); cropped to the ink;
    hairline strokes widened (see `thicken_thin_strokes`); scaled so the longer side is 20 px
    keeping the aspect ratio; placed in 28x28 with its centre of mass at pixel (14, 14).
    Raises ImageError for a blank image.
    """
    ink = crop_to_ink(ink_strength(to_grey(image), source))
    return place_by_centre_of_mass(fit_in_box(thicken_thin_strokes(ink)))
